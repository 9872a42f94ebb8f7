// What the orchestrator tells each sample-application process (one JSON argument), so
// the processes need no policy parsing of their own.
import type { Role, ServiceAddresses } from '../plan';

export interface AppConfig {
  role: Role;
  /** The workload name (answers carry it, so the caller can tell who served). */
  name: string;
  /** Listen address and port (not for loadgen). */
  address: string | null;
  port: number | null;
  /** labels.version, for catalog. */
  version: string | null;
  services: ServiceAddresses;
  /** loadgen: where to write its counters, and its request rate. */
  statsFile?: string;
  rps?: number;
}

export function parseConfig(arg: string | undefined): AppConfig {
  if (!arg) throw new Error('usage: app CONFIG_JSON');
  return JSON.parse(arg) as AppConfig;
}

export function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
}
