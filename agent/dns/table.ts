// The mesh's names: every Service with a VIP in the policy snapshot answers as
// NAME.NAMESPACE.svc.<cluster domain> (as kube-dns names a ClusterIP Service), and as the
// short forms a search list would expand (NAME.NAMESPACE.svc, NAME.NAMESPACE, and bare
// NAME for a caller whose namespace is known). Built once per snapshot; lookups are a
// map read on lowercased names.
import { isIPv4, isIPv6 } from 'node:net';
import { parseIp } from '../lib/ip';
import type { ServiceState } from '../policy/snapshot';

export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';

/** A cluster domain: DNS labels (letters, digits, '-'), dots between, no trailing dot. */
export function validateClusterDomain(domain: string): string {
  const d = domain.toLowerCase().replace(/\.$/, '');
  if (!d || d.length > 200 || !d.split('.').every((l) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(l))) {
    throw new TypeError(`cluster domain ${JSON.stringify(domain)} is not a DNS name (labels of letters, digits and '-')`);
  }
  return d;
}

export interface MeshName {
  /** Fully qualified, lowercase, no trailing dot. */
  fqdn: string;
  service: string;
  namespace: string;
  /** A and AAAA data (4- and 16-byte addresses). */
  v4: Buffer[];
  v6: Buffer[];
  ports: { name: string; port: number; protocol: string }[];
}

export type Lookup =
  /** A mesh service's name (any form): answer from it. */
  | { kind: 'service'; name: MeshName }
  /** The zone apex or an empty non-terminal inside it (svc.<domain>, NS.svc.<domain>):
   *  exists, holds no address (NODATA). */
  | { kind: 'empty'; apex: boolean }
  /** Under the cluster domain and nothing there: NXDOMAIN (authoritative). */
  | { kind: 'nxdomain' }
  /** Not the mesh's: forward to the upstream resolver. */
  | { kind: 'outside' };

export class NameTable {
  readonly domain: string;
  private readonly domainLabels: string[];
  private readonly names = new Map<string, MeshName>();
  /** Names that exist without data: the apex, svc.<domain>, NS.svc.<domain>. */
  private readonly interior = new Set<string>();

  constructor(services: readonly Pick<ServiceState, 'name' | 'namespace' | 'vip' | 'ports'>[], domain: string = DEFAULT_CLUSTER_DOMAIN) {
    this.domain = validateClusterDomain(domain);
    this.domainLabels = this.domain.split('.');
    this.interior.add(this.domain);
    this.interior.add(`svc.${this.domain}`);
    for (const s of services) {
      if (!s.vip) continue; // headless: nothing to answer with
      const fqdn = `${s.name}.${s.namespace}.svc.${this.domain}`.toLowerCase();
      const entry = this.names.get(fqdn) ?? { fqdn, service: s.name, namespace: s.namespace, v4: [], v6: [], ports: [] };
      const ip = parseIp(s.vip);
      if (ip && isIPv4(s.vip)) entry.v4.push(Buffer.from(ip.bytes.subarray(0, 4)));
      else if (ip && isIPv6(s.vip)) entry.v6.push(Buffer.from(ip.bytes));
      for (const p of s.ports) entry.ports.push({ name: p.name, port: p.port, protocol: p.protocol });
      this.names.set(fqdn, entry);
      this.interior.add(`${s.namespace}.svc.${this.domain}`.toLowerCase());
    }
  }

  get size(): number { return this.names.size; }

  /** Every mesh name, sorted (status, explain). */
  list(): MeshName[] { return [...this.names.values()].sort((a, b) => (a.fqdn < b.fqdn ? -1 : a.fqdn > b.fqdn ? 1 : 0)); }

  /** The name a service answers to. */
  nameOf(namespace: string, service: string): string | null {
    const fqdn = `${service}.${namespace}.svc.${this.domain}`.toLowerCase();
    return this.names.has(fqdn) ? fqdn : null;
  }

  /** The service a VIP belongs to (explain, status). */
  byVip(vip: string): MeshName | null {
    const ip = parseIp(vip);
    if (!ip) return null;
    const want = ip.family === 4 ? ip.bytes.subarray(0, 4) : ip.bytes;
    for (const n of this.names.values()) if ((ip.family === 4 ? n.v4 : n.v6).some((b) => b.equals(want))) return n;
    return null;
  }

  /**
   * What a query name is to the mesh. `labels` as received (any case); `callerNamespace`:
   * the querying workload's namespace when known (enables bare NAME).
   */
  lookup(labels: readonly string[], callerNamespace?: string): Lookup {
    const lower = labels.map((l) => l.toLowerCase());
    const name = lower.join('.');
    const d = this.domainLabels.length;
    const underDomain = lower.length >= d && lower.slice(lower.length - d).join('.') === this.domain;
    if (underDomain) {
      const hit = this.names.get(name);
      if (hit) return { kind: 'service', name: hit };
      if (this.interior.has(name)) return { kind: 'empty', apex: name === this.domain };
      // An empty non-terminal below a service name does not exist either (no data below).
      return { kind: 'nxdomain' };
    }
    // Short forms, answered only when they name a mesh service: anything else may be an
    // outside name (e.g. "example.com" is no NAME.NAMESPACE of ours) and goes upstream.
    let hit: MeshName | undefined;
    if (lower.length === 3 && lower[2] === 'svc') hit = this.names.get(`${name}.${this.domain}`);
    else if (lower.length === 2) hit = this.names.get(`${name}.svc.${this.domain}`);
    else if (lower.length === 1 && callerNamespace) hit = this.names.get(`${name}.${callerNamespace.toLowerCase()}.svc.${this.domain}`);
    return hit ? { kind: 'service', name: hit } : { kind: 'outside' };
  }
}
