// Workloads registered at runtime by agents on nodes without Kubernetes (`weft run`).
// They are part of the compiled snapshot, so they are persisted in the state dir and
// survive a control API restart. Validation lives here: a registration that is malformed
// never reaches the compiler.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import type { NodeReport, WorkloadRegistration } from '../policy/snapshot';
import { writeFileAtomic } from '../sync/atomic-file';
import { isDnsSubdomain } from '../lib/names';
import { parseIPv4 } from '../lib/ip';
import { rpcError } from './rpc-error';

export interface RegisteredWorkload extends WorkloadRegistration {
  serviceAccount: string;
  labels: Record<string, string>;
  weight: number;
  /** cgroup v2 id as a decimal string ("" when unknown). */
  cgroupId: string;
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;
const MAX_LABELS = 64;
const UINT64_MAX = 2n ** 64n - 1n;

export function workloadKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

function invalid(msg: string): never {
  throw rpcError(status.INVALID_ARGUMENT, msg);
}

/** Checks a registration request field by field; INVALID_ARGUMENT names the field. */
export function validateRegistration(r: {
  name: string; namespace: string; serviceAccount: string; labels: Record<string, string>;
  address: string; node: string; cgroupId: string; weight: number;
}): RegisteredWorkload {
  if (!DNS_LABEL.test(r.name)) invalid(`name: '${r.name.slice(0, 80)}' is not a DNS label`);
  if (!DNS_LABEL.test(r.namespace)) invalid(`namespace: '${r.namespace.slice(0, 80)}' is not a DNS label`);
  const sa = r.serviceAccount || 'default';
  // Kubernetes service account names are DNS subdomains (dots allowed).
  if (!isDnsSubdomain(sa)) invalid(`service_account: '${sa.slice(0, 80)}' is not a DNS subdomain`);
  if (!isIP(r.address)) invalid(`address: '${r.address.slice(0, 80)}' is not an IP address`);
  const labels = Object.entries(r.labels);
  if (labels.length > MAX_LABELS) invalid(`labels: at most ${MAX_LABELS} labels`);
  for (const [k, v] of labels) {
    if (!LABEL_KEY.test(k)) invalid(`labels: '${k.slice(0, 80)}' is not a valid label key`);
    if (!LABEL_VALUE.test(v)) invalid(`labels: value of '${k}' is not a valid label value`);
  }
  if (r.cgroupId !== '') {
    if (!/^\d{1,20}$/.test(r.cgroupId) || BigInt(r.cgroupId) > UINT64_MAX) invalid(`cgroup_id: '${r.cgroupId.slice(0, 80)}' is not a 64-bit unsigned integer`);
  }
  const weight = r.weight === 0 ? 1 : r.weight;
  if (!Number.isInteger(weight) || weight < 1 || weight > 1_000_000) invalid('weight: expected 1..1000000');
  return {
    name: r.name, namespace: r.namespace, serviceAccount: sa, labels: Object.fromEntries(labels.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    address: r.address, node: r.node, cgroupId: r.cgroupId, weight,
  };
}

/** The address an agent reports in its Sync hello, if it is one other nodes can use: an
 *  IPv4 unicast address, not loopback or unspecified (an agent on a laptop or in a test
 *  reports 127.0.0.1, which would send other nodes' tunnels to themselves). Returns
 *  undefined for "" and such addresses; throws INVALID_ARGUMENT for a non-address. */
export function usableNodeAddress(address: string): string | undefined {
  if (address === '') return undefined;
  if (address.length > 64 || isIP(address) === 0) invalid(`node_address: '${address.slice(0, 64)}' is not an IP address`);
  if (isIP(address) !== 4) return undefined; // the datapath and node table are IPv4
  const first = parseIPv4(address)! >>> 24;
  if (first === 127 || first === 0 || first >= 224) return undefined;
  return address;
}

function readJson<T>(file: string): T | undefined {
  let text: string | undefined;
  try { text = readFileSync(file, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  return text === undefined ? undefined : JSON.parse(text) as T;
}

export class RegistrationStore {
  private readonly byKey = new Map<string, RegisteredWorkload>();
  private readonly file: string | undefined;
  /** Node name → the address its agent reported (node-addresses.json). */
  private readonly nodeAddresses = new Map<string, string>();
  private readonly nodesFile: string | undefined;

  /** With a state dir, registrations are loaded from and saved to registrations.json,
   *  and node addresses agents reported to node-addresses.json, so a restarted control
   *  API serves the same node table before every agent has reconnected. */
  constructor(stateDir?: string) {
    this.file = stateDir ? join(stateDir, 'registrations.json') : undefined;
    this.nodesFile = stateDir ? join(stateDir, 'node-addresses.json') : undefined;
    if (this.file) for (const w of readJson<RegisteredWorkload[]>(this.file) ?? []) this.byKey.set(workloadKey(w.namespace, w.name), w);
    if (this.nodesFile) for (const r of readJson<NodeReport[]>(this.nodesFile) ?? []) this.nodeAddresses.set(r.node, r.address);
  }

  /** Records what a node's agent reported; true when that changed the table. */
  setNodeAddress(node: string, address: string): boolean {
    if (this.nodeAddresses.get(node) === address) return false;
    this.nodeAddresses.set(node, address);
    return true;
  }

  /** Sorted by node name (compiler input must be deterministic). */
  nodeReports(): NodeReport[] {
    return [...this.nodeAddresses].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([node, address]) => ({ node, address }));
  }

  async persistNodes(): Promise<void> {
    if (this.nodesFile) await writeFileAtomic(this.nodesFile, JSON.stringify(this.nodeReports(), null, 1), 0o600);
  }

  get(key: string): RegisteredWorkload | undefined {
    return this.byKey.get(key);
  }

  get size(): number {
    return this.byKey.size;
  }

  /** Sorted by key, as the compiler's input must be deterministic. */
  list(): RegisteredWorkload[] {
    return [...this.byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, w]) => w);
  }

  /** Puts (or, with undefined, removes) one entry; returns what was there before. */
  set(key: string, w: RegisteredWorkload | undefined): RegisteredWorkload | undefined {
    const before = this.byKey.get(key);
    if (w) this.byKey.set(key, w); else this.byKey.delete(key);
    return before;
  }

  async persist(): Promise<void> {
    if (this.file) await writeFileAtomic(this.file, JSON.stringify(this.list(), null, 1), 0o600);
  }
}
