// HTTPRoute / GRPCRoute → one merged, ordered route table per (Service, port).
//
// Merge order follows Gateway API's HTTPRoute precedence: Exact path, then (our choice,
// the spec leaves it to implementations) RegularExpression paths, then PathPrefix by
// longest prefix; then a method match; then more header matches; then more query-param
// matches. Remaining ties go to the Route first in alphabetical "namespace/name" order
// (the spec's "oldest Route" needs creation timestamps, which files do not have), and
// within a Route to the first rule and match in list order. Regexes rank above prefixes
// because a prefix is usually a catch-all ("/") that would otherwise hide every regex.
//
// The same code serves validation (unknown refs, impossible weights, bad regexes,
// shadowed and conflicting matches) and compilation, so they cannot disagree.
import type { Diagnostic } from './diagnostic';
import type { LoadedObject } from './load';
import type { GRPCMatch, HTTPMatch, ServiceObject } from './kinds';
import type { CompiledRoute, HeaderMatch, HeaderModifier, RouteMatch, RouteTable, WeightedBackend } from './snapshot';
import { refKey, unknownService, whereIs, type Model, type RouteObject } from './model';
import { durationMs } from './duration';
import { formatPath, type PathSegment } from './source';
import { preview } from './diagnostic';
import { compilePolicyRegex, policyRegexMatches } from './regex';

export interface RouteOrigin { obj: LoadedObject<RouteObject>; rule: number; match: number | null }
export interface BuiltTable { table: RouteTable; origins: RouteOrigin[] }

const article = (kind: string) => `${kind.startsWith('H') ? 'an' : 'a'} ${kind}`;

const HTTP_ROUTE_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'GRPC']);
const GRPC_ROUTE_PROTOCOLS = new Set(['HTTP2', 'GRPC']);

type Rule = RouteObject['spec']['rules'][number];

export function buildRouteTables(model: Model, diags: Diagnostic[]): BuiltTable[] {
  const tables = new Map<string, { service: string; port: number; entries: { route: CompiledRoute; origin: RouteOrigin }[]; kinds: Map<string, LoadedObject<RouteObject>> }>();
  for (const obj of model.routes) {
    const isGrpc = obj.kind === 'GRPCRoute';
    const attached = new Map<string, number>();
    obj.object.spec.parentRefs.forEach((ref, p) => {
      const at: PathSegment[] = ['spec', 'parentRefs', p];
      const svcKey = refKey(ref, obj);
      const svc = model.services.get(svcKey);
      if (!svc) {
        if (unknownService(model, svcKey)) diags.push(obj.source.at([...at, 'name'], `spec.parentRefs[${p}]: unknown Service "${svcKey}"`));
        return;
      }
      const allowed = isGrpc ? GRPC_ROUTE_PROTOCOLS : HTTP_ROUTE_PROTOCOLS;
      let ports = svc.object.spec.ports;
      if (ref.port !== undefined) {
        ports = ports.filter((sp) => sp.port === ref.port);
        if (!ports.length) { diags.push(obj.source.at([...at, 'port'], `spec.parentRefs[${p}]: Service "${svcKey}" has no port ${ref.port}`)); return; }
        // A number may be served over UDP and TCP (e.g. 443 for QUIC and HTTPS): routes
        // attach to the TCP one.
        const proto = (ports.find((sp) => allowed.has(sp.protocol ?? 'TCP')) ?? ports[0])?.protocol ?? 'TCP';
        if (!allowed.has(proto)) { diags.push(obj.source.at([...at, 'port'], `spec.parentRefs[${p}]: ${article(obj.kind)} cannot attach to ${proto} port ${ref.port} of Service "${svcKey}"`)); return; }
        ports = ports.filter((sp) => allowed.has(sp.protocol ?? 'TCP'));
      } else {
        ports = ports.filter((sp) => allowed.has(sp.protocol ?? 'TCP'));
        if (!ports.length) { diags.push(obj.source.at([...at, 'name'], `spec.parentRefs[${p}]: Service "${svcKey}" has no ${[...allowed].join('/')} port for ${article(obj.kind)}`)); return; }
      }
      for (const sp of ports) {
        const id = `${svcKey}:${sp.port}`;
        const dup = attached.get(id);
        if (dup !== undefined) {
          diags.push(obj.source.at(at, `spec.parentRefs[${p}]: port ${sp.port} of Service "${svcKey}" is already attached by spec.parentRefs[${dup}]`));
          continue;
        }
        attached.set(id, p);
        let t = tables.get(id);
        if (!t) tables.set(id, (t = { service: svcKey, port: sp.port, entries: [], kinds: new Map() }));
        const otherKind = [...t.kinds.entries()].find(([k]) => k !== obj.kind);
        if (otherKind) {
          diags.push(obj.source.at([...at, 'name'], `spec.parentRefs[${p}]: port ${sp.port} of Service "${svcKey}" already has ${otherKind[0]} "${otherKind[1].key}" (${whereIs(otherKind[1])}); HTTPRoute and GRPCRoute cannot share a port`));
        } else if (!t.kinds.has(obj.kind)) t.kinds.set(obj.kind, obj);
        // On a kind clash the rules are still checked (every problem in one run) but
        // kept out of the table.
        const entries = otherKind ? [] : t.entries;
        obj.object.spec.rules.forEach((rule, r) => {
          const backends = resolveBackends(model, obj, rule, r, sp.port, diags);
          const base = compileRuleActions(obj, rule, r, diags);
          const matches: (HTTPMatch | GRPCMatch | undefined)[] = rule.matches?.length ? rule.matches : [undefined];
          matches.forEach((m, i) => {
            const match = isGrpc ? grpcMatch(m as GRPCMatch | undefined) : httpMatch(m as HTTPMatch | undefined);
            checkMatch(obj, match, ['spec', 'rules', r, 'matches', i], diags);
            entries.push({ route: { route: obj.key, rule: r, match, backends, ...base }, origin: { obj, rule: r, match: rule.matches?.length ? i : null } });
          });
        });
      }
    });
  }

  const out: BuiltTable[] = [];
  for (const t of [...tables.values()].sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : a.port - b.port))) {
    t.entries.sort((a, b) => comparePrecedence(a.route, b.route));
    reportShadowing(t.service, t.port, t.entries, diags);
    out.push({
      table: { service: t.service, port: t.port, protocol: t.kinds.has('GRPCRoute') ? 'grpc' : 'http', routes: t.entries.map((e) => e.route) },
      origins: t.entries.map((e) => e.origin),
    });
  }
  return out;
}

// ------------------------------------------------------------------ matches

function headerList(list: { type?: 'Exact' | 'RegularExpression'; name: string; value: string }[] | undefined, lower: boolean): HeaderMatch[] {
  return (list ?? []).map((h) => ({ name: lower ? h.name.toLowerCase() : h.name, type: h.type ?? 'Exact', value: h.value }));
}

function httpMatch(m: HTTPMatch | undefined): RouteMatch {
  const out: RouteMatch = {
    path: { type: m?.path?.type ?? 'PathPrefix', value: m?.path?.value ?? '/' },
    headers: headerList(m?.headers, true),
    queryParams: headerList(m?.queryParams, false),
  };
  if (m?.method) out.method = m.method;
  return out;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** gRPC requests are POST /package.Service/Method: a method match becomes a path match. */
function grpcMatch(m: GRPCMatch | undefined): RouteMatch {
  const headers = headerList(m?.headers, true);
  const mm = m?.method;
  let path: RouteMatch['path'];
  if (!mm) path = { type: 'PathPrefix', value: '/' };
  else if ((mm.type ?? 'Exact') === 'RegularExpression') path = { type: 'RegularExpression', value: `/${mm.service ?? '[^/]+'}/${mm.method ?? '[^/]+'}` };
  else if (mm.service && mm.method) path = { type: 'Exact', value: `/${mm.service}/${mm.method}` };
  else if (mm.service) path = { type: 'PathPrefix', value: `/${mm.service}` };
  else path = { type: 'RegularExpression', value: `/[^/]+/${escapeRe(mm.method as string)}` };
  return { path, headers, queryParams: [] };
}

function checkMatch(obj: LoadedObject<RouteObject>, match: RouteMatch, at: PathSegment[], diags: Diagnostic[]): void {
  if (match.path.type !== 'RegularExpression' && !match.path.value.startsWith('/')) {
    diags.push(obj.source.at([...at, 'path', 'value'], `${formatPath([...at, 'path', 'value'])}: a ${match.path.type} path must start with "/" (got ${preview(match.path.value)})`));
  }
  const test = (re: string, where: PathSegment[], label: string) => {
    const r = compilePolicyRegex(re);
    if ('error' in r) diags.push(obj.source.at(where, `${label}: invalid regular expression ${preview(re)}: ${r.error}`));
  };
  const label = (p: PathSegment[]) => p.map((s) => (typeof s === 'number' ? `[${s}]` : `.${s}`)).join('').slice(1);
  if (match.path.type === 'RegularExpression') {
    const where = obj.kind === 'GRPCRoute' ? [...at, 'method'] : [...at, 'path', 'value'];
    test(match.path.value, where, label(where));
  }
  match.headers.forEach((h, i) => { if (h.type === 'RegularExpression') test(h.value, [...at, 'headers', i, 'value'], label([...at, 'headers', i, 'value'])); });
  match.queryParams.forEach((h, i) => { if (h.type === 'RegularExpression') test(h.value, [...at, 'queryParams', i, 'value'], label([...at, 'queryParams', i, 'value'])); });
}

// ------------------------------------------------------------------ backends and actions

function backendPort(svc: LoadedObject<ServiceObject>, wanted: number | undefined, parentPort: number): number | string {
  const ports = svc.object.spec.ports;
  if (wanted !== undefined) return ports.some((p) => p.port === wanted) ? wanted : `Service "${svc.key}" has no port ${wanted}`;
  if (ports.some((p) => p.port === parentPort)) return parentPort;
  if (ports.length === 1) return (ports[0] as { port: number }).port;
  return `Service "${svc.key}" has several ports and none is ${parentPort}: set backendRefs port`;
}

function resolveBackends(model: Model, obj: LoadedObject<RouteObject>, rule: Rule, r: number, parentPort: number, diags: Diagnostic[]): WeightedBackend[] {
  const out: WeightedBackend[] = [];
  const at = (k: number, f: string): PathSegment[] => ['spec', 'rules', r, 'backendRefs', k, f];
  rule.backendRefs.forEach((ref, k) => {
    const key = refKey(ref, obj);
    const svc = model.services.get(key);
    if (!svc) {
      if (unknownService(model, key)) diags.push(obj.source.at(at(k, 'name'), `spec.rules[${r}].backendRefs[${k}]: unknown backend Service "${key}"`));
      return;
    }
    const port = backendPort(svc, ref.port, parentPort);
    if (typeof port === 'string') { diags.push(obj.source.at(at(k, ref.port !== undefined ? 'port' : 'name'), `spec.rules[${r}].backendRefs[${k}]: ${port}`)); return; }
    const weight = ref.weight ?? 1;
    if (weight > 0) out.push({ service: key, port, weight });
  });
  if (rule.backendRefs.every((b) => b.weight === 0)) {
    diags.push(obj.source.at(['spec', 'rules', r, 'backendRefs'], `spec.rules[${r}].backendRefs: every backendRef has weight 0, so the rule can never send traffic anywhere`));
  }
  return out;
}

function modifier(m: { set?: { name: string; value: string }[]; add?: { name: string; value: string }[]; remove?: string[] }): HeaderModifier {
  return { set: m.set ?? [], add: m.add ?? [], remove: m.remove ?? [] };
}

/** Headers a header modifier may not set, add or remove: the framing of the message and
 *  hop-by-hop headers (changing them desynchronises proxy and upstream: request
 *  smuggling; HTTP/2 forbids them) and Host. Envoy refuses the same set. */
export const PROTECTED_HEADERS: ReadonlySet<string> = new Set([
  'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'host',
]);

type RuleActions = Omit<CompiledRoute, 'route' | 'rule' | 'match' | 'backends'>;

function compileRuleActions(obj: LoadedObject<RouteObject>, rule: Rule, r: number, diags: Diagnostic[]): RuleActions {
  const out: RuleActions = {};
  rule.filters?.forEach((f, i) => {
    const field = f.type === 'RequestHeaderModifier' ? 'requestHeaderModifier' : 'responseHeaderModifier';
    const m = f[field];
    if (!m) { diags.push(obj.source.at(['spec', 'rules', r, 'filters', i], `spec.rules[${r}].filters[${i}]: type ${f.type} needs a "${field}" field`)); return; }
    if (out[field]) { diags.push(obj.source.at(['spec', 'rules', r, 'filters', i, 'type'], `spec.rules[${r}].filters[${i}]: a rule may have only one ${f.type} filter`)); return; }
    for (const op of ['set', 'add', 'remove'] as const) {
      (m[op] ?? []).forEach((h: string | { name: string }, j: number) => {
        const name = typeof h === 'string' ? h : h.name;
        if (!PROTECTED_HEADERS.has(name.toLowerCase())) return;
        const at: PathSegment[] = ['spec', 'rules', r, 'filters', i, field, op, j, ...(typeof h === 'string' ? [] : ['name'])];
        diags.push(obj.source.at(at, `${formatPath(at)}: ${preview(name)} cannot be changed by a header modifier: it is ${name.toLowerCase() === 'host' ? 'the request\'s authority (routing and the upstream depend on it)' : 'part of the message framing or of one connection'}`));
      });
    }
    out[field] = modifier(m);
  });
  if (rule.timeouts) {
    out.timeouts = {};
    if (rule.timeouts.request) out.timeouts.requestMs = durationMs(rule.timeouts.request);
    if (rule.timeouts.idle) out.timeouts.idleMs = durationMs(rule.timeouts.idle);
  }
  if (rule.retries) {
    const rt = rule.retries as { attempts: number; on?: string[]; perTryTimeout?: string; retriableStatusCodes?: number[] };
    out.retry = { attempts: rt.attempts, on: rt.on ?? ['connect-failure', 'reset'], retriableStatusCodes: rt.retriableStatusCodes ?? [] };
    if (rt.perTryTimeout) out.retry.perTryTimeoutMs = durationMs(rt.perTryTimeout);
    const total = out.timeouts?.requestMs;
    if (out.retry.perTryTimeoutMs !== undefined && total !== undefined && total > 0 && out.retry.perTryTimeoutMs >= total && out.retry.attempts > 0) {
      diags.push(obj.source.at(['spec', 'rules', r, 'retries', 'perTryTimeout'], `spec.rules[${r}].retries.perTryTimeout: ${rt.perTryTimeout} is not shorter than the request timeout ${rule.timeouts?.request}, so no retry could ever start`));
    }
    if (out.retry.on.includes('retriable-status-codes') && !out.retry.retriableStatusCodes.length) {
      diags.push(obj.source.at(['spec', 'rules', r, 'retries', 'on'], `spec.rules[${r}].retries.on: retriable-status-codes needs retriableStatusCodes`));
    }
  }
  if (rule.fault) {
    const f = rule.fault as { delay?: { percent: number; fixedDelay: string }; abort?: { percent: number; httpStatus?: number; grpcStatus?: number } };
    out.fault = {};
    if (f.delay) out.fault.delay = { percent: f.delay.percent, fixedDelayMs: durationMs(f.delay.fixedDelay) };
    if (f.abort) out.fault.abort = f.abort;
  }
  if (rule.rateLimit) {
    const b = rule.rateLimit.local.tokenBucket;
    out.rateLimit = { maxTokens: b.maxTokens, tokensPerFill: b.tokensPerFill ?? 1, fillIntervalMs: durationMs(b.fillInterval) };
  }
  return out;
}

// ------------------------------------------------------------------ precedence and shadowing

const PATH_RANK = { Exact: 0, RegularExpression: 1, PathPrefix: 2 } as const;

/** Negative when `a` must be tried before `b` (see the header comment for the order). */
export function comparePrecedence(a: CompiledRoute, b: CompiledRoute): number {
  const pa = a.match.path, pb = b.match.path;
  return PATH_RANK[pa.type] - PATH_RANK[pb.type]
    || (pa.type !== 'RegularExpression' ? pb.value.length - pa.value.length : 0)
    || Number(b.match.method !== undefined) - Number(a.match.method !== undefined)
    || b.match.headers.length - a.match.headers.length
    || b.match.queryParams.length - a.match.queryParams.length
    || (a.route < b.route ? -1 : a.route > b.route ? 1 : 0)
    || a.rule - b.rule;
}

function prefixCovers(prefix: string, path: string): boolean {
  if (prefix === '/' || path === prefix) return true;
  return path.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`);
}

function pathCovers(a: RouteMatch['path'], b: RouteMatch['path']): boolean {
  switch (a.type) {
    case 'PathPrefix': return b.type === 'RegularExpression' ? a.value === '/' : prefixCovers(a.value, b.value);
    case 'Exact': return b.type === 'Exact' && a.value === b.value;
    case 'RegularExpression':
      if (b.type === 'RegularExpression') return a.value === b.value;
      if (b.type === 'Exact') return policyRegexMatches(a.value, b.value);
      return false;
  }
}

const sameCondition = (x: HeaderMatch, y: HeaderMatch) => x.name === y.name && x.type === y.type && x.value === y.value;

/** True when every request that matches `b` also matches `a` (provably, by structure). */
export function matchCovers(a: RouteMatch, b: RouteMatch): boolean {
  return pathCovers(a.path, b.path)
    && (a.method === undefined || a.method === b.method)
    && a.headers.every((h) => b.headers.some((g) => sameCondition(h, g)))
    && a.queryParams.every((q) => b.queryParams.some((g) => sameCondition(q, g)));
}

function originPath(o: RouteOrigin): PathSegment[] {
  return o.match === null ? ['spec', 'rules', o.rule] : ['spec', 'rules', o.rule, 'matches', o.match];
}
function originLabel(o: RouteOrigin): string {
  return `rule ${o.rule}${o.match === null ? '' : ` match ${o.match}`}`;
}

function reportShadowing(service: string, port: number, entries: { route: CompiledRoute; origin: RouteOrigin }[], diags: Diagnostic[]): void {
  for (let j = 1; j < entries.length; j++) {
    const later = entries[j] as { route: CompiledRoute; origin: RouteOrigin };
    for (let i = 0; i < j; i++) {
      const earlier = entries[i] as { route: CompiledRoute; origin: RouteOrigin };
      if (!matchCovers(earlier.route.match, later.route.match)) continue;
      const e = earlier.origin, l = later.origin;
      const pos = e.obj.source.at(originPath(e), '');
      const loc = `${pos.file}:${pos.line}:${pos.col}`;
      const label = l.match === null ? `spec.rules[${l.rule}]` : `spec.rules[${l.rule}].matches[${l.match}]`;
      diags.push(e.obj === l.obj
        ? l.obj.source.at(originPath(l), `${label}: unreachable on Service "${service}" port ${port}: ${originLabel(e)} of this route (${loc}) matches every request it would`)
        : l.obj.source.at(originPath(l), `${label}: conflicts with ${e.obj.kind} "${e.obj.key}" ${originLabel(e)} (${loc}) on Service "${service}" port ${port}, which is tried first, so this match is never used`));
      break;
    }
  }
}
