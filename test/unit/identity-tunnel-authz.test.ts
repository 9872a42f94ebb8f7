// L4 AuthorizationPolicy evaluation (Istio semantics), as a table of cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PolicyAuthorizer, type L4Request } from '../../agent/proxy/tunnel/authz';
import type { AuthorizationPolicyState, AuthorizationSource, AuthorizationOperation, AuthorizationRule } from '../../agent/policy/snapshot';

const W = 'shop/catalog-0';
const src = (s: Partial<AuthorizationSource>): AuthorizationSource =>
  ({ principals: [], notPrincipals: [], namespaces: [], notNamespaces: [], ipBlocks: [], notIpBlocks: [], ...s });
const op = (o: Partial<AuthorizationOperation>): AuthorizationOperation => ({ ports: [], methods: [], paths: [], notPaths: [], ...o });
const rule = (r: Partial<AuthorizationRule>): AuthorizationRule => ({ from: [], to: [], when: [], ...r });
const pol = (key: string, action: 'ALLOW' | 'DENY', rules: AuthorizationRule[], workloads = [W]): AuthorizationPolicyState =>
  ({ key, action, workloads, rules, l7: false });
const req = (r: Partial<L4Request> = {}): L4Request => ({
  sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/frontend', sourceNamespace: 'shop', sourceIp: '10.0.0.5',
  destinationWorkload: W, destinationPort: 8080, ...r,
});

const cases: { name: string; policies: AuthorizationPolicyState[]; request?: Partial<L4Request>; allowed: boolean }[] = [
  { name: 'no policy: allow', policies: [], allowed: true },
  { name: 'policy for another workload: allow', policies: [pol('p', 'ALLOW', [], ['shop/other'])], allowed: true },
  { name: 'ALLOW with no rules: deny all', policies: [pol('p', 'ALLOW', [])], allowed: false },
  { name: 'ALLOW with an empty rule: allow all', policies: [pol('p', 'ALLOW', [rule({})])], allowed: true },
  { name: 'ALLOW principal (Istio form, no scheme)', policies: [pol('p', 'ALLOW', [rule({ from: [src({ principals: ['cluster.local/ns/shop/sa/frontend'] })] })])], allowed: true },
  { name: 'ALLOW principal (spiffe:// form)', policies: [pol('p', 'ALLOW', [rule({ from: [src({ principals: ['spiffe://cluster.local/ns/shop/sa/frontend'] })] })])], allowed: true },
  { name: 'ALLOW other principal: deny', policies: [pol('p', 'ALLOW', [rule({ from: [src({ principals: ['cluster.local/ns/shop/sa/checkout'] })] })])], allowed: false },
  { name: 'ALLOW principal suffix wildcard', policies: [pol('p', 'ALLOW', [rule({ from: [src({ principals: ['*/sa/frontend'] })] })])], allowed: true },
  { name: 'ALLOW principal "*" needs an identity', policies: [pol('p', 'ALLOW', [rule({ from: [src({ principals: ['*'] })] })])], request: { sourcePrincipal: null }, allowed: false },
  { name: 'ALLOW namespace', policies: [pol('p', 'ALLOW', [rule({ from: [src({ namespaces: ['shop'] })] })])], allowed: true },
  { name: 'ALLOW namespace prefix mismatch', policies: [pol('p', 'ALLOW', [rule({ from: [src({ namespaces: ['pay*'] })] })])], allowed: false },
  { name: 'ALLOW notNamespaces excludes caller', policies: [pol('p', 'ALLOW', [rule({ from: [src({ notNamespaces: ['shop'] })] })])], allowed: false },
  { name: 'ALLOW port match', policies: [pol('p', 'ALLOW', [rule({ to: [op({ ports: ['8080'] })] })])], allowed: true },
  { name: 'ALLOW port mismatch', policies: [pol('p', 'ALLOW', [rule({ to: [op({ ports: ['9090'] })] })])], allowed: false },
  { name: 'ALLOW ipBlocks', policies: [pol('p', 'ALLOW', [rule({ from: [src({ ipBlocks: ['10.0.0.0/24'] })] })])], request: { sourceIp: '::ffff:10.0.0.5' }, allowed: true },
  { name: 'ALLOW notIpBlocks', policies: [pol('p', 'ALLOW', [rule({ from: [src({ notIpBlocks: ['10.0.0.0/24'] })] })])], allowed: false },
  { name: 'ALLOW rule needing L7 cannot match at L4', policies: [pol('p', 'ALLOW', [rule({ to: [op({ methods: ['GET'] })] })])], allowed: false },
  { name: 'ALLOW when on source.namespace', policies: [pol('p', 'ALLOW', [rule({ when: [{ key: 'source.namespace', values: ['shop'], notValues: [] }] })])], allowed: true },
  { name: 'ALLOW when on request header is L7', policies: [pol('p', 'ALLOW', [rule({ when: [{ key: 'request.headers[x-user]', values: ['a'], notValues: [] }] })])], allowed: false },
  { name: 'DENY match wins over ALLOW', policies: [pol('a', 'ALLOW', [rule({})]), pol('d', 'DENY', [rule({ from: [src({ namespaces: ['shop'] })] })])], allowed: false },
  { name: 'DENY not matching: ALLOW decides', policies: [pol('a', 'ALLOW', [rule({})]), pol('d', 'DENY', [rule({ from: [src({ namespaces: ['other'] })] })])], allowed: true },
  { name: 'DENY with L7 parts denies on its L4 parts', policies: [pol('d', 'DENY', [rule({ to: [op({ ports: ['8080'], paths: ['/admin'] })] })])], allowed: false },
  { name: 'DENY notPrincipals "*" denies unauthenticated', policies: [pol('d', 'DENY', [rule({ from: [src({ notPrincipals: ['*'] })] })])], request: { sourcePrincipal: null, sourceNamespace: null }, allowed: false },
  { name: 'DENY notPrincipals "*" lets authenticated through', policies: [pol('d', 'DENY', [rule({ from: [src({ notPrincipals: ['*'] })] })])], allowed: true },
  { name: 'one of several ALLOW policies suffices', policies: [pol('a1', 'ALLOW', [rule({ from: [src({ namespaces: ['x'] })] })]), pol('a2', 'ALLOW', [rule({ to: [op({ ports: ['8080'] })] })])], allowed: true },
];

for (const c of cases) {
  test(`authz: ${c.name}`, () => {
    const d = new PolicyAuthorizer(c.policies).authorize(req(c.request));
    assert.equal(d.allowed, c.allowed, d.reason);
  });
}
