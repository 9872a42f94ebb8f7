// `weft agent` runs as a small supervisor and one worker process (the NodeAgent).
//
// The supervisor owns the listening sockets (outbound 15001, inbound 15008, admin 15020)
// as bare file descriptors that it never accepts on, and hands them to every worker it
// starts. So:
//   - a crashed worker is replaced at once, and connections that arrive meanwhile wait
//     in the kernel's accept queue instead of being refused;
//   - `kill -HUP` (an upgrade: the new worker runs whatever code is on disk now) starts a
//     new worker, waits until it is ready, then tells the old one to drain: it stops
//     accepting, finishes what it has in flight and exits. No request fails.
// L4 traffic never depends on either process: it runs on the pinned BPF datapath.
import { spawn, type ChildProcess } from 'node:child_process';
import * as native from 'weft-native';
import { componentLogger, type Logger } from '../telemetry/logger';
import { WeftError, describeError } from '../lib/errors';

/** Environment a worker finds its listeners in: "outbound=4,inbound=5,admin=6". */
export const LISTEN_FDS_ENV = 'WEFT_LISTEN_FDS';
export const WORKER_ENV = 'WEFT_AGENT_WORKER';

export interface ListenerSpec { name: string; host: string; port: number }

export type WorkerMessage = { type: 'ready' } | { type: 'draining' };
export type SupervisorMessage = { type: 'drain'; graceMs: number };

export interface SupervisorOptions {
  listeners: ListenerSpec[];
  /** Arguments of `weft agent` for the worker (the worker sees the same flags). */
  args: string[];
  /** How long a worker may take to become ready, and to drain. */
  readyTimeoutMs?: number;
  drainTimeoutMs?: number;
  logger?: Logger;
}

interface Worker { proc: ChildProcess; ready: Promise<void>; exited: Promise<void>; retiring: boolean }

export class Supervisor {
  private readonly fds: { name: string; fd: number }[] = [];
  private current: Worker | null = null;
  private stopping = false;
  private crashes: number[] = [];
  private readonly log: Logger;
  private readonly readyTimeoutMs: number;
  private readonly drainTimeoutMs: number;
  private restarting: Promise<void> | null = null;

  constructor(private readonly o: SupervisorOptions) {
    this.log = o.logger ?? componentLogger('supervisor');
    this.readyTimeoutMs = o.readyTimeoutMs ?? 60_000;
    this.drainTimeoutMs = o.drainTimeoutMs ?? 30_000;
  }

  /** Binds every listener (EADDRINUSE etc. surface here, before any worker runs) and
   *  starts the first worker; resolves when it is ready. */
  async start(): Promise<void> {
    for (const l of this.o.listeners) {
      try {
        this.fds.push({ name: l.name, fd: native.listenTcp(l.host, l.port) });
      } catch (e) {
        this.closeFds();
        throw new WeftError('WEFT_ERR_UNAVAILABLE', `cannot listen on ${l.host}:${l.port} (${l.name}): ${describeError(e)}`, { cause: e });
      }
    }
    const w = this.spawnWorker();
    this.current = w;
    await w.ready;
  }

  /** Rolling replacement: new worker ready first, then the old one drains. */
  restart(): Promise<void> {
    this.restarting ??= (async () => {
      const old = this.current;
      const next = this.spawnWorker();
      try {
        await next.ready;
      } catch (e) {
        this.log.error({ err: describeError(e) }, 'new worker did not become ready: keeping the old one');
        next.retiring = true;
        next.proc.kill('SIGKILL');
        return;
      }
      this.current = next;
      if (old) await this.retire(old);
      this.log.info({ pid: next.proc.pid }, 'worker replaced');
    })().finally(() => { this.restarting = null; });
    return this.restarting;
  }

  /** Drains the worker and releases the listeners. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.restarting;
    if (this.current) await this.retire(this.current);
    this.closeFds();
  }

  private retire(w: Worker): Promise<void> {
    w.retiring = true;
    if (w.proc.connected) w.proc.send({ type: 'drain', graceMs: this.drainTimeoutMs } satisfies SupervisorMessage);
    else w.proc.kill('SIGTERM');
    const timer = setTimeout(() => { this.log.warn({ pid: w.proc.pid }, 'worker did not drain in time: killing it'); w.proc.kill('SIGKILL'); }, this.drainTimeoutMs + 5_000);
    return w.exited.finally(() => clearTimeout(timer));
  }

  private spawnWorker(): Worker {
    // Same node binary, same loader flags (tsx in development), same entry script.
    const entry = process.argv[1];
    if (!entry) throw new WeftError('WEFT_ERR_INTERNAL', 'cannot find the weft entry script to start a worker');
    const stdio: (number | 'ignore' | 'inherit' | 'ipc')[] = ['ignore', 'inherit', 'inherit', 'ipc', ...this.fds.map((f) => f.fd)];
    const env = { ...process.env, [WORKER_ENV]: '1', [LISTEN_FDS_ENV]: this.fds.map((f, i) => `${f.name}=${i + 4}`).join(',') };
    const proc = spawn(process.execPath, [...process.execArgv, entry, 'agent', ...this.o.args], { stdio, env });
    let onReady: () => void = () => {};
    let onFail: (e: Error) => void = () => {};
    const ready = new Promise<void>((res, rej) => { onReady = res; onFail = rej; });
    ready.catch(() => {});
    const timer = setTimeout(() => onFail(new Error(`worker ${proc.pid} not ready after ${this.readyTimeoutMs} ms`)), this.readyTimeoutMs);
    proc.on('message', (m: WorkerMessage) => { if (m?.type === 'ready') { clearTimeout(timer); onReady(); } });
    const w: Worker = { proc, ready, retiring: false, exited: new Promise<void>((r) => proc.once('exit', () => r())) };
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      onFail(new Error(`worker ${proc.pid} exited (${code ?? signal}) before it was ready`));
      if (w.retiring || this.stopping) return;
      this.log.error({ pid: proc.pid, code, signal }, 'worker died: starting a new one');
      if (this.current === w) this.respawn();
    });
    this.log.info({ pid: proc.pid }, 'worker started');
    return w;
  }

  /** Crash recovery: immediately, unless the worker is crash-looping (then back off). */
  private respawn(): void {
    const now = Date.now();
    this.crashes = this.crashes.filter((t) => now - t < 30_000).concat(now);
    const delay = this.crashes.length <= 3 ? 0 : Math.min(10_000, 500 * 2 ** (this.crashes.length - 3));
    setTimeout(() => {
      if (this.stopping) return;
      const w = this.spawnWorker();
      this.current = w;
      w.ready.then(() => this.log.info({ pid: w.proc.pid }, 'replacement worker ready'), () => {});
    }, delay);
  }

  private closeFds(): void {
    for (const f of this.fds.splice(0)) {
      try { native.closeFd(f.fd); } catch { /* already closed */ }
    }
  }
}

/** In a worker: the listener fds the supervisor passed, by name. */
export function inheritedListeners(env: NodeJS.ProcessEnv = process.env): Record<string, number> | null {
  const spec = env[LISTEN_FDS_ENV];
  if (!spec) return null;
  return Object.fromEntries(spec.split(',').map((kv) => { const [k, v] = kv.split('='); return [k!, Number(v)]; }));
}
