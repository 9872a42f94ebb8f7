// Who asks: the namespace of the workload a DNS query came from, by its source address,
// so a bare NAME resolves in the caller's namespace as a search list would. A workload in
// its own network namespace (a pod) has an address of its own; workloads sharing the
// node's namespace share its address (and reach a loopback listener from 127.0.0.1), so
// their namespace is known only when all of them are in one. Unknown: bare names go
// upstream.
import { networkInterfaces } from 'node:os';
import type { LocalWorkload } from '../node/workloads';

export function callerNamespace(workloads: readonly Pick<LocalWorkload, 'address' | 'namespace'>[], ip: string, nodeAddress?: string): string | undefined {
  const addr = ip.replace(/^::ffff:/i, '');
  const loopback = addr.startsWith('127.') || addr === '::1';
  const namespaces = new Set<string>();
  for (const w of workloads) {
    const a = w.address?.replace(/^::ffff:/i, '');
    if (a === addr || (loopback && (a === nodeAddress || a?.startsWith('127.')))) namespaces.add(w.namespace);
  }
  return namespaces.size === 1 ? [...namespaces][0] : undefined;
}

let nodeAddresses: { at: number; set: Set<string> } | undefined;

/** This node's own interface addresses (re-read at most every 5 s). */
function ownAddresses(now = Date.now()): Set<string> {
  if (!nodeAddresses || now - nodeAddresses.at > 5000) {
    const set = new Set<string>();
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) set.add(a.address);
    nodeAddresses = { at: now, set };
  }
  return nodeAddresses.set;
}

/** Whether a query from `ip` may be answered: loopback, this node's own addresses, or a
 *  local workload's address. Anyone else reaching the listener on the node's address
 *  (another host on the network) is refused: the agent answers for its node only. */
export function callerAllowed(workloads: readonly Pick<LocalWorkload, 'address'>[], ip: string): boolean {
  const addr = ip.replace(/^::ffff:/i, '');
  if (addr.startsWith('127.') || addr === '::1' || ownAddresses().has(addr)) return true;
  return workloads.some((w) => w.address?.replace(/^::ffff:/i, '') === addr);
}
