// The addresses the kernel's list of this node's workloads (weft_local_v1, which mTLS
// STRICT lets SYNs from) is made of.
import { networkInterfaces } from 'node:os';

/** `weft run` workloads' addresses, plus in Kubernetes mode the pods' and the node's
 *  own interfaces', distinct and sorted. */
export function localAddresses(registered: string[], pods: string[] | null): string[] {
  return [...new Set([...registered, ...(pods ? [...pods, ...nodeAddresses()] : [])])].sort();
}

/** The addresses of this node's own interfaces (the agent runs on the host network in
 *  Kubernetes): kubelet probes a pod from whichever of them routes to it (often the pod
 *  bridge's), and mTLS STRICT must let the node itself through. */
export function nodeAddresses(): string[] {
  return Object.values(networkInterfaces()).flat()
    .filter((a): a is NonNullable<typeof a> => a !== undefined && !a.internal && !(a.family === 'IPv6' && a.address.startsWith('fe80')))
    .map((a) => a.address);
}
