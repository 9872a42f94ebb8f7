// Header modifiers write policy text into message heads. A value with CR LF added headers
// or ended the head (request smuggling into the upstream, response splitting to the
// client); U+010A did the same, as the HTTP/1.1 writer encodes latin1; a modifier on
// Content-Length or Transfer-Encoding desynchronised proxy and upstream on framing. Now
// validation refuses them at file:line:col, and the proxy refuses a snapshot that carries
// them (a control API of another version, a cached snapshot).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadPolicyTexts } from '../../agent/policy';
import { L7Directory } from '../../agent/proxy/routing/directory';
import type { NodeView } from '../../agent/policy/snapshot';

function policy(filter: string): string {
  return `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  vip: 10.96.0.10
  selector: {app: api}
  ports: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: weft.dev/v1alpha1
kind: HTTPRoute
metadata: {name: api, namespace: shop}
spec:
  parentRefs: [{name: api, port: 80}]
  rules:
    - backendRefs: [{name: api, port: 80}]
      filters:
${filter}`;
}

function posOf(text: string, needle: string): string {
  const i = text.indexOf(needle);
  assert.ok(i >= 0, `${needle} not in the policy`);
  const before = text.slice(0, i).split('\n');
  return `${before.length}:${before[before.length - 1]!.length + 1}`;
}

const located = (file: string, text: string) => loadPolicyTexts([{ file, text }]).diagnostics.map((d) => `${d.file}:${d.line}:${d.col}: ${d.message}`);

const VALUE = 'is not a valid HTTP header value (no CR, LF, NUL or other control characters, nothing above U+00FF)';

test('header modifier values with CR, LF, NUL, other controls or characters above U+00FF, and names that are not tokens, are refused at file:line:col', () => {
  const text = policy(`        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{name: x-a, value: "ok\\r\\nx-injected: 1"}]
            add: [{name: x-b, value: "nul\\0byte"}, {name: x-c, value: "latin1 LF \\u010A"}, {name: x-d, value: "esc\\e"}, {name: x-fine, value: "tab\\tand spaces, é"}]
        - type: ResponseHeaderModifier
          responseHeaderModifier:
            set: [{name: set-cookie, value: "a=1\\nx: 2"}, {name: "x-a\\r\\nx-b", value: v}]
            remove: ["x:y"]
`);
  assert.deepEqual(located('r.yaml', text), [
    `r.yaml:${posOf(text, '"ok\\r')}: spec.rules[0].filters[0].requestHeaderModifier.set[0].value: "ok\\r\\nx-injected: 1" ${VALUE}`,
    `r.yaml:${posOf(text, '"nul')}: spec.rules[0].filters[0].requestHeaderModifier.add[0].value: "nul\\u0000byte" ${VALUE}`,
    `r.yaml:${posOf(text, '"latin1')}: spec.rules[0].filters[0].requestHeaderModifier.add[1].value: "latin1 LF Ċ" ${VALUE}`,
    `r.yaml:${posOf(text, '"esc')}: spec.rules[0].filters[0].requestHeaderModifier.add[2].value: "esc\\u001b" ${VALUE}`,
    `r.yaml:${posOf(text, '"a=1')}: spec.rules[0].filters[1].responseHeaderModifier.set[0].value: "a=1\\nx: 2" ${VALUE}`,
    `r.yaml:${posOf(text, '"x-a')}: spec.rules[0].filters[1].responseHeaderModifier.set[1].name: "x-a\\r\\nx-b" is not a valid HTTP header name`,
    `r.yaml:${posOf(text, '"x:y"')}: spec.rules[0].filters[1].responseHeaderModifier.remove[0]: "x:y" is not a valid HTTP header name`,
  ]);
});

test('framing and hop-by-hop headers and Host cannot be set, added or removed by a modifier', () => {
  const text = policy(`        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{name: Transfer-Encoding, value: chunked}]
            add: [{name: content-length, value: "0"}, {name: host, value: evil}]
            remove: [connection]
        - type: ResponseHeaderModifier
          responseHeaderModifier:
            add: [{name: upgrade, value: h2c}]
`);
  const framing = 'cannot be changed by a header modifier: it is part of the message framing or of one connection';
  assert.deepEqual(located('r.yaml', text), [
    `r.yaml:${posOf(text, 'Transfer-Encoding')}: spec.rules[0].filters[0].requestHeaderModifier.set[0].name: "Transfer-Encoding" ${framing}`,
    `r.yaml:${posOf(text, 'content-length')}: spec.rules[0].filters[0].requestHeaderModifier.add[0].name: "content-length" ${framing}`,
    `r.yaml:${posOf(text, 'host, value')}: spec.rules[0].filters[0].requestHeaderModifier.add[1].name: "host" cannot be changed by a header modifier: it is the request's authority (routing and the upstream depend on it)`,
    `r.yaml:${posOf(text, 'connection]')}: spec.rules[0].filters[0].requestHeaderModifier.remove[0]: "connection" ${framing}`,
    `r.yaml:${posOf(text, 'upgrade')}: spec.rules[0].filters[1].responseHeaderModifier.add[0].name: "upgrade" ${framing}`,
  ]);
});

test('the proxy refuses a snapshot whose header modifier would inject a header (defence in depth)', () => {
  const view = (value: string, name = 'x-a'): NodeView => ({
    version: 'v1', node: 'n1', nodes: {},
    mesh: { trustDomain: 't', mtls: 'PERMISSIVE', certTtlMs: 3600_000, failMode: 'closed', vipRange: '10.96.0.0/16' },
    datapath: [],
    services: [{ key: 'test/api', name: 'api', namespace: 'test', vip: '10.96.0.10', vipAllocated: false, selector: {}, ports: [{ name: 'p', port: 80, targetPort: 80, protocol: 'HTTP' }], endpoints: [] }],
    routes: [{ service: 'test/api', port: 80, protocol: 'http', routes: [{
      route: 'test/api', rule: 0, match: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] },
      backends: [{ service: 'test/api', port: 80, weight: 1 }],
      requestHeaderModifier: { set: [{ name, value }], add: [], remove: [] },
    }] }],
    trafficPolicies: [], authorizationPolicies: [], localWorkloads: [],
  });
  const d = new L7Directory();
  t_ok(() => d.apply(view('fine')));
  for (const [value, name] of [['a\r\nx-injected: 1', 'x-a'], ['\u010a', 'x-a'], ['1', 'content-length'], ['v', 'x a']] as const) {
    assert.throws(() => new L7Directory().apply(view(value, name)), (e: Error & { code?: string }) => e.code === 'WEFT_ERR_INVALID_POLICY', `${JSON.stringify(name)}: ${JSON.stringify(value)}`);
  }
});

function t_ok(fn: () => void): void { assert.doesNotThrow(fn); }
