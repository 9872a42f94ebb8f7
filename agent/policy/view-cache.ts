// The control API's encoded view resources, kept incrementally across snapshots so that
// a change costs what it touches, not nodes × services:
//   - per snapshot, each service's node-independent part (ServiceShared) is serialised
//     and hashed once and shared by every node (no per-node copies of the service table);
//   - per node, a service's path decisions are recomputed only when that service's
//     shared hash or its "guarded by authorization" input changed; otherwise the node
//     keeps the previous decision and resource version.
// Resource versions are content hashes, so comparing what an agent holds with what it
// should hold is a string comparison per resource. Bodies are built on demand (send
// time) from the shared JSON plus the node's decisions and are not retained.
import { createHash } from 'node:crypto';
import type { Snapshot, WorkloadState } from './snapshot';
import type { PathIndex } from './path-decision';
import {
  NODE_RESOURCE, nodeResource, portPaths, serviceResourceName, sharedParts, type ServiceShared,
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
}

/** One node's encoding of a service: the shared JSON plus this node's decisions. */
class ServiceEncoding implements EncodedResource {
  readonly version: string;

  constructor(readonly inputs: string, private readonly tail: Buffer, hashOfShared: string, private readonly pathsJson: string) {
    this.version = hash(`${hashOfShared}|${pathsJson}`);
  }

  body(): Buffer {
    return Buffer.concat([Buffer.from(`{"paths":${this.pathsJson},`), this.tail]);
  }
}

class JsonEncoding implements EncodedResource {
  readonly version: string;

  constructor(private readonly json: string) {
    this.version = hash(json);
  }

  body(): Buffer {
    return Buffer.from(this.json);
  }
}

interface NodeEntry {
  /** Snapshot version the entry was last brought up to. */
  snapshot: string;
  /** The node's zone then: path decisions depend on it (topology hints), so a change
   *  recomputes them all. */
  zone: string | undefined;
  /** By resource name; updated in place, entries of unchanged services kept. */
  resources: Map<string, EncodedResource>;
}

const hash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16);

export class ViewResourceCache {
  private snap: Snapshot | undefined;
  private shared = new Map<string, SharedEntry>();
  private index: PathIndex = { tp: new Map(), authorized: new Set(), zones: new Map() };
  private byNode = new Map<string, WorkloadState[]>();
  private readonly nodes = new Map<string, NodeEntry>();

  /** A new snapshot is served: recompute the shared parts (JSON + hash per service). */
  setSnapshot(snap: Snapshot): void {
    const parts = sharedParts(snap);
    const shared = new Map<string, SharedEntry>();
    for (const s of parts.services) {
      const json = JSON.stringify(s);
      const h = hash(json);
      const guarded = s.service.endpoints.find((e) => parts.index.authorized.has(e.workload))?.workload ?? '';
      const name = serviceResourceName(s.service.key);
      shared.set(name, { name, shared: s, tail: Buffer.from(json.slice(1)), hash: h, inputs: `${h}|${guarded}` });
    }
    this.byNode = new Map();
    for (const w of snap.workloads) {
      const list = this.byNode.get(w.node);
      if (list) list.push(w); else this.byNode.set(w.node, [w]);
    }
    this.snap = snap;
    this.shared = shared;
    this.index = parts.index;
  }

  /** Every resource of `node`'s view of the current snapshot, by name. The map belongs
   *  to the cache: read it before the next setSnapshot(). */
  resources(node: string): ReadonlyMap<string, EncodedResource> {
    const snap = this.snap;
    if (!snap) return new Map();
    let entry = this.nodes.get(node);
    if (entry?.snapshot === snap.version) return entry.resources;
    if (!entry) {
      entry = { snapshot: '', zone: undefined, resources: new Map() };
      this.nodes.set(node, entry);
    }
    entry.snapshot = snap.version;
    const zone = this.index.zones?.get(node);
    const zoneChanged = entry.zone !== zone;
    entry.zone = zone;
    const resources = entry.resources;
    resources.set(NODE_RESOURCE, new JsonEncoding(JSON.stringify(nodeResource(snap, node, this.byNode.get(node) ?? []))));
    for (const [name, s] of this.shared) {
      const e = resources.get(name) as ServiceEncoding | undefined;
      if (e?.inputs === s.inputs && !zoneChanged) continue;
      resources.set(name, new ServiceEncoding(s.inputs, s.tail, s.hash, JSON.stringify(portPaths(node, s.shared, this.index))));
    }
    if (resources.size !== this.shared.size + 1) {
      for (const name of resources.keys()) if (name !== NODE_RESOURCE && !this.shared.has(name)) resources.delete(name);
    }
    return resources;
  }

  /** The node has no stream any more: forget its entry (it is rebuilt on reconnect). */
  release(node: string): void {
    this.nodes.delete(node);
  }
}
