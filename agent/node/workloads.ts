// The workloads running on this node, as the agent knows them: who they are (namespace,
// service account → SPIFFE identity), which cgroup they run in, and the cgroup id the
// kernel records for every connection they open. The outbound path turns that kernel
// id into an identity here — never anything the application sent.
//
// Registrations are persisted in the state directory: workload processes keep running
// while the agent restarts, and the next agent process must still know them.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatIp, isV4MappedBytes, parseIp } from '../lib/ip';
import { WeftError, invalidArg } from '../lib/errors';
import type { WorkloadRegistration } from '../policy/snapshot';

export interface LocalWorkload {
  name: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
  address: string;
  cgroupPath: string;
  /** Decimal string of the 64-bit cgroup id (JSON has no bigint). */
  cgroupId: string;
}

/** The part of the datapath this registry needs (agent/datapath implements it). */
export interface WorkloadCgroups {
  createWorkloadCgroup(namespace: string, name: string): { path: string; id: bigint };
  removeWorkloadCgroup(namespace: string, name: string): void;
}

export interface RegisterRequest {
  name: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
  /** The workload's own address (e.g. its pod IP in its own network namespace); absent:
   *  the node's address (the workload shares the node's network namespace). */
  address?: string;
}

/**
 * A workload address as `weft run --address` and POST /v1/workloads take it: one unicast
 * IPv4 or IPv6 literal (no prefix, port or zone). Returns it canonical (IPv6 compressed,
 * lower case; v4-mapped IPv6 as the IPv4 address), which is how Services select it and
 * how the kernel sees its packets. Throws WEFT_ERR_INVALID_ARG with the reason.
 */
export function validateWorkloadAddress(value: unknown, what = 'address'): string {
  const bad = (why: string) => invalidArg(`${what}: ${JSON.stringify(value)} ${why}`);
  if (typeof value !== 'string') throw bad('is not an IP address (expected a string such as 10.244.1.5 or fd00::5)');
  if (value.includes('%')) throw bad('has a zone id: a workload address must be routable on the node');
  const p = parseIp(value);
  if (!p) throw bad('is not an IPv4 or IPv6 address');
  let { family, bytes } = p;
  if (family === 6 && isV4MappedBytes(bytes)) {
    family = 4;
    bytes = Buffer.concat([bytes.subarray(12, 16), Buffer.alloc(12)]);
  }
  if (bytes.every((x) => x === 0)) throw bad('is the unspecified address');
  if (family === 4 && bytes[0]! >= 224) throw bad('is a multicast, reserved or broadcast address');
  if (family === 6 && bytes[0] === 0xff) throw bad('is a multicast address');
  return formatIp(bytes, family);
}

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

export function validateRegisterRequest(body: unknown): RegisterRequest {
  const b = (body ?? {}) as Record<string, unknown>;
  for (const f of ['name', 'namespace', 'serviceAccount'] as const) {
    if (typeof b[f] !== 'string' || !NAME.test(b[f] as string)) throw invalidArg(`${f}: must be a DNS label (lower-case letters, digits, '-'), got ${JSON.stringify(b[f])}`);
  }
  const labels = (b.labels ?? {}) as Record<string, unknown>;
  if (typeof labels !== 'object' || Array.isArray(labels)) throw invalidArg('labels: must be an object');
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL_KEY.test(k) || typeof v !== 'string' || v.length > 63) throw invalidArg(`labels: invalid label ${JSON.stringify(k)}=${JSON.stringify(v)}`);
  }
  const req: RegisterRequest = { name: b.name as string, namespace: b.namespace as string, serviceAccount: b.serviceAccount as string, labels: labels as Record<string, string> };
  if (b.address !== undefined) req.address = validateWorkloadAddress(b.address);
  return req;
}

export class WorkloadRegistry {
  private readonly byKey = new Map<string, LocalWorkload>();
  private readonly byCgroup = new Map<string, LocalWorkload>();
  private readonly file: string;

  constructor(
    private readonly cgroups: WorkloadCgroups,
    private readonly node: { name: string; address: string },
    stateDir: string,
  ) {
    this.file = join(stateDir, 'workloads.json');
    let saved: LocalWorkload[] = [];
    try { saved = JSON.parse(readFileSync(this.file, 'utf8')) as LocalWorkload[]; } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new WeftError('WEFT_ERR_INTERNAL', `cannot read ${this.file}: ${(e as Error).message}`);
    }
    for (const w of saved) this.index(w);
  }

  register(req: RegisterRequest): LocalWorkload {
    const key = `${req.namespace}/${req.name}`;
    const existing = this.byKey.get(key);
    if (existing && existing.serviceAccount !== req.serviceAccount) {
      throw new WeftError('WEFT_ERR_CONFLICT', `workload ${key} is already registered with service account ${existing.serviceAccount}; deregister it first`);
    }
    // Re-posting a key must not quietly move a workload (labels pick Services' backends,
    // the address goes on STRICT's allow-list): the same registration again is fine
    // (a restarted `weft run`), anything else needs a deregistration first.
    if (existing && (existing.address !== (req.address ?? this.node.address) || !sameLabels(existing.labels, req.labels))) {
      throw new WeftError('WEFT_ERR_CONFLICT', `workload ${key} is already registered with other labels or another address; deregister it first`);
    }
    const cg = this.cgroups.createWorkloadCgroup(req.namespace, req.name);
    const w: LocalWorkload = { ...req, address: req.address ?? this.node.address, cgroupPath: cg.path, cgroupId: cg.id.toString() };
    if (existing) this.byCgroup.delete(existing.cgroupId);
    this.index(w);
    this.save();
    return w;
  }

  deregister(namespace: string, name: string): LocalWorkload {
    const key = `${namespace}/${name}`;
    const w = this.byKey.get(key);
    if (!w) throw new WeftError('WEFT_ERR_NOT_FOUND', `no workload ${key} on node ${this.node.name}`);
    this.cgroups.removeWorkloadCgroup(namespace, name);
    this.byKey.delete(key);
    this.byCgroup.delete(w.cgroupId);
    this.save();
    return w;
  }

  /** The workload that owns a kernel cgroup id, if it is a mesh workload of this node. */
  byCgroupId(id: bigint): LocalWorkload | undefined {
    return this.byCgroup.get(id.toString());
  }

  /** The distinct addresses of this node's workloads (the kernel's STRICT allow-list). */
  addresses(): string[] {
    return [...new Set(this.list().map((w) => w.address))].sort();
  }

  list(): LocalWorkload[] {
    return [...this.byKey.values()].sort((a, b) => (a.namespace + a.name).localeCompare(b.namespace + b.name));
  }

  /** What the control API is told about each local workload. */
  registrations(): WorkloadRegistration[] {
    return this.list().map((w) => ({ name: w.name, namespace: w.namespace, labels: w.labels, address: w.address, node: this.node.name, serviceAccount: w.serviceAccount }));
  }

  private index(w: LocalWorkload): void {
    this.byKey.set(`${w.namespace}/${w.name}`, w);
    this.byCgroup.set(w.cgroupId, w);
  }

  private save(): void {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.list(), null, 2), { mode: 0o600 });
    renameSync(tmp, this.file);
  }
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a), kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && b[k] === a[k]);
}
