// `weft status`: what the agent of this network namespace is doing, in one screen.
import type { Command } from './command';
import { parseFlags } from './command';
import { AdminClient, DEFAULT_ADMIN, adminTokenFrom } from '../admin/client';
import { describeError } from '../lib/errors';
import { reloadLines, type ReloadStatus } from '../control/reload-status';

const help = `Usage: weft status [--admin HOST:PORT] [--admin-token-file FILE] [--json]

Shows the local agent's control-API connection and snapshot version, the control API's
last policy reload (accepted, or rejected with each file:line:col: message) and the
snapshot every node serves, its DNS listener and the service names it answers, the
eBPF programs it has attached (and whether they were adopted from a previous agent
process), kernel counters, listeners, local workloads and certificate expiry.

Flags:
  --admin HOST:PORT   the agent's admin address (default ${DEFAULT_ADMIN})
  --json              print the raw status document
  --admin-token-file FILE  the agent's admin token, needed when --admin is not on loopback`;

interface Status {
  node: string;
  control: { address: string; connected: boolean; version: string; fromCache: boolean; lastError: string; lastNack: string; tls: boolean; auth: 'token' | 'certificate' };
  datapath: { programs: { program: string; linkId: number; progId: number; adopted: boolean }[]; services: number; counters: Record<string, string> };
  listeners: Record<string, string | null>;
  workers?: { worker: number; role: string; pid: number }[];
  ejections?: { endpoint: string; workers: number[] }[];
  workloads: { key: string; cgroupId: string; address?: string; identity: string }[];
  pods?: { listed: boolean; captureRoot: string; meshed: number; skipped: { key: string; reason?: string }[] };
  certificates: { identity: string; expiresAt: string | null }[];
  /** The control API's reload and every node's snapshot (GET /v1/mesh), or why not. */
  mesh?: ReloadStatus | { error: string };
  /** null: the agent runs with --dns off; absent: an agent without DNS support. */
  dns?: import('../dns/proxy').DnsStatus | null;
}

function render(s: Status): string {
  const out: string[] = [];
  const c = s.control;
  out.push(`node            ${s.node}`);
  out.push(`control API     ${c.address} — ${c.connected ? 'connected' : 'NOT connected'}, ${c.tls ? 'TLS' : 'plaintext'}, auth ${c.auth}${c.lastError && !c.connected ? ` (${c.lastError})` : ''}`);
  out.push(`snapshot        ${c.version || '(none)'}${c.fromCache ? ' (from on-disk cache)' : ''}`);
  if (c.lastNack) out.push(`last rejected   ${c.lastNack}`);
  if (s.mesh && 'error' in s.mesh) out.push(`policy reload   unknown (control API status: ${s.mesh.error})`);
  else if (s.mesh) out.push(...reloadLines(s.mesh));
  out.push(`listeners       ${Object.entries(s.listeners).map(([k, v]) => `${k} ${v ?? '(not yet)'}`).join(', ')}`);
  if (s.workers) out.push(`workers         ${s.workers.length}: ${s.workers.map((w) => `${w.role} pid ${w.pid}`).join(', ')}`);
  for (const e of s.ejections ?? []) out.push(`  ejected ${e.endpoint} by pid ${e.workers.join(', ')}`);
  if (s.dns !== undefined) out.push(...renderDns(s.dns));
  out.push(`programs        ${s.datapath.programs.length} attached, ${s.datapath.services} service ports in the kernel`);
  for (const p of s.datapath.programs) out.push(`  ${p.program.padEnd(22)} link ${p.linkId} prog ${p.progId}${p.adopted ? ' (adopted)' : ''}`);
  out.push('kernel counters');
  for (const [k, v] of Object.entries(s.datapath.counters)) out.push(`  ${k.padEnd(22)} ${v}`);
  if (s.pods) {
    out.push(`pods            ${s.pods.listed ? `${s.pods.meshed} meshed, ${s.pods.skipped.length} skipped` : 'NOT listed yet (Kubernetes API)'} — captured below ${s.pods.captureRoot}`);
    for (const p of s.pods.skipped) out.push(`  skipped ${p.key.padEnd(36)} ${p.reason ?? ''}`);
  }
  out.push(`workloads       ${s.workloads.length}`);
  for (const w of s.workloads) out.push(`  ${w.key.padEnd(28)} ${(w.address ?? '').padEnd(15)} cgroup ${w.cgroupId}  ${w.identity}`);
  out.push(`certificates    ${s.certificates.length}`);
  const now = Date.now();
  for (const cert of s.certificates) {
    const left = cert.expiresAt ? Math.round((Date.parse(cert.expiresAt) - now) / 1000) : null;
    out.push(`  ${cert.identity.padEnd(52)} ${left === null ? 'pending' : `expires in ${left}s (${cert.expiresAt})`}`);
  }
  return out.join('\n') + '\n';
}

function renderDns(d: NonNullable<Status['dns']> | null): string[] {
  if (!d) return ['dns             off (--dns off)'];
  const capture = d.capture.kernel ? `workloads' port 53 captured to ${d.capture.kernel}${d.capture.podNamespaces.udp && d.capture.podNamespaces.tcp ? '' : ' (pod namespaces: listener not registered)'}` : 'capture off';
  const out = [`dns             ${d.listening ? `listening on ${d.address}` : `NOT listening (${d.address})`}, ${capture}; upstream ${d.upstreams.join(', ') || '(none)'}`];
  out.push(`service names   ${d.names.length} under ${d.clusterDomain}`);
  for (const n of d.names) out.push(`  ${n.name.padEnd(44)} ${n.addresses.join(', ')}`);
  return out;
}

export const command: Command = {
  name: 'status',
  summary: 'show the local agent: control connection, snapshot, programs, counters, certificates',
  help,
  async run(argv) {
    const { values, help: wantHelp } = parseFlags<{ admin?: string; json?: boolean; 'admin-token-file'?: string }>(argv, { admin: { type: 'string' }, json: { type: 'boolean' }, 'admin-token-file': { type: 'string' } });
    if (wantHelp) { process.stdout.write(help + '\n'); return 0; }
    const client = new AdminClient(values.admin ?? DEFAULT_ADMIN, 5000, adminTokenFrom(values['admin-token-file']));
    const s = await client.request<Status>('GET', '/v1/status');
    // The reload comes from the control API through the agent: without it the rest of
    // the status is still worth showing.
    s.mesh = await client.request<ReloadStatus>('GET', '/v1/mesh').catch((e: unknown) => ({ error: describeError(e) }));
    process.stdout.write(values.json ? JSON.stringify(s, null, 2) + '\n' : render(s));
    return s.control.connected || s.control.version ? 0 : 1;
  },
};
