// The service model the rest of the agent hands to the datapath, its validation, and
// how weights become selection slots. Pure functions: no maps here (unit-testable).
import { WeftError } from '../lib/errors';
import type { Protocol } from './codec';
import { parseIp } from '../lib/ip';
import { MAGLEV_TABLE_SIZE, maglevTable } from '../lib/maglev';
import { apportion } from '../lib/apportion';

export interface DatapathBackend { ip: string; port: number; weight: number }
export interface DatapathService {
  vip: string;
  port: number;
  protocol: Protocol;
  /** 'l4': balanced in the kernel; 'redirect': sent to the agent's outbound listener. */
  mode: 'l4' | 'redirect';
  /** How the kernel picks a backend: 'random' (weighted, per connection; the default)
   *  or 'maglev' (consistent hashing on the connecting workload, agent/lib/maglev.ts). */
  lb?: 'random' | 'maglev';
  backends: DatapathBackend[];
}

/** Most backends one service may have (each must be able to own at least one slot). */
export const MAX_BACKENDS_PER_SERVICE = 256;
/** Slots one service may use; weights summing higher are scaled down to this. */
export const MAX_SLOTS_PER_SERVICE = 1024;

export function serviceName(s: Pick<DatapathService, 'vip' | 'port' | 'protocol'>): string {
  const host = String(s.vip).includes(':') ? `[${s.vip}]` : s.vip;
  return `${host}:${s.port}/${s.protocol}`;
}

const isPort = (p: unknown): p is number => Number.isInteger(p) && (p as number) >= 1 && (p as number) <= 65535;

/** Throws WEFT_ERR_INVALID_SERVICE / WEFT_ERR_CAPACITY naming the first bad service. */
export function validateServices(services: DatapathService[]): void {
  if (!Array.isArray(services)) throw new WeftError('WEFT_ERR_INVALID_SERVICE', 'services must be an array');
  const seen = new Set<string>();
  for (const s of services) {
    const name = s && typeof s === 'object' ? serviceName(s) : String(s);
    const bad = (why: string) => new WeftError('WEFT_ERR_INVALID_SERVICE', `service ${name}: ${why}`, { details: { service: name } });
    if (!s || typeof s !== 'object') throw bad('not an object');
    const vip = typeof s.vip === 'string' ? parseIp(s.vip) : null;
    if (!vip) throw bad(`invalid VIP address ${JSON.stringify(s.vip)}`);
    if (!isPort(s.port)) throw bad(`invalid port ${JSON.stringify(s.port)} (want 1-65535)`);
    if (s.protocol !== 'tcp' && s.protocol !== 'udp') throw bad(`invalid protocol ${JSON.stringify(s.protocol)}`);
    if (s.mode !== 'l4' && s.mode !== 'redirect') throw bad(`invalid mode ${JSON.stringify(s.mode)}`);
    if (s.mode === 'redirect' && s.protocol !== 'tcp') throw bad('redirect mode needs protocol tcp (the agent proxies TCP)');
    if (s.lb !== undefined && s.lb !== 'random' && s.lb !== 'maglev') throw bad(`invalid lb ${JSON.stringify(s.lb)} (want random or maglev)`);
    if (seen.has(name)) throw bad('duplicate VIP, port and protocol');
    seen.add(name);
    if (!Array.isArray(s.backends)) throw bad('backends must be an array');
    if (s.backends.length > MAX_BACKENDS_PER_SERVICE) {
      throw new WeftError('WEFT_ERR_CAPACITY',
        `service ${name}: ${s.backends.length} backends, the datapath holds at most ${MAX_BACKENDS_PER_SERVICE} per service`,
        { details: { service: name } });
    }
    const endpoints = new Set<string>();
    for (const b of s.backends) {
      const be = b && typeof b.ip === 'string' ? parseIp(b.ip) : null;
      if (!be) throw bad(`invalid backend address ${JSON.stringify(b?.ip)}`);
      if (be.family !== vip.family) throw bad(`backend ${b.ip} is IPv${be.family}, the VIP is IPv${vip.family}`);
      if (!isPort(b.port)) throw bad(`backend ${b.ip}: invalid port ${JSON.stringify(b.port)} (want 1-65535)`);
      if (!Number.isInteger(b.weight) || b.weight < 0 || b.weight > 0xffffffff) {
        throw bad(`backend ${b.ip}:${b.port}: invalid weight ${JSON.stringify(b.weight)} (want an integer >= 0)`);
      }
      const ep = `${b.ip}:${b.port}`;
      if (endpoints.has(ep)) throw bad(`backend ${ep} listed twice`);
      endpoints.add(ep);
    }
  }
}

/**
 * Slot counts per backend: exactly the weights when they sum to at most
 * MAX_SLOTS_PER_SERVICE (so 50/30/20 is 100 slots and exact), otherwise scaled by
 * largest remainder with every non-zero weight keeping at least one slot. A zero weight
 * gets no slot: it can never be chosen.
 */
export function slotsFor(weights: number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  return total <= MAX_SLOTS_PER_SERVICE ? [...weights] : apportion(weights, MAX_SLOTS_PER_SERVICE);
}

/**
 * The slot table of a service, as backend positions: weight-expanded runs for random
 * choice (slot = random % count), or a Maglev table (slot = hash of the workload % count).
 */
export function slotTable(s: Pick<DatapathService, 'lb' | 'backends'>): number[] {
  if (s.lb === 'maglev') return [...maglevTable(s.backends.map((b) => `${b.ip}:${b.port}`), s.backends.map((b) => b.weight))];
  const out: number[] = [];
  slotsFor(s.backends.map((b) => b.weight)).forEach((n, backend) => { for (let k = 0; k < n; k++) out.push(backend); });
  return out;
}

/** slotTable(s).length without building the table. */
export function slotCount(s: Pick<DatapathService, 'lb' | 'backends'>): number {
  if (s.lb === 'maglev') return s.backends.some((b) => b.weight > 0) ? MAGLEV_TABLE_SIZE : 0;
  return slotsFor(s.backends.map((b) => b.weight)).reduce((a, b) => a + b, 0);
}

/** Canonical form for comparing a wanted service with what the maps hold. */
export function sameBackends(a: DatapathBackend[], b: DatapathBackend[]): boolean {
  if (a.length !== b.length) return false;
  const norm = (l: DatapathBackend[]) => l.map((x) => `${parseIp(x.ip)!.bytes.toString('hex')}:${x.port}:${x.weight}`).sort();
  const na = norm(a), nb = norm(b);
  return na.every((x, i) => x === nb[i]);
}
