// The control API's policy engine: loads and compiles like loadPolicyDir() + compile(),
// but a change that only adds, removes or edits Workloads (the endpoint churn of a
// policy tree, and every EndpointSlice/Pod report of Kubernetes discovery, whose
// objects are one in-memory file each) is applied to the previous result instead of
// recomputed:
//   - parse: only the files whose text changed (ParsedFileCache);
//   - analysis: only the changed Workloads are checked (duplicate name, address clash,
//     address inside the VIP range, target ports of the Services selecting them),
//     against indexes kept from the previous load; any doubt — a problem found, another
//     kind touched, a load with diagnostics — and the full analysis runs, so every
//     diagnostic is exactly the full analysis's;
//   - compile: the changed workloads' states, the Services whose endpoint lists they
//     enter or leave, the AuthorizationPolicies whose workload lists change, the node
//     table; every other object of the previous snapshot is kept as is (same object), so
//     its content hash (content-hash.ts) and its encodings (view-cache.ts) are reused.
// compile() in compile.ts stays the reference: it runs for every other change (Services,
// routes, policies, MeshConfig, registrations, node reports) and whenever the previous
// snapshot is not the one this engine compiled last. test/unit/policy-incremental.test.ts
// checks, over random edit sequences, that both paths give deep-equal snapshots and views.
import type { LoadedObject } from './load';
import { loadFiles, loadTexts } from './load';
import { ParsedFileCache, type FileLoad } from './load-cache';
import type { PolicyTreeFiles } from './tree-files';
import type { LoadResult } from './load-types';
import { finish, type PolicyLoadResult } from './index';
import type { ServiceObject, WorkloadObject, AuthorizationPolicyObject } from './kinds';
import {
  authorizationSelects, compile, compileNodes, declaredPorts, fromObject, selectorIndex, serviceState, workloadState,
  type CompileOptions,
} from './compile';
import { contentHash } from './content-hash';
import { refKey, type Model } from './model';
import { cidrContains, parseIPv4 } from '../lib/ip';
import type { AuthorizationPolicyState, ServiceState, Snapshot, WorkloadRegistration, WorkloadState } from './snapshot';

/** How a load derives from the previous one: Workloads removed and added. */
interface WorkloadChange {
  base: PolicyLoadResult;
  removed: readonly LoadedObject<WorkloadObject>[];
  added: readonly LoadedObject<WorkloadObject>[];
}

/** The last load without diagnostics, with what checking a Workload change needs. */
interface LoadState {
  parts: ReadonlyMap<string, FileLoad>;
  set: PolicyLoadResult;
  /** Address → key of the (non-hostNetwork) policy Workload that has it; built on the
   *  first incremental load, then kept up to date. */
  addresses?: Map<string, string>;
}

/** selectorIndex() by the model's Service map: models of incremental loads share it. */
const serviceIndexes = new WeakMap<Model['services'], ReturnType<typeof selectorIndex>>();

function servicesIndex(model: Model): ReturnType<typeof selectorIndex> {
  let index = serviceIndexes.get(model.services);
  if (!index) { index = selectorIndex(model); serviceIndexes.set(model.services, index); }
  return index;
}

export interface IncrementalStats {
  fullLoads: number;
  incrementalLoads: number;
  fullCompiles: number;
  incrementalCompiles: number;
}

/** Snapshots whose version the caller named (not a content hash). */
const CALLER_NAMED = new WeakSet<Snapshot>();

const byKey = <T extends { key: string }>(a: T, b: T) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

export class IncrementalPolicy {
  private readonly cache = new ParsedFileCache();
  private loaded: LoadState | undefined;
  private readonly changes = new WeakMap<PolicyLoadResult, WorkloadChange>();
  private compiled: { set: PolicyLoadResult; registered: string; nodes: string; snapshot: Snapshot } | undefined;
  readonly stats: IncrementalStats = { fullLoads: 0, incrementalLoads: 0, fullCompiles: 0, incrementalCompiles: 0 };

  /** loadPolicyDir(paths, extra), incrementally when the change allows. */
  load(paths: readonly string[], extra: readonly { file: string; text: string }[] = []): PolicyLoadResult {
    return this.finishLoad(loadFiles(paths, extra, this.cache));
  }

  /** loadPolicyDir([tree.root], extra) from a tree whose files are kept between loads
   *  (tree-files.ts): only the files it was told changed are read again. */
  loadTree(tree: PolicyTreeFiles, extra: readonly { file: string; text: string }[] = []): PolicyLoadResult {
    const { texts, diagnostics } = tree.read();
    return this.finishLoad(loadTexts([...texts, ...extra], diagnostics, this.cache));
  }

  /** loadPolicyTexts(files) the same way (tests, in-memory sources). */
  loadTexts(files: readonly { file: string; text: string }[]): PolicyLoadResult {
    return this.finishLoad(loadTexts(files, [], this.cache));
  }

  private finishLoad(raw: LoadResult): PolicyLoadResult {
    const prev = this.loaded;
    const parts = new Map((raw.parts ?? []).map((p) => [p.file, p.load]));
    let state: LoadState | undefined;
    if (prev && raw.parts && parts.size === raw.parts.length && !raw.diagnostics.length && !raw.invalid.size) state = this.tryIncremental(prev, raw, parts);
    if (state) this.stats.incrementalLoads++;
    else {
      const set = finish(raw);
      this.stats.fullLoads++;
      // The indexes the next Workload change is checked against are built now, as part
      // of the full load, not on the next (small, latency-bound) change.
      state = { parts, set };
      if (!set.diagnostics.length) {
        state.addresses = policyAddresses(set.analysis.model);
        servicesIndex(set.analysis.model);
      }
    }
    if (!state.set.diagnostics.length && raw.parts) this.loaded = state;
    return state.set;
  }

  private tryIncremental(prev: LoadState, raw: LoadResult, parts: Map<string, FileLoad>): LoadState | undefined {
    const removed: LoadedObject[] = [];
    const added: LoadedObject[] = [];
    for (const [file, load] of parts) {
      const old = prev.parts.get(file);
      if (old === load) continue;
      if (old) removed.push(...old.objects);
      added.push(...load.objects);
    }
    for (const [file, old] of prev.parts) if (!parts.has(file)) removed.push(...old.objects);
    if (removed.some((o) => o.kind !== 'Workload') || added.some((o) => o.kind !== 'Workload')) return undefined;
    const model = prev.set.analysis.model;
    // A changed file is parsed anew, every object of it: the ones that are the same as
    // before (same key, same content) are not changes. The model takes the new object
    // (its position in the file may have moved), nothing else sees a difference.
    const same = sameObjects(removed as LoadedObject<WorkloadObject>[], added as LoadedObject<WorkloadObject>[]);
    const addresses = prev.addresses ?? policyAddresses(model);
    const servicesOf = servicesIndex(model);
    // Checked before anything is changed: a problem leaves `prev` intact for the full path.
    const workloads = new Map(model.workloads);
    const freed = new Set<string>();
    for (const o of removed as LoadedObject<WorkloadObject>[]) {
      if (workloads.get(o.key) !== o) return undefined;
      if (same.has(o)) continue;
      workloads.delete(o.key);
      if (!o.object.spec.hostNetwork) freed.add(o.object.spec.address);
    }
    const claimed = new Map<string, string>();
    const replaced = new Set<string>();
    for (const o of added as LoadedObject<WorkloadObject>[]) {
      if (same.has(o)) {
        // Unchanged, but a second definition of the key would be a duplicate.
        if (replaced.has(o.key) || workloads.get(o.key) !== same.get(o)) return undefined;
        replaced.add(o.key);
        workloads.set(o.key, o);
        continue;
      }
      if (workloads.has(o.key)) return undefined; // duplicate name
      workloads.set(o.key, o);
      const { spec, metadata } = o.object;
      if (!spec.hostNetwork) {
        if (claimed.has(spec.address) || (addresses.has(spec.address) && !freed.has(spec.address))) return undefined; // address clash
        claimed.set(spec.address, o.key);
      }
      if (cidrContains(model.vipRange, parseIPv4(spec.address) as number)) return undefined;
      if (spec.ports) {
        const listening = new Set(spec.ports.map((p) => p.port));
        for (const key of servicesOf(metadata.namespace as string, metadata.labels ?? {})) {
          const svc = model.services.get(key) as LoadedObject<ServiceObject>;
          if (svc.object.spec.ports.some((p) => { const t = p.targetPort ?? p.port; return typeof t === 'number' && !listening.has(t); })) return undefined;
        }
      }
    }
    for (const a of freed) addresses.delete(a);
    for (const [a, k] of claimed) addresses.set(a, k);
    const set: PolicyLoadResult = {
      objects: raw.objects, diagnostics: [], files: raw.files,
      analysis: { model: { ...model, workloads }, tables: prev.set.analysis.tables, diagnostics: [] },
    };
    this.changes.set(set, {
      base: prev.set,
      removed: (removed as LoadedObject<WorkloadObject>[]).filter((o) => !same.has(o)),
      added: (added as LoadedObject<WorkloadObject>[]).filter((o) => !same.has(o)),
    });
    return { parts, set, addresses };
  }

  /** compile(set, registered, opts), incrementally when `set` is a Workload change of
   *  the set this engine compiled last and `opts.previous` is that compile's snapshot. */
  compile(set: PolicyLoadResult, registered: readonly WorkloadRegistration[] = [], opts: CompileOptions = {}): Snapshot {
    const change = this.changes.get(set);
    const last = this.compiled;
    const reg = JSON.stringify(registered);
    const nodes = JSON.stringify(opts.nodes ?? []);
    let snapshot: Snapshot | undefined;
    if (change && last && change.base === last.set && reg === last.registered && nodes === last.nodes && samePrevious(opts, last.snapshot)) {
      snapshot = compileWorkloadChange(last.snapshot, set.analysis.model, change, registered, opts, servicesIndex(set.analysis.model));
    }
    if (snapshot) this.stats.incrementalCompiles++;
    else {
      snapshot = compile(set, registered, opts);
      this.stats.fullCompiles++;
    }
    if (opts.version !== undefined) CALLER_NAMED.add(snapshot);
    this.compiled = { set, registered: reg, nodes, snapshot };
    return snapshot;
  }
}

/** Pairs of a removed and an added Workload with the same key and content, both ways
 *  (removed → added, added → removed). */
function sameObjects(removed: readonly LoadedObject<WorkloadObject>[], added: readonly LoadedObject<WorkloadObject>[]): Map<LoadedObject<WorkloadObject>, LoadedObject<WorkloadObject>> {
  const out = new Map<LoadedObject<WorkloadObject>, LoadedObject<WorkloadObject>>();
  const byKey = new Map<string, LoadedObject<WorkloadObject>>();
  for (const o of removed) if (!byKey.has(o.key)) byKey.set(o.key, o);
  for (const o of added) {
    const r = byKey.get(o.key);
    if (!r || out.has(r) || JSON.stringify(r.object) !== JSON.stringify(o.object)) continue;
    out.set(r, o);
    out.set(o, r);
  }
  return out;
}

/** Whether `opts.previous` (what compile() keeps allocated VIPs from) is the snapshot the
 *  engine compiled last: that object, or one with the same content hash (a recompile
 *  that changed nothing is not adopted, so the caller still holds the earlier, equal
 *  snapshot). Caller-named versions (git commits) must be the same object. */
function samePrevious(opts: CompileOptions, last: Snapshot): boolean {
  if (opts.previous === last) return true;
  return opts.version === undefined && opts.previous !== undefined && opts.previous.version === last.version && !CALLER_NAMED.has(last);
}

function policyAddresses(model: Model): Map<string, string> {
  const out = new Map<string, string>();
  for (const w of model.workloads.values()) if (!w.object.spec.hostNetwork) out.set(w.object.spec.address, w.key);
  return out;
}

/** Index of `key` in a list sorted by key, or -1. */
function find<T extends { key: string }>(list: readonly T[], key: string): number {
  let lo = 0, hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const k = (list[mid] as T).key;
    if (k === key) return mid;
    if (k < key) lo = mid + 1; else hi = mid - 1;
  }
  return -1;
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** `prev` with the change applied: what compile() gives for the changed set, keeping
 *  every unchanged object of `prev`. undefined: not applicable, compile in full. */
function compileWorkloadChange(
  prev: Snapshot, model: Model, change: WorkloadChange, registered: readonly WorkloadRegistration[], opts: CompileOptions,
  servicesOf: ReturnType<typeof selectorIndex>,
): Snapshot | undefined {
  const changed = new Set([...change.removed, ...change.added].map((o) => o.key));
  // A registration of the same name is shadowed by a policy Workload: it would appear
  // or vanish with it.
  if (registered.some((r) => changed.has(`${r.namespace}/${r.name}`))) return undefined;
  const added = change.added.map((o) => workloadState(fromObject(o), 'policy', model.mesh.trustDomain, servicesOf)).sort(byKey);
  const affected = new Set<string>();
  for (const w of prev.workloads) if (changed.has(w.key)) for (const s of w.services) affected.add(s);
  for (const w of added) for (const s of w.services) affected.add(s);
  const workloads: WorkloadState[] = [];
  {
    let j = 0;
    for (const w of prev.workloads) {
      if (changed.has(w.key)) continue;
      while (j < added.length && (added[j] as WorkloadState).key < w.key) workloads.push(added[j++] as WorkloadState);
      workloads.push(w);
    }
    while (j < added.length) workloads.push(added[j++] as WorkloadState);
  }
  const rebuilt = new Map<string, ServiceState>();
  for (const key of affected) {
    const i = find(prev.services, key);
    const obj = model.services.get(key);
    if (i < 0 || !obj) return undefined;
    const before = prev.services[i] as ServiceState;
    const members: WorkloadState[] = [];
    for (const e of before.endpoints) {
      if (changed.has(e.workload)) continue;
      const k = find(workloads, e.workload);
      if (k < 0) return undefined;
      members.push(workloads[k] as WorkloadState);
    }
    for (const w of added) if (w.services.includes(key)) members.push(w);
    members.sort(byKey);
    rebuilt.set(key, serviceState(obj, before.vip, members, (k) => { const o = model.workloads.get(k); return o && declaredPorts(o); }));
  }
  const services = rebuilt.size ? prev.services.map((s) => rebuilt.get(s.key) ?? s) : prev.services;
  const authorizationPolicies = prev.authorizationPolicies.map((a): AuthorizationPolicyState => {
    const o = model.authorizationPolicies.get(a.key) as LoadedObject<AuthorizationPolicyObject>;
    let list: string[];
    if (o.object.spec.targetRef) {
      const target = rebuilt.get(refKey(o.object.spec.targetRef, o));
      if (!target) return a;
      list = [...new Set(target.endpoints.map((e) => e.workload))].sort();
    } else {
      const selected = added.filter((w) => authorizationSelects(o, w));
      if (!selected.length && !a.workloads.some((k) => changed.has(k))) return a;
      list = [...new Set([...a.workloads.filter((k) => !changed.has(k)), ...selected.map((w) => w.key)])].sort();
    }
    return sameList(list, a.workloads) ? a : { ...a, workloads: list };
  });
  let nodes = compileNodes(model, workloads, opts.nodes ?? []);
  if (JSON.stringify(nodes) === JSON.stringify(prev.nodes)) nodes = prev.nodes;
  const content = {
    mesh: prev.mesh, services, workloads, routes: prev.routes, trafficPolicies: prev.trafficPolicies, authorizationPolicies, nodes,
  };
  return { version: opts.version ?? contentHash(content), createdAt: (opts.now ?? new Date()).toISOString(), ...content };
}
