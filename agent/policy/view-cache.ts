// The control API's encoded view resources, sized for a thousand nodes:
//   - per snapshot, each service's node-independent part (ServiceShared) is serialised
//     and hashed once and shared by every node (no per-node copies of the service table);
//   - a node's path decision for a service depends on the node only through its zone,
//     unless one of the service's endpoints is on that node (decidePath: local backends,
//     internalTrafficPolicy Local). So the service resources are held once per zone (a
//     ZoneLayer, shared by every node of that zone), and each node keeps only overrides:
//     the services it hosts an endpoint of, and its node resource. A thousand nodes ×
//     five thousand services is then a few layers and ~50 overrides per node, not five
//     million entries;
//   - across snapshots a resource whose inputs did not change keeps its encoding (and
//     version) instead of being recomputed;
//   - a NodeResources value is immutable once built, so a Sync stream can remember
//     "the agent ACKed this" by reference, and the difference between two of them is
//     computed from the layer difference (once per pair of layers, shared by every node
//     of the zone) plus the overrides.
// Resource versions are content hashes: comparing what an agent holds with what it
// should hold is a string comparison per resource, and they are the same on every
// control API replica. Bodies are built on demand (send time) and not retained.
import { createHash } from 'node:crypto';
import type { Snapshot, WorkloadState } from './snapshot';
import type { PathIndex } from './path-decision';
import {
  NODE_RESOURCE, digestString, nodeResource, nodeTable, portPaths, resourceDigestTerm, serviceResourceName, sharedParts, type NodeResource, type ServiceShared,
} from './view-resources';

export interface EncodedResource {
  version: string;
  body(): Buffer;
}

interface SharedEntry {
  name: string;
  shared: ServiceShared;
  /** JSON of `shared` without its opening brace, outside the V8 heap: every node's body
   *  for the service is its decisions followed by these same bytes. */
  tail: Buffer;
  hash: string;
  /** Everything besides the node that the path decisions depend on. */
  inputs: string;
  /** The nodes with an endpoint of the service (each once). */
  nodes: readonly string[];
}

/** One encoding of a service: the shared JSON plus a node's (or a zone's) decisions. */
class ServiceEncoding implements EncodedResource {
  readonly version: string;

  constructor(readonly inputs: string, private readonly tail: Buffer, hashOfShared: string, private readonly pathsJson: string) {
    this.version = hash(`${hashOfShared}|${pathsJson}`);
  }

  body(): Buffer {
    return Buffer.concat([Buffer.from(`{"paths":${this.pathsJson},`), this.tail]);
  }
}

/** The node resource: the node's own part, then the node table shared by every node
 *  of the snapshot (the bytes are JSON.stringify(nodeResource()) exactly). */
class NodeEncoding implements EncodedResource {
  readonly version: string;

  constructor(readonly ownJson: string, readonly table: { json: Buffer; hash: string }) {
    this.version = hash(`${ownJson}|${table.hash}`);
  }

  body(): Buffer {
    return Buffer.concat([Buffer.from(`${this.ownJson.slice(0, -1)},"nodes":`), this.table.json, Buffer.from('}')]);
  }
}

/** A node resource's own part (all but the node table) and its JSON. */
type OwnPart = Omit<NodeResource, 'nodes'> & { json: string };

const sameItems = <T>(a: readonly T[], b: readonly T[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** The same service, routes and traffic policy objects. */
function sameShared(a: ServiceShared, b: ServiceShared): boolean {
  return a.service === b.service && a.trafficPolicy === b.trafficPolicy && sameItems(a.routes, b.routes);
}

const hash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16);

/** Not a node name (node names are DNS subdomains): "a node that hosts nothing". */
const REMOTE = '\u0000';

/** The service resources as seen from any node of one zone that hosts none of their
 *  endpoints. Immutable once built. */
class ZoneLayer {
  /** Differences from earlier layers, computed once and shared by every node. */
  readonly diffs = new WeakMap<ZoneLayer, { changed: string[]; removed: string[] }>();

  private digestSum: bigint | undefined;

  constructor(readonly resources: ReadonlyMap<string, ServiceEncoding>) {}

  /** Sum of the digest terms of every resource (resourceSetDigest), once per layer. */
  sum(): bigint {
    if (this.digestSum === undefined) {
      let sum = 0n;
      for (const [name, r] of this.resources) sum += resourceDigestTerm(name, r.version);
      this.digestSum = sum;
    }
    return this.digestSum;
  }

  diffFrom(old: ZoneLayer): { changed: string[]; removed: string[] } {
    let d = this.diffs.get(old);
    if (!d) {
      const changed: string[] = [];
      for (const [name, r] of this.resources) {
        const o = old.resources.get(name);
        if (o !== r && o?.version !== r.version) changed.push(name);
      }
      const removed: string[] = [];
      for (const name of old.resources.keys()) if (!this.resources.has(name)) removed.push(name);
      d = { changed, removed };
      this.diffs.set(old, d);
    }
    return d;
  }
}

/** One node's view of one snapshot, by resource name: its zone's layer with the node's
 *  overrides on top. Immutable. */
export class NodeResources implements ReadonlyMap<string, EncodedResource> {
  constructor(
    readonly snapshot: string,
    private readonly layer: ZoneLayer,
    /** The node resource and the services with an endpoint on this node. */
    readonly overrides: ReadonlyMap<string, EncodedResource>,
  ) {}

  private digestValue: string | undefined;

  get size(): number { return this.layer.resources.size + 1; }

  /** resourceSetDigest() of this view: the zone layer's sum (computed once for every
   *  node of the zone) corrected by the node's overrides. */
  digest(): string {
    if (this.digestValue === undefined) {
      let sum = this.layer.sum();
      for (const [name, r] of this.overrides) {
        const under = this.layer.resources.get(name);
        if (under) sum -= resourceDigestTerm(name, under.version);
        sum += resourceDigestTerm(name, r.version);
      }
      this.digestValue = digestString(sum);
    }
    return this.digestValue;
  }
  /** The node's own encoding of `name`, if it has one (not its zone's). */
  override(name: string): EncodedResource | undefined { return this.overrides.get(name); }
  get(name: string): EncodedResource | undefined { return this.overrides.get(name) ?? this.layer.resources.get(name); }
  has(name: string): boolean { return this.overrides.has(name) || this.layer.resources.has(name); }

  *entries(): MapIterator<[string, EncodedResource]> {
    const node = this.overrides.get(NODE_RESOURCE);
    if (node) yield [NODE_RESOURCE, node];
    for (const [name, r] of this.layer.resources) yield [name, this.overrides.get(name) ?? r];
  }

  *keys(): MapIterator<string> { for (const [k] of this.entries()) yield k; }
  *values(): MapIterator<EncodedResource> { for (const [, v] of this.entries()) yield v; }
  [Symbol.iterator](): MapIterator<[string, EncodedResource]> { return this.entries(); }
  forEach(fn: (value: EncodedResource, key: string, map: ReadonlyMap<string, EncodedResource>) => void): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }

  /** How the resource versions an agent lists (its hello) differ from this view: names
   *  it holds at another version (dirty), names it lacks (missing), names the view does
   *  not have (extra). One pass over the zone layer's map plus the overrides, no
   *  per-entry allocation: a thousand agents reconnecting at once each list thousands. */
  compare(versions: Readonly<Record<string, string>>): { dirty: Set<string>; missing: Set<string>; extra: string[] } {
    const dirty = new Set<string>();
    const missing = new Set<string>();
    let listed = 0;
    for (const name in versions) { listed++; void name; }
    let held = 0;
    const check = (name: string, version: string) => {
      const v = versions[name];
      if (v === undefined) missing.add(name);
      else { held++; if (v !== version) dirty.add(name); }
    };
    for (const [name, r] of this.layer.resources) if (!this.overrides.has(name)) check(name, r.version);
    for (const [name, r] of this.overrides) check(name, r.version);
    const extra: string[] = [];
    if (held < listed) for (const name in versions) if (!this.has(name)) extra.push(name);
    return { dirty, missing, extra };
  }

  /** What an agent holding `old` must be sent to hold this: the resources whose version
   *  differs, and the names that are gone. */
  deltaFrom(old: NodeResources): { changed: [string, EncodedResource][]; removed: string[] } {
    const layerChanged = this.layer === old.layer ? [] : this.layer.diffFrom(old.layer).changed;
    // The same overrides (a node none of whose own resources changed: most nodes, for a
    // change to a few services) cannot differ; only the layer's changes can.
    const candidates = this.overrides === old.overrides ? layerChanged : new Set<string>(layerChanged);
    if (candidates instanceof Set) {
      for (const n of old.overrides.keys()) candidates.add(n);
      for (const n of this.overrides.keys()) candidates.add(n);
    }
    const changed: [string, EncodedResource][] = [];
    for (const n of candidates) {
      const r = this.get(n);
      if (r && old.get(n)?.version !== r.version) changed.push([n, r]);
    }
    return { changed, removed: this.layer === old.layer ? [] : this.layer.diffFrom(old.layer).removed };
  }
}

export class ViewResourceCache {
  private snap: Snapshot | undefined;
  private shared = new Map<string, SharedEntry>();
  private index: PathIndex = { tp: new Map(), authorized: new Set(), zones: new Map() };
  private byNode = new Map<string, WorkloadState[]>();
  /** Node → names of the services with an endpoint on it. */
  private hosted = new Map<string, string[]>();
  private table: { json: Buffer; hash: string } = { json: Buffer.from('{}'), hash: hash('{}') };
  /** Zone ('' for none) → layer of the current snapshot, and of the one before (reuse). */
  private layers = new Map<string, ZoneLayer>();
  private previousLayers = new Map<string, ZoneLayer>();
  private readonly nodes = new Map<string, { view: NodeResources; zone: string | undefined; own: OwnPart; onNode: readonly WorkloadState[]; hosted: readonly string[]; seq: number }>();
  /** Counts setSnapshot() calls; `changed` are the service resources whose shared entry
   *  is not the previous snapshot's (or that are gone). */
  private seq = 0;
  private changed = new Set<string>();
  /** The mesh and the authorization policies are the previous snapshot's (same objects). */
  private ownInputsKept = false;

  /** A new snapshot is served: the shared parts (JSON + hash per service), recomputed
   *  only for services whose objects are not the previous snapshot's (an incremental
   *  compile keeps the objects of everything it did not change). */
  setSnapshot(snap: Snapshot): void {
    const parts = sharedParts(snap);
    const shared = new Map<string, SharedEntry>();
    const hosted = new Map<string, string[]>();
    for (const s of parts.services) {
      const guarded = s.service.endpoints.find((e) => parts.index.authorized.has(e.workload))?.workload ?? '';
      const name = serviceResourceName(s.service.key);
      const before = this.shared.get(name);
      let entry: SharedEntry;
      if (before && sameShared(before.shared, s)) {
        const inputs = `${before.hash}|${guarded}`;
        entry = before.inputs === inputs ? before : { ...before, inputs };
      } else {
        const json = JSON.stringify(s);
        const h = hash(json);
        entry = { name, shared: s, tail: Buffer.from(json.slice(1)), hash: h, inputs: `${h}|${guarded}`, nodes: [...new Set(s.service.endpoints.map((e) => e.node))] };
      }
      shared.set(name, entry);
      for (const n of entry.nodes) {
        const list = hosted.get(n);
        if (list) list.push(name); else hosted.set(n, [name]);
      }
    }
    this.byNode = new Map();
    for (const w of snap.workloads) {
      const list = this.byNode.get(w.node);
      if (list) list.push(w); else this.byNode.set(w.node, [w]);
    }
    // The node table is encoded again only when the snapshot's node list is another one
    // (an incremental compile keeps the same list when no node changed).
    if (snap.nodes !== this.snap?.nodes || !this.snap) {
      const tableJson = JSON.stringify(nodeTable(snap));
      const tableHash = hash(tableJson);
      if (tableHash !== this.table.hash) this.table = { json: Buffer.from(tableJson), hash: tableHash };
    }
    // Whether a node's own part can only have changed through its workloads.
    this.ownInputsKept = this.snap !== undefined && this.snap.mesh === snap.mesh && sameItems(this.snap.authorizationPolicies, snap.authorizationPolicies);
    const changed = new Set<string>();
    for (const [name, e] of shared) if (this.shared.get(name) !== e) changed.add(name);
    for (const name of this.shared.keys()) if (!shared.has(name)) changed.add(name);
    this.changed = changed;
    this.seq++;
    this.snap = snap;
    this.shared = shared;
    this.hosted = hosted;
    this.index = parts.index;
    this.previousLayers = this.layers.size ? this.layers : this.previousLayers;
    this.layers = new Map();
  }

  private layer(zone: string | undefined): ZoneLayer {
    const key = zone ?? '';
    let layer = this.layers.get(key);
    if (layer) return layer;
    const prev = this.previousLayers.get(key)?.resources;
    const index: PathIndex = { ...this.index, zones: zone === undefined ? new Map() : new Map([[REMOTE, zone]]) };
    const resources = new Map<string, ServiceEncoding>();
    for (const [name, s] of this.shared) {
      const e = prev?.get(name);
      resources.set(name, e?.inputs === s.inputs ? e : new ServiceEncoding(s.inputs, s.tail, s.hash, JSON.stringify(portPaths(REMOTE, s.shared, index))));
    }
    layer = new ZoneLayer(resources);
    this.layers.set(key, layer);
    return layer;
  }

  /** Every resource of `node`'s view of the current snapshot. */
  resources(node: string): NodeResources {
    const snap = this.snap;
    if (!snap) return new NodeResources('', new ZoneLayer(new Map()), new Map());
    const last = this.nodes.get(node);
    if (last?.view.snapshot === snap.version) return last.view;
    const zone = this.index.zones?.get(node);
    const layer = this.layer(zone);
    const onNode = this.byNode.get(node) ?? [];
    // The node's own part is built again only when one of its inputs changed, and
    // serialised again only when one of its objects did.
    const kept = last?.own;
    let own: OwnPart;
    if (kept && last.seq === this.seq - 1 && this.ownInputsKept && sameItems(last.onNode, onNode)) own = kept;
    else {
      const { nodes: _table, ...built } = nodeResource(snap, node, onNode);
      const json = kept && kept.mesh === built.mesh && sameItems(kept.localWorkloads, built.localWorkloads) && sameItems(kept.authorizationPolicies, built.authorizationPolicies)
        ? kept.json : JSON.stringify(built);
      own = { ...built, json };
    }
    const ownJson = own.json;
    const lastNode = last?.view.override(NODE_RESOURCE);
    const nodeEncoding = lastNode instanceof NodeEncoding && lastNode.ownJson === ownJson && lastNode.table === this.table ? lastNode : new NodeEncoding(ownJson, this.table);
    const hosted = this.hosted.get(node) ?? [];
    // Computed for the snapshot just before, in the same zone, hosting the same services,
    // none of which changed: the service overrides are the previous ones (most nodes, for
    // a change to a few services).
    if (last && last.seq === this.seq - 1 && last.zone === zone && sameItems(last.hosted, hosted) && !hosted.some((n) => this.changed.has(n))) {
      let overrides = last.view.overrides;
      if (overrides.get(NODE_RESOURCE) !== nodeEncoding) overrides = new Map(overrides).set(NODE_RESOURCE, nodeEncoding);
      const view = new NodeResources(snap.version, layer, overrides);
      this.nodes.set(node, { view, zone, own, onNode, hosted, seq: this.seq });
      return view;
    }
    const overrides = new Map<string, EncodedResource>([[NODE_RESOURCE, nodeEncoding]]);
    for (const name of hosted) {
      const s = this.shared.get(name) as SharedEntry;
      // The previous snapshot's override is kept when its inputs and the zone are the same.
      const before = last && last.zone === zone ? last.view.override(name) : undefined;
      overrides.set(name, before instanceof ServiceEncoding && before.inputs === s.inputs
        ? before : new ServiceEncoding(s.inputs, s.tail, s.hash, JSON.stringify(portPaths(node, s.shared, this.index))));
    }
    const view = new NodeResources(snap.version, layer, overrides);
    this.nodes.set(node, { view, zone, own, onNode, hosted, seq: this.seq });
    return view;
  }

  /** The node has no stream any more: forget its entry (it is rebuilt on reconnect). */
  release(node: string): void {
    this.nodes.delete(node);
  }
}
