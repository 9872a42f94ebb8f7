// A worker's end of the IPC channel to its supervisor (message types in ipc.ts): typed
// sends, request/answer pairs with timeouts, and events for what the supervisor pushes.
// A worker started without a supervisor (no IPC channel) has no link: it is alone.
import { EventEmitter } from 'node:events';
import type { Registry } from 'prom-client';
import type { AccessRecord } from '../proxy/routing/access-log';
import type { NodeState, SupervisorMessage, WorkerInfo, WorkerMessage, WorkerMetrics } from './ipc';

export interface WorkerLinkEvents {
  drain: [graceMs: number];
  state: [state: NodeState, seq: number];
  ejection: [m: Extract<SupervisorMessage, { type: 'ejection' }>];
  workers: [workers: WorkerInfo[]];
  access: [record: AccessRecord];
}

export interface CollectedMetrics {
  workers: (WorkerInfo & { metrics: WorkerMetrics })[];
  /** Workers that did not answer within the supervisor's timeout. */
  missing: WorkerInfo[];
}

export class WorkerLink extends EventEmitter<WorkerLinkEvents> {
  private seq = 0;
  private readonly pending = new Map<number, (m: SupervisorMessage) => void>();
  private registry: Registry | null = null;

  private constructor(private readonly proc: NodeJS.Process) {
    super();
    proc.on('message', (m: SupervisorMessage) => this.onMessage(m));
    // The supervisor is gone: drain (a new agent will take over the sockets).
    proc.once('disconnect', () => this.emit('drain', 30_000));
  }

  /** The link of this process, or null when no supervisor started it. */
  static ofProcess(proc: NodeJS.Process = process): WorkerLink | null {
    return proc.send && proc.connected ? new WorkerLink(proc) : null;
  }

  send(m: WorkerMessage): void {
    if (this.proc.connected) this.proc.send!(m);
  }

  /** Answers the supervisor's metric collections (for the primary's /metrics). */
  serveMetrics(registry: Registry): void {
    this.registry = registry;
  }

  /** Primary: hands a state change to every proxy worker; resolves when they applied it
   *  (with the slots of workers that did not in time). */
  publish(state: NodeState, timeoutMs: number): Promise<number[]> {
    const seq = ++this.seq;
    return this.request(seq, { type: 'state', seq, state }, timeoutMs, (m) => (m.type === 'state-synced' ? m.lagging : []));
  }

  /** Primary: every other worker's metrics (those that answer in time). */
  collectMetrics(timeoutMs: number): Promise<CollectedMetrics> {
    const id = ++this.seq;
    return this.request(id, { type: 'collect-metrics', id }, timeoutMs,
      (m) => (m.type === 'worker-metrics' ? { workers: m.workers, missing: m.missing } : { workers: [], missing: [] }));
  }

  private request<T>(id: number, m: WorkerMessage, timeoutMs: number, pick: (m: SupervisorMessage) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(id); reject(new Error(`no answer from the supervisor to '${m.type}' within ${timeoutMs} ms`)); }, timeoutMs);
      this.pending.set(id, (answer) => { clearTimeout(timer); this.pending.delete(id); resolve(pick(answer)); });
      this.send(m);
    });
  }

  private onMessage(m: SupervisorMessage): void {
    switch (m?.type) {
      case 'drain': this.emit('drain', m.graceMs); return;
      case 'state': this.emit('state', m.state, m.seq); return;
      case 'ejection': this.emit('ejection', m); return;
      case 'workers': this.emit('workers', m.workers); return;
      case 'access': this.emit('access', m.record); return;
      case 'state-synced': this.pending.get(m.seq)?.(m); return;
      case 'worker-metrics': this.pending.get(m.id)?.(m); return;
      case 'collect-metrics':
        if (this.registry) void this.registry.getMetricsAsJSON().then((metrics) => this.send({ type: 'metrics', id: m.id, metrics: metrics as WorkerMetrics }));
        return;
      default:
    }
  }
}
