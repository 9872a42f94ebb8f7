// Process helpers shared by the control e2e test and the control benchmark: the real
// `weft control` CLI as a child process (its stderr parsed for the bound ports), sync
// clients in child processes (control-agent-child.ts) reporting over IPC, and Status.
// The control API serves TLS: each started control's CA bundle (the file it reports on
// startup) is remembered by port, so agents and Status calls aimed at that port trust it.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { controlProto } from '../../agent/control/proto';
import type { StatusResponse__Output } from '../../agent/control/generated/weft/control/v1/StatusResponse';
import { packageRoot } from '../../agent/lib/paths';
import { controlCredentials } from '../../agent/sync/client';
import { waitFor } from './wait';

const ROOT = packageRoot();

/** Registers a cleanup (t.after in tests, a list in the benchmark). */
export type Cleanup = (fn: () => void) => void;

/** CA bundle (PEM) of the control API listening on each loopback port. */
const bundles = new Map<number, string>();

function bundleFor(port: number): string {
  const b = bundles.get(port);
  if (!b) throw new Error(`no control API with TLS was started on port ${port}`);
  return b;
}

export interface Control { proc: ChildProcess; port: number; adminPort: number; caBundle: string; logs: string[]; exited: Promise<number | null>; waitLog(pred: (l: string) => boolean, what: string): Promise<string> }

export async function spawnControl(cleanup: Cleanup, args: string[], port = 0, nodeArgs: string[] = []): Promise<Control> {
  const proc = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', '-e', "require('./agent/cli/main').main(process.argv.slice(1)).then((c) => { process.exitCode = c; })",
    'control', '--listen', `127.0.0.1:${port}`, '--admin', '127.0.0.1:0', ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  cleanup(() => { if (proc.exitCode === null) proc.kill('SIGKILL'); });
  const logs: string[] = [];
  const wakers = new Set<() => void>();
  let buf = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop()!;
    logs.push(...lines);
    for (const w of wakers) w();
  });
  const sub = (w: () => void) => { wakers.add(w); proc.on('exit', w); return () => { wakers.delete(w); proc.off('exit', w); }; };
  const m = await waitFor(() => {
    if (proc.exitCode !== null) throw new Error(`weft control exited ${proc.exitCode}:\n${logs.join('\n')}`);
    for (const l of logs) { const x = /listening on 127\.0\.0\.1:(\d+), admin on 127\.0\.0\.1:(\d+)/.exec(l); if (x) return x; }
    return undefined;
  }, sub, 60_000, 'weft control to listen');
  const waitLog = (pred: (l: string) => boolean, what: string) => waitFor(() => logs.find(pred), sub, 5000, what);
  const file = logs.map((l) => /TLS with CA bundle (\S+)/.exec(l)?.[1]).find((f) => f !== undefined);
  if (!file) throw new Error(`weft control did not report its CA bundle:\n${logs.join('\n')}`);
  const caBundle = readFileSync(file, 'utf8');
  bundles.set(Number(m[1]), caBundle);
  return { proc, port: Number(m[1]), adminPort: Number(m[2]), caBundle, logs, exited, waitLog };
}

export interface AgentEvent { type: string; node: string; version?: string; fromCache?: boolean; connected?: boolean; roots?: number; at?: number }
export interface Agents { proc: ChildProcess; events: AgentEvent[]; wait(pred: (e: AgentEvent) => boolean, ms: number, what: string): Promise<AgentEvent>; stop(): Promise<void> }

export function startAgents(cleanup: Cleanup, address: string, token: string | ((node: string) => string), nodes: { node: string; stateDir: string; writeApplied?: boolean; reconnectSpreadMs?: number; shuffleReplicas?: boolean }[]): Agents {
  const controlCa = bundleFor(Number(address.slice(address.lastIndexOf(':') + 1)));
  const proc = fork(join(ROOT, 'test/e2e/control-agent-child.ts'), [JSON.stringify(nodes.map((n) => ({ ...n, address, token: typeof token === 'string' ? token : token(n.node), controlCa })))], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  cleanup(() => { if (proc.exitCode === null) proc.kill('SIGKILL'); });
  const events: AgentEvent[] = [];
  const wakers = new Set<() => void>();
  proc.on('message', (m: AgentEvent) => { events.push(m); for (const w of wakers) w(); });
  return {
    proc, events,
    wait: (pred, ms, what) => {
      let seen = 0;
      return waitFor(() => { for (; seen < events.length; seen++) if (pred(events[seen]!)) return events[seen]; return undefined; },
        (w) => { wakers.add(w); return () => wakers.delete(w); }, ms, what);
    },
    stop: async () => {
      if (proc.exitCode !== null) return;
      const gone = new Promise((r) => proc.on('exit', r));
      proc.kill('SIGTERM');
      const force = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(force);
    },
  };
}

export async function status(port: number, token: string): Promise<StatusResponse__Output> {
  const c = new (controlProto().weft.control.v1.Control)(`127.0.0.1:${port}`, controlCredentials(bundleFor(port)));
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  md.set('x-weft-node', 'e2e-operator');
  try {
    return await new Promise((resolve, reject) => c.Status({}, md, (e, r) => (e ? reject(e) : resolve(r!))));
  } finally { c.close(); }
}

/** Status until `pred` holds: the ACK is sent just after the agent reports 'applied'. */
export async function statusUntil(port: number, token: string, pred: (s: StatusResponse__Output) => boolean, what: string, ms = 3000): Promise<StatusResponse__Output> {
  const end = Date.now() + ms;
  for (;;) {
    const s = await status(port, token);
    if (pred(s)) return s;
    if (Date.now() > end) throw new Error(`status never showed ${what}: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

