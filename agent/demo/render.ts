// Two ways to show a Frame: a full-screen table redrawn every second (a terminal), or
// one summary line per second plus one line per new event (a pipe, a log, the e2e test).
// The plain format is stable `key=value` text so it can be grepped.
import type { ClientRow, Frame } from './frame';
import { reloadLines } from '../control/reload-status';

const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(1)}%`);
const num = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const ms = (x: number | null) => (x === null ? '-' : `${x.toFixed(1)}ms`);
const outcomes = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k}:${v}`).join(',');
const short = (principal: string) => principal.replace(/^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\//, '$1/sa/');

const BPF_SHOWN = ['connect_balanced', 'connect_redirected', 'no_backend', 'sockmap_inserts', 'sockmap_skipped', 'msg_redirected', 'msg_redirected_bytes', 'msg_miss'];

function versions(v: Record<string, number>): string {
  const total = Object.values(v).reduce((a, b) => a + b, 0);
  return Object.keys(v).sort().map((k) => `${k}=${v[k]}`).join(' ') + (total ? ` (${Object.keys(v).sort().map((k) => `${k} ${Math.round((v[k]! / total) * 100)}%`).join(' / ')})` : '');
}

function client(name: string, r: ClientRow): string {
  return `${name} ${num(r.rps)}rps ok=${pct(r.success)}${Object.keys(r.outcomes).length ? ` [${outcomes(r.outcomes)}]` : ''}`;
}

/** One line per second for pipes and logs. */
export function plainLine(f: Frame): string {
  const parts: string[] = [`t=${f.t}s`];
  for (const s of f.services) {
    parts.push(`${s.service} ${num(s.rps)}rps ok=${pct(s.success)} p99=${ms(s.p99ms)}${Object.keys(s.failures).length ? ` [${outcomes(s.failures)}]` : ''}`);
  }
  if (f.client) {
    const c = f.client;
    parts.push(`client ${client('browse', c.browse)} catalog ${versions(c.versions)}`);
    parts.push(`total catalog ${versions(c.versionsTotal)}`);
    parts.push(client('checkout', c.checkout));
    const pd = c.paymentsDirect;
    const n = Object.values(pd.outcomes).reduce((a, b) => a + b, 0);
    parts.push(`loadgen->payments failed ${Math.round((pd.success ?? 0) * n)}/${n}${n ? ` [${outcomes(pd.outcomes)}]` : ''}`);
  }
  parts.push(`mtls pairs=${f.mtls.length} new=${num(f.mtls.reduce((a, p) => a + p.newPerSec, 0))}/s`);
  parts.push(`denied=${num(f.denials.reduce((a, d) => a + d.perSec, 0))}/s`);
  parts.push(`bpf ${BPF_SHOWN.filter((k) => f.bpf[k]).map((k) => `${k}=${f.bpf[k]!.total}(+${Math.round(f.bpf[k]!.perSec)})`).join(' ')}`);
  parts.push(`snapshots ${f.agents.map((a) => `${a.node}=${a.snapshot ?? (a.error ? 'unreachable' : 'none')}`).join(' ')}`);
  if (f.reload?.lastReload) parts.push(`policy ${f.reload.lastReload.accepted ? 'accepted' : `REJECTED(${f.reload.lastReload.diagnostics?.length ?? 0})`}`);
  return parts.join(' | ');
}

/** Lines about things that appeared since the previous frame (new identity pairs,
 *  new kinds of refusal, snapshot changes, agents that stopped answering). */
export function eventLines(prev: Frame | null, f: Frame): string[] {
  const out: string[] = [];
  for (const p of f.mtls) {
    if (!prev?.mtls.some((q) => q.source === p.source && q.destination === p.destination && q.node === p.node)) out.push(`mTLS: ${p.source} → ${p.destination} (${p.node})`);
  }
  for (const d of f.denials) {
    if (!prev?.denials.some((q) => q.source === d.source && q.destination === d.destination && q.reason === d.reason && q.node === d.node)) {
      out.push(`denied: ${d.source} → ${d.destination} (reason ${d.reason}, at ${d.node})`);
    }
  }
  const r = f.reload?.lastReload, pr = prev?.reload?.lastReload;
  if (r && (!pr || pr.atMs !== r.atMs || pr.accepted !== r.accepted) && (pr || !r.accepted)) {
    // A change of verdict (or the first frame after a rejection): each problem on a line.
    if (r.accepted) out.push(`policy change accepted: control serves ${f.reload!.current}`);
    else {
      out.push(`policy change REJECTED, still serving ${f.reload!.current || 'nothing'}:`);
      for (const d of r.diagnostics ?? []) out.push(`  ${d}`);
    }
  }
  for (const a of f.agents) {
    const was = prev?.agents.find((b) => b.node === a.node);
    if (a.snapshot && was?.snapshot && was.snapshot !== a.snapshot) out.push(`snapshot: ${a.node} now serves ${a.snapshot} (was ${was.snapshot})`);
    if (a.error && !was?.error) out.push(`${a.node}: metrics unavailable: ${a.error}`);
  }
  return out;
}

/** A full screen for a terminal (ANSI: home + clear). */
export function screen(f: Frame, recent: string[], width = 120): string {
  const L: string[] = [];
  const cut = (s: string) => (s.length > width ? `${s.slice(0, width - 1)}…` : s);
  L.push(`weft demo — ${f.t}s — Ctrl-C stops and removes everything`);
  L.push('');
  L.push('SERVICE (source side, all agents)          req/s   success      p99   failures');
  for (const s of f.services) {
    L.push(`  ${s.service.padEnd(40)} ${num(s.rps).padStart(6)}  ${pct(s.success).padStart(7)}  ${ms(s.p99ms).padStart(8)}   ${outcomes(s.failures)}`);
  }
  if (!f.services.length) L.push('  (no L7 requests yet)');
  if (f.client) {
    const c = f.client;
    L.push('');
    L.push('CLIENT (loadgen, what a user sees)');
    L.push(`  ${client('browse  ', c.browse)}`);
    L.push(`  ${client('checkout', c.checkout)}`);
    L.push(`  catalog answered by   this second: ${versions(c.versions) || '-'}   since start: ${versions(c.versionsTotal) || '-'}`);
    const pd = c.paymentsDirect;
    L.push(`  loadgen → payments    failed (all must: only frontend may call it): ${pct(pd.success)} ${outcomes(pd.outcomes)}`);
  }
  L.push('');
  L.push('mTLS IDENTITIES (verified at the destination)            conns   new/s');
  for (const p of f.mtls) L.push(cut(`  ${short(p.source).padEnd(22)} → ${p.destination.padEnd(22)} at ${p.node.padEnd(8)} ${String(p.connections).padStart(6)}  ${num(p.newPerSec).padStart(6)}`));
  if (!f.mtls.length) L.push('  (none yet)');
  L.push('');
  L.push('REFUSED');
  for (const d of f.denials) L.push(cut(`  ${short(d.source).padEnd(22)} → ${d.destination.padEnd(22)} ${d.reason.padEnd(18)} at ${d.node.padEnd(8)} ${String(d.total).padStart(6)}  ${num(d.perSec).padStart(6)}/s`));
  if (!f.denials.length) L.push('  (none)');
  L.push('');
  L.push('KERNEL (weft_bpf_*, all nodes)           total      /s');
  for (const k of BPF_SHOWN) if (f.bpf[k]) L.push(`  ${k.padEnd(32)} ${String(f.bpf[k]!.total).padStart(10)} ${num(f.bpf[k]!.perSec).padStart(7)}`);
  L.push('');
  L.push(`SNAPSHOTS  ${f.agents.map((a) => `${a.node} ${a.snapshot ?? (a.error ? `unreachable (${a.error})` : 'none')}`).join('   ')}`);
  if (f.reload) {
    L.push('');
    L.push('POLICY (control API)');
    for (const l of reloadLines(f.reload)) L.push(cut(`  ${l}`));
  }
  if (recent.length) {
    L.push('');
    L.push('RECENT');
    for (const e of recent.slice(-6)) L.push(cut(`  ${e}`));
  }
  return `\x1b[H\x1b[2J${L.join('\n')}\n`;
}
