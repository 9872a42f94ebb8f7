// The view resources an agent holds (delta Sync), and the one way to change them: merge a
// delta into a copy, check every resource and assemble the whole NodeView from the copy.
// Nothing is committed here; the client commits the copy only after the agent applied
// the assembled view, which is what makes a delta all-or-nothing.
import { WeftError } from '../lib/errors';
import type { NodeView } from '../policy/snapshot';
import {
  NODE_RESOURCE, SERVICE_RESOURCE_PREFIX, assembleNodeView, checkNodeResource, checkServiceResource, type ServiceResource,
} from '../policy/view-resources';
import type { CachedResource } from './cache';

export interface HeldResource extends CachedResource {
  /** The parsed and checked body. */
  value: unknown;
}

export interface IncomingResource {
  name: string;
  version: string;
  body: Buffer;
}

/** Parses and checks one resource body; throws WEFT_ERR_PROTOCOL if it is not a valid
 *  resource of that name for this node. */
export function checkResource(name: string, value: unknown, node: string): unknown {
  if (name === NODE_RESOURCE) return checkNodeResource(value, node);
  if (name.startsWith(SERVICE_RESOURCE_PREFIX)) return checkServiceResource(name, value);
  throw new WeftError('WEFT_ERR_PROTOCOL', `unknown resource '${name.slice(0, 120)}'`);
}

/** `held` with the delta applied (a new map; `held` is untouched), and the view it makes. */
export function mergeDelta(
  held: ReadonlyMap<string, HeldResource>, version: string, node: string,
  changed: readonly IncomingResource[], removed: readonly string[],
): { resources: Map<string, HeldResource>; view: NodeView } {
  const next = new Map(held);
  for (const name of removed) {
    if (!next.delete(name)) throw new WeftError('WEFT_ERR_PROTOCOL', `delta removes '${name.slice(0, 120)}', which this agent does not hold`);
  }
  for (const r of changed) {
    if (!r.version) throw new WeftError('WEFT_ERR_PROTOCOL', `resource '${r.name.slice(0, 120)}' has no version`);
    const json = r.body.toString('utf8');
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch (e) {
      throw new WeftError('WEFT_ERR_PROTOCOL', `resource '${r.name.slice(0, 120)}' is not valid JSON: ${(e as Error).message}`);
    }
    next.set(r.name, { version: r.version, json, value: checkResource(r.name, value, node) });
  }
  return { resources: next, view: assemble(next, version, node) };
}

/** The view `resources` make; throws WEFT_ERR_PROTOCOL when the node resource is missing. */
export function assemble(resources: ReadonlyMap<string, HeldResource>, version: string, node: string): NodeView {
  const nodeRes = resources.get(NODE_RESOURCE);
  if (!nodeRes) throw new WeftError('WEFT_ERR_PROTOCOL', `the view has no '${NODE_RESOURCE}' resource`);
  const services: ServiceResource[] = [];
  for (const [name, r] of resources) if (name !== NODE_RESOURCE) services.push(r.value as ServiceResource);
  return assembleNodeView(version, checkNodeResource(nodeRes.value, node), services);
}
