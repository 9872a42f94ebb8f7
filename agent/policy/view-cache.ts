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
import type { Snapshot } from './snapshot';
import type { PathIndex } from './node-view';
import {
  NODE_RESOURCE, nodeResource, portPaths, serviceResourceName, sharedParts, type ServiceShared,
} from './view-resources';

export interface EncodedResource {
  version: string;
  body(): Buffer;
}

interface SharedEntry {
  shared: ServiceShared;
  json: string;
  hash: string;
  /** Everything besides the node that the path decisions depend on. */
  inputs: string;
}

interface NodeServiceEntry {
  inputs: string;
  version: string;
  pathsJson: string;
}

interface NodeEntry {
  /** Snapshot version the entry was last brought up to. */
  snapshot: string;
  resources: Map<string, EncodedResource>;
  services: Map<string, NodeServiceEntry>;
}

const hash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16);

export class ViewResourceCache {
  private snap: Snapshot | undefined;
  private shared = new Map<string, SharedEntry>();
  private index: PathIndex = { tp: new Map(), authorized: new Set() };
  private readonly nodes = new Map<string, NodeEntry>();

  /** A new snapshot is served: recompute the shared parts (JSON + hash per service). */
  setSnapshot(snap: Snapshot): void {
    const parts = sharedParts(snap);
    const shared = new Map<string, SharedEntry>();
    for (const s of parts.services) {
      const json = JSON.stringify(s);
      const h = hash(json);
      const guarded = s.service.endpoints.find((e) => parts.index.authorized.has(e.workload))?.workload ?? '';
      shared.set(s.service.key, { shared: s, json, hash: h, inputs: `${h}|${guarded}` });
    }
    this.snap = snap;
    this.shared = shared;
    this.index = parts.index;
  }

  /** Every resource of `node`'s view of the current snapshot, by name. */
  resources(node: string): Map<string, EncodedResource> {
    const snap = this.snap;
    if (!snap) return new Map();
    let entry = this.nodes.get(node);
    if (entry?.snapshot === snap.version) return entry.resources;
    const previous = entry?.services ?? new Map<string, NodeServiceEntry>();
    entry = { snapshot: snap.version, resources: new Map(), services: new Map() };
    const nodeJson = JSON.stringify(nodeResource(snap, node));
    entry.resources.set(NODE_RESOURCE, { version: hash(nodeJson), body: () => Buffer.from(nodeJson) });
    for (const [key, s] of this.shared) {
      let e = previous.get(key);
      if (e?.inputs !== s.inputs) {
        const pathsJson = JSON.stringify(portPaths(node, s.shared, this.index));
        e = { inputs: s.inputs, version: hash(`${s.hash}|${pathsJson}`), pathsJson };
      }
      entry.services.set(key, e);
      const { pathsJson } = e;
      entry.resources.set(serviceResourceName(key), { version: e.version, body: () => Buffer.from(`{"paths":${pathsJson},${s.json.slice(1)}`) });
    }
    this.nodes.set(node, entry);
    return entry.resources;
  }

  /** The node has no stream any more: forget its entry (it is rebuilt on reconnect). */
  release(node: string): void {
    this.nodes.delete(node);
  }
}
