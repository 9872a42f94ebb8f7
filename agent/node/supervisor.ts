// `weft agent` runs as a small supervisor and N worker processes (see ipc.ts for roles).
//
// The supervisor owns the listening sockets (outbound 15001, inbound 15008, admin 15020)
// as bare file descriptors that it never accepts on, and hands them to every worker it
// starts; all workers accept on the same outbound and inbound sockets and the kernel
// spreads the connections. Only the primary accepts on the admin socket. So:
//   - a crashed worker is replaced at once, and connections that arrive meanwhile wait
//     in the kernel's accept queue (or go to another worker) instead of being refused;
//   - `kill -HUP` (an upgrade: new workers run whatever code is on disk now) starts a new
//     primary, waits until it is ready, then new proxy workers, and only then tells the
//     old ones to drain: they stop accepting, finish what they have in flight and exit.
//   - a crashed PRIMARY is replaced while the proxy workers keep serving: they hold the
//     last NodeView, workload table and certificates, and read connection origins from
//     the pinned BPF map themselves, so nothing on their request path needs the primary.
//     Restarting them too would only add risk (every in-flight request would be drained)
//     for nothing; they pick up the new primary's state as soon as it publishes it.
// The supervisor is also the relay between workers: state from the primary to the proxy
// workers, ejections from proxy workers to the primary, metrics for a scrape.
// L4 traffic never depends on any of these processes: it runs on the pinned datapath.
import { readFileSync, writeFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import * as native from 'weft-native';
import { componentLogger, type Logger } from '../telemetry/logger';
import { WeftError, describeError } from '../lib/errors';
import type { NodeState, SupervisorMessage, WorkerInfo, WorkerMessage, WorkerMetrics, WorkerRole } from './ipc';

/** Environment a worker finds its listeners in: "outbound=4,inbound=5,admin=6". */
export const LISTEN_FDS_ENV = 'WEFT_LISTEN_FDS';
export const WORKER_ENV = 'WEFT_AGENT_WORKER';
/** 'primary' or 'proxy', and the worker's slot number (0 = primary). */
export const ROLE_ENV = 'WEFT_AGENT_ROLE';
export const WORKER_ID_ENV = 'WEFT_AGENT_WORKER_ID';

export interface ListenerSpec { name: string; host: string; port: number }

export interface SupervisorOptions {
  listeners: ListenerSpec[];
  /** Arguments of `weft agent` for the workers (they see the same flags). */
  args: string[];
  /** Worker processes (1 = the primary alone). */
  workers?: number;
  /** How long a worker may take to become ready, and to drain. */
  readyTimeoutMs?: number;
  drainTimeoutMs?: number;
  /** How long the primary's state publication waits for proxy workers to apply it. */
  stateSyncTimeoutMs?: number;
  /** How long a scrape waits for each worker's metrics. */
  metricsTimeoutMs?: number;
  /** Another agent process may take over this node while this one runs (a Kubernetes
   *  DaemonSet rollout with maxSurge): listen with SO_REUSEPORT, and on stop close the
   *  listeners as soon as the workers stop accepting, so new connections go to the
   *  successor at once and those still queued here move to it (net.ipv4.tcp_migrate_req)
   *  while in-flight requests finish. */
  handover?: boolean;
  logger?: Logger;
}

interface Worker {
  slot: number;
  role: WorkerRole;
  proc: ChildProcess;
  ready: Promise<void>;
  isReady: boolean;
  exited: Promise<void>;
  retiring: boolean;
}

interface PendingSync { waiting: Set<Worker>; done: () => void }
interface PendingCollect { waiting: Set<Worker>; got: (WorkerInfo & { metrics: WorkerMetrics })[]; done: () => void }

export class Supervisor {
  private readonly fds: { name: string; fd: number }[] = [];
  /** The serving worker of each slot (slot 0: the primary). */
  private readonly slots: (Worker | null)[];
  private readonly all = new Set<Worker>();
  private stopping = false;
  private crashes: number[] = [];
  private readonly log: Logger;
  private readonly readyTimeoutMs: number;
  private readonly drainTimeoutMs: number;
  private readonly stateSyncTimeoutMs: number;
  private readonly metricsTimeoutMs: number;
  private restarting: Promise<void> | null = null;
  /** start() has not finished: a worker that dies now fails the start. */
  private initial = false;
  private started: Promise<void> = Promise.resolve();
  /** The latest of each NodeState field the primary published: what a (re)started proxy
   *  worker is given first. */
  private readonly cache: NodeState = {};
  private seq = 0;
  private readonly syncs = new Map<number, PendingSync>();
  private readonly collects = new Map<number, PendingCollect>();

  constructor(private readonly o: SupervisorOptions) {
    this.log = o.logger ?? componentLogger('supervisor');
    const n = o.workers ?? 1;
    if (!Number.isInteger(n) || n < 1) throw new WeftError('WEFT_ERR_INVALID_ARG', `workers must be a positive integer, got ${n}`);
    this.slots = new Array<Worker | null>(n).fill(null);
    this.readyTimeoutMs = o.readyTimeoutMs ?? 60_000;
    this.drainTimeoutMs = o.drainTimeoutMs ?? 30_000;
    this.stateSyncTimeoutMs = o.stateSyncTimeoutMs ?? 5_000;
    this.metricsTimeoutMs = o.metricsTimeoutMs ?? 1_000;
  }

  /** Binds every listener (EADDRINUSE etc. surface here, before any worker runs), starts
   *  the primary, then the proxy workers; resolves when all are ready. */
  start(): Promise<void> {
    this.initial = true;
    this.started = this.startWorkers().finally(() => { this.initial = false; });
    return this.started;
  }

  private async startWorkers(): Promise<void> {
    if (this.o.handover) enableRequestMigration(this.log);
    for (const l of this.o.listeners) {
      try {
        this.fds.push({ name: l.name, fd: native.listenTcp(l.host, l.port, undefined, this.o.handover === true) });
      } catch (e) {
        this.closeFds();
        throw new WeftError('WEFT_ERR_UNAVAILABLE', `cannot listen on ${l.host}:${l.port} (${l.name}): ${describeError(e)}`, { cause: e });
      }
    }
    try {
      // The primary first: it creates the agent cgroup and pins the proxy workers use.
      const primary = this.spawnWorker(0);
      this.slots[0] = primary;
      await primary.ready;
      const proxies = this.slots.map((_w, slot) => slot).slice(1).map((slot) => (this.slots[slot] = this.spawnWorker(slot)));
      await Promise.all(proxies.map((w) => w.ready));
      this.announceWorkers();
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  /** Rolling replacement of every worker: new ones ready first, then the old ones drain.
   *  A slot whose new worker fails to start keeps its old one. */
  restart(): Promise<void> {
    this.restarting ??= (async () => {
      await this.started.catch(() => {});
      if (this.stopping) return;
      const old = [...this.slots];
      const primary = this.spawnWorker(0);
      if (!(await this.readyOrKill(primary))) return;
      this.slots[0] = primary;
      const fresh = old.map((_w, slot) => slot).slice(1).map((slot) => this.spawnWorker(slot));
      const ok = await Promise.all(fresh.map((w) => this.readyOrKill(w)));
      const retired: Worker[] = old[0] ? [old[0]] : [];
      fresh.forEach((w, i) => {
        if (!ok[i]) return;
        const prev = this.slots[w.slot];
        this.slots[w.slot] = w;
        if (prev) retired.push(prev);
      });
      this.announceWorkers();
      await Promise.all(retired.map((w) => this.retire(w)));
      this.log.info({ workers: this.slots.map((w) => w?.proc.pid), pid: primary.proc.pid }, 'worker replaced');
    })().finally(() => { this.restarting = null; });
    return this.restarting;
  }

  /** Drains every worker and releases the listeners. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.restarting;
    const retiring = Promise.all([...this.all].map((w) => this.retire(w)));
    // Handover: the workers were told to stop accepting; the listeners close now, not
    // after the drain, so the kernel stops queueing connections for this process.
    if (this.o.handover) this.closeFds();
    await retiring;
    this.closeFds();
  }

  /** Pids and roles of the serving workers. */
  workers(): WorkerInfo[] {
    return this.slots.filter((w): w is Worker => w !== null).map(info);
  }

  private async readyOrKill(w: Worker): Promise<boolean> {
    try {
      await w.ready;
      return true;
    } catch (e) {
      this.log.error({ slot: w.slot, err: describeError(e) }, 'new worker did not become ready: keeping the old one');
      w.retiring = true;
      w.proc.kill('SIGKILL');
      return false;
    }
  }

  private retire(w: Worker): Promise<void> {
    if (!w.retiring) {
      w.retiring = true;
      this.forget(w);
      if (w.proc.connected) this.send(w, { type: 'drain', graceMs: this.drainTimeoutMs });
      else w.proc.kill('SIGTERM');
    }
    const timer = setTimeout(() => { this.log.warn({ pid: w.proc.pid }, 'worker did not drain in time: killing it'); w.proc.kill('SIGKILL'); }, this.drainTimeoutMs + 5_000);
    return w.exited.finally(() => clearTimeout(timer));
  }

  private spawnWorker(slot: number): Worker {
    // Same node binary, same loader flags (tsx in development), same entry script.
    const entry = process.argv[1];
    if (!entry) throw new WeftError('WEFT_ERR_INTERNAL', 'cannot find the weft entry script to start a worker');
    const role: WorkerRole = slot === 0 ? 'primary' : 'proxy';
    const stdio: (number | 'ignore' | 'inherit' | 'ipc')[] = ['ignore', 'inherit', 'inherit', 'ipc', ...this.fds.map((f) => f.fd)];
    const env = {
      ...process.env, [WORKER_ENV]: '1', [ROLE_ENV]: role, [WORKER_ID_ENV]: String(slot),
      [LISTEN_FDS_ENV]: this.fds.map((f, i) => `${f.name}=${i + 4}`).join(','),
    };
    const proc = spawn(process.execPath, [...process.execArgv, entry, 'agent', ...this.o.args], { stdio, env, serialization: 'advanced' });
    let onReady: () => void = () => {};
    let onFail: (e: Error) => void = () => {};
    const ready = new Promise<void>((res, rej) => { onReady = res; onFail = rej; });
    ready.catch(() => {});
    const timer = setTimeout(() => onFail(new Error(`worker ${proc.pid} not ready after ${this.readyTimeoutMs} ms`)), this.readyTimeoutMs);
    const w: Worker = { slot, role, proc, ready, isReady: false, retiring: false, exited: new Promise<void>((r) => proc.once('exit', () => r())) };
    this.all.add(w);
    let fatal = '';
    proc.on('message', (m: WorkerMessage) => {
      if (m?.type === 'ready') { clearTimeout(timer); w.isReady = true; onReady(); return; }
      if (m?.type === 'fatal') { fatal = String(m.reason).slice(0, 2000); return; }
      this.onMessage(w, m);
    });
    proc.on('error', (e) => this.log.warn({ pid: proc.pid, err: describeError(e) }, 'worker IPC error'));
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      this.all.delete(w);
      this.forget(w);
      onFail(new Error(`${role} worker ${proc.pid} exited (${code ?? signal}) before it was ready${fatal ? `: ${fatal}` : ''}`));
      // Still starting (the first start, not a restart): the caller gets the error and
      // the agent exits with it; a service manager restarts it, not a crash loop here.
      if (w.retiring || this.stopping || this.initial) return;
      this.log.error({ pid: proc.pid, slot, role, code, signal }, 'worker died: starting a new one');
      if (this.slots[slot] === w) this.respawn(slot);
    });
    this.log.info({ pid: proc.pid, slot, role }, 'worker started');
    return w;
  }

  /** Crash recovery: immediately, unless workers are crash-looping (then back off). */
  private respawn(slot: number): void {
    const now = Date.now();
    this.crashes = this.crashes.filter((t) => now - t < 30_000).concat(now);
    const delay = this.crashes.length <= 3 ? 0 : Math.min(10_000, 500 * 2 ** (this.crashes.length - 3));
    setTimeout(() => {
      if (this.stopping) return;
      const w = this.spawnWorker(slot);
      this.slots[slot] = w;
      w.ready.then(() => {
        this.announceWorkers();
        this.log.info({ pid: w.proc.pid, slot, role: w.role }, 'replacement worker ready');
      }, () => {});
    }, delay);
  }

  // ----------------------------------------------------------------- the relay

  private onMessage(w: Worker, m: WorkerMessage): void {
    switch (m?.type) {
      case 'hello':
        if (Object.keys(this.cache).length) this.send(w, { type: 'state', seq: ++this.seq, state: this.cache });
        return;
      case 'state':
        if (w.role === 'primary' && !w.retiring) this.publish(w, m.seq, m.state);
        return;
      case 'state-applied': {
        const p = this.syncs.get(m.seq);
        if (p?.waiting.delete(w) && !p.waiting.size) p.done();
        return;
      }
      case 'ejection': {
        const primary = this.slots[0];
        if (primary?.proc.connected) this.send(primary, { type: 'ejection', pid: w.proc.pid ?? 0, service: m.service, ip: m.ip, port: m.port, ejected: m.ejected });
        else this.log.warn({ service: m.service, endpoint: `${m.ip}:${m.port}`, ejected: m.ejected }, 'no primary to update the L4 maps after an ejection');
        return;
      }
      case 'access': {
        const primary = this.slots[0];
        if (primary?.proc.connected) this.send(primary, m);
        return;
      }
      case 'collect-metrics':
        this.collect(w, m.id);
        return;
      case 'metrics': {
        const p = this.collects.get(m.id);
        if (p?.waiting.delete(w)) { p.got.push({ ...info(w), metrics: m.metrics }); if (!p.waiting.size) p.done(); }
        return;
      }
      default:
    }
  }

  /** Primary → every proxy worker; answers the primary once all applied it (a stuck
   *  worker delays a snapshot's ACK by at most the sync timeout, never forever). */
  private publish(from: Worker, primarySeq: number, state: NodeState): void {
    Object.assign(this.cache, state);
    const seq = ++this.seq;
    const targets = [...this.all].filter((x) => x.role === 'proxy' && !x.retiring && x.proc.connected);
    const answer = (lagging: Worker[]) => {
      if (lagging.length) this.log.warn({ workers: lagging.map((x) => x.proc.pid) }, 'proxy workers did not apply a state update in time');
      if (from.proc.connected) this.send(from, { type: 'state-synced', seq: primarySeq, lagging: lagging.map((x) => x.slot) });
    };
    if (!targets.length) return answer([]);
    const waiting = new Set(targets);
    const timer = setTimeout(() => { this.syncs.delete(seq); answer([...waiting]); }, this.stateSyncTimeoutMs);
    this.syncs.set(seq, { waiting, done: () => { clearTimeout(timer); this.syncs.delete(seq); answer([]); } });
    for (const t of targets) this.send(t, { type: 'state', seq, state });
  }

  /** A scrape on the primary: every other serving worker's metrics, within the timeout. */
  private collect(from: Worker, id: number): void {
    const targets = this.slots.filter((x): x is Worker => x !== null && x !== from && x.isReady && x.proc.connected);
    const p: PendingCollect = { waiting: new Set(targets), got: [], done: () => {} };
    const seq = ++this.seq;
    const finish = () => {
      clearTimeout(timer);
      this.collects.delete(seq);
      if (from.proc.connected) this.send(from, { type: 'worker-metrics', id, workers: p.got, missing: [...p.waiting].map(info) });
    };
    const timer = setTimeout(finish, this.metricsTimeoutMs);
    p.done = finish;
    if (!targets.length) return finish();
    this.collects.set(seq, p);
    for (const t of targets) this.send(t, { type: 'collect-metrics', id: seq });
  }

  /** A worker that exits or retires no longer holds up a sync or a scrape. */
  private forget(w: Worker): void {
    for (const p of this.syncs.values()) if (p.waiting.delete(w) && !p.waiting.size) p.done();
    for (const p of this.collects.values()) if (p.waiting.delete(w) && !p.waiting.size) p.done();
  }

  private announceWorkers(): void {
    const primary = this.slots[0];
    if (primary?.proc.connected) this.send(primary, { type: 'workers', workers: this.workers() });
  }

  private send(w: Worker, m: SupervisorMessage): void {
    try {
      w.proc.send(m, (e) => { if (e) this.log.debug({ pid: w.proc.pid, type: m.type, err: describeError(e) }, 'cannot reach worker'); });
    } catch (e) {
      this.log.debug({ pid: w.proc.pid, type: m.type, err: describeError(e) }, 'cannot reach worker');
    }
  }

  private closeFds(): void {
    for (const f of this.fds.splice(0)) {
      try { native.closeFd(f.fd); } catch { /* already closed */ }
    }
  }
}

/** net.ipv4.tcp_migrate_req (Linux 5.14+, per network namespace): when a SO_REUSEPORT
 *  listener closes, the connections in its accept queue move to another listener of the
 *  group instead of being reset. Without it a handover resets what was queued. */
const MIGRATE_REQ = '/proc/sys/net/ipv4/tcp_migrate_req';
function enableRequestMigration(log: Logger): void {
  try {
    if (readFileSync(MIGRATE_REQ, 'utf8').trim() !== '1') writeFileSync(MIGRATE_REQ, '1');
  } catch (e) {
    log.warn({ err: describeError(e) }, `cannot set ${MIGRATE_REQ}: connections queued on this agent when it hands over to a new one are reset`);
  }
}

function info(w: Worker): WorkerInfo {
  return { worker: w.slot, role: w.role, pid: w.proc.pid ?? 0 };
}

/** In a worker: the listener fds the supervisor passed, by name. */
export function inheritedListeners(env: NodeJS.ProcessEnv = process.env): Record<string, number> | null {
  const spec = env[LISTEN_FDS_ENV];
  if (!spec) return null;
  return Object.fromEntries(spec.split(',').map((kv) => { const [k, v] = kv.split('='); return [k!, Number(v)]; }));
}

/** In a worker: its role and slot (a worker started without a supervisor is a primary). */
export function workerIdentity(env: NodeJS.ProcessEnv = process.env): { role: WorkerRole; worker: number } {
  return { role: env[ROLE_ENV] === 'proxy' ? 'proxy' : 'primary', worker: Number(env[WORKER_ID_ENV] ?? 0) };
}
