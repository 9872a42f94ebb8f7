// The mesh CA when the control API runs as several replicas: the roots and their keys
// live in one Secret (never in a ConfigMap, never logged), and every replica signs with
// the same roots.
// - Creation: the replica that holds the Lease generates the first root and creates
//   the Secret; a create that loses a race (409) re-reads. A replica that does not lead
//   waits until the Secret exists. No replica ever generates a root it does not store.
// - Every replica re-reads the Secret every pollMs and adopts roots another replica
//   wrote; a changed trust bundle is pushed to its agents (ControlServer).
// - Staged root rotation is requested by annotating the Secret
//   (`kubectl -n weft-system annotate secret weft-control-ca weft.dev/rotate-root=24h`:
//   the new root signs after that delay) and is carried out only by the Lease holder, in
//   one compare-and-swap write that stores the new roots, removes the request and
//   records the outcome (annotation weft.dev/last-root-rotation). A leader that dies
//   before that write leaves the request for its successor; a write from a leader that
//   lost the Lease meanwhile fails on the resourceVersion and changes nothing.
import { EventEmitter } from 'node:events';
import { WeftError, describeError, isWeftError } from '../../lib/errors';
import { durationMs } from '../../policy/duration';
import type { Logger } from '../../telemetry/logger';
import { CertificateAuthority, checkStoredRoots, type CaOptions, type CaStore, type StoredRoot } from '../../identity/ca';
import { ConflictError, type KubeStateApi } from './api';
import type { LeaderElector } from './lease';
import { SharedDocument } from './shared-document';

export const CA_SECRET_NAME = 'weft-control-ca';
export const CA_SECRET_KEY = 'ca.json';
export const ROTATE_ANNOTATION = 'weft.dev/rotate-root';
export const ROTATED_ANNOTATION = 'weft.dev/last-root-rotation';

interface CaDocument { roots: StoredRoot[] }

/** The CA roots in a Secret, saved by compare-and-swap against what was last loaded. */
export class SecretCaStore implements CaStore {
  private loadedRv = '';
  /** Set while the leader carries out a rotation request: the save records it. */
  completing: { request: string; by: string } | undefined;

  constructor(readonly doc: SharedDocument<CaDocument>) {}

  get description(): string { return this.doc.description; }

  async load(): Promise<StoredRoot[] | undefined> {
    const d = await this.doc.read();
    this.loadedRv = d.resourceVersion;
    return d.value ? checkStoredRoots(d.value.roots, this.description) : undefined;
  }

  async save(roots: StoredRoot[]): Promise<void> {
    const completing = this.completing;
    const written = await this.doc.update((_cur, annotations, rv) => {
      if (rv !== this.loadedRv) throw new ConflictError(this.description);
      const next = { ...annotations };
      if (completing) {
        delete next[ROTATE_ANNOTATION];
        const signing = roots.map((r) => r.activeFrom).sort().at(-1);
        next[ROTATED_ANNOTATION] = JSON.stringify({ request: completing.request, by: completing.by, at: new Date().toISOString(), newRootSignsFrom: signing });
      }
      return { value: { roots }, annotations: next };
    });
    this.loadedRv = written.resourceVersion;
  }
}

export interface ReplicatedCaOptions {
  trustDomain: string;
  ca?: Omit<CaOptions, 'trustDomain'>;
  /** How often the Secret is re-read (default 2 s). */
  pollMs?: number;
}

export declare interface ReplicatedCa {
  on(event: 'bundle', listener: (bundle: string[]) => void): this;
  on(event: 'rotated', listener: (result: { activeFrom: Date; oldRootsRetireAt: Date }) => void): this;
}

export class ReplicatedCa extends EventEmitter {
  readonly store: SecretCaStore;
  private ca: CertificateAuthority | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private busy: Promise<void> | undefined;
  private readonly pollMs: number;

  constructor(api: KubeStateApi, private readonly elector: LeaderElector, private readonly opts: ReplicatedCaOptions, private readonly log: Logger) {
    super();
    this.pollMs = opts.pollMs ?? 2000;
    this.store = new SecretCaStore(new SharedDocument<CaDocument>(api, {
      resource: 'secrets', name: CA_SECRET_NAME, key: CA_SECRET_KEY, labels: { 'app.kubernetes.io/name': 'weft-control', 'app.kubernetes.io/part-of': 'weft' },
    }, log));
    // A new leader looks for a pending rotation request at once.
    elector.on('leading', () => this.kick());
  }

  /** Resolves with the CA once the Secret holds roots (created by this replica if it
   *  leads), then keeps it in step with the Secret until stop(). */
  async start(): Promise<CertificateAuthority> {
    let waitingLogged = false;
    while (!this.stopped) {
      try {
        this.ca = await CertificateAuthority.open(this.store, { ...this.opts.ca, trustDomain: this.opts.trustDomain, create: this.elector.isLeader() });
        this.log.info({ secret: this.store.description, leader: this.elector.isLeader() }, 'mesh CA loaded from the Kubernetes API');
        this.schedule();
        return this.ca;
      } catch (e) {
        if (isWeftError(e, 'WEFT_ERR_NOT_FOUND')) {
          if (!waitingLogged) this.log.info({ secret: this.store.description, leader: this.elector.leader() || undefined }, 'waiting for the Lease holder to create the mesh CA');
          waitingLogged = true;
        } else if (!isWeftError(e, 'WEFT_ERR_CONFLICT')) {
          this.log.warn({ secret: this.store.description, err: describeError(e) }, 'cannot load the mesh CA; retrying');
        }
      }
      await new Promise((r) => setTimeout(r, Math.min(this.pollMs, 500)));
    }
    throw new WeftError('WEFT_ERR_UNAVAILABLE', 'stopped before the mesh CA was loaded');
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.kick(), this.pollMs);
  }

  /** Re-read now (and rotate if leading and asked to). */
  kick(): void {
    if (!this.ca || this.busy || this.stopped) return;
    clearTimeout(this.timer);
    this.busy = this.step().catch((e: unknown) => {
      this.log.warn({ secret: this.store.description, err: describeError(e) }, 'mesh CA sync failed; retrying');
    }).finally(() => { this.busy = undefined; this.schedule(); });
  }

  private async step(): Promise<void> {
    const ca = this.ca as CertificateAuthority;
    const before = ca.trustBundle().join('');
    await ca.reload();
    const request = (await this.currentAnnotations())[ROTATE_ANNOTATION];
    if (request !== undefined && this.elector.isLeader()) await this.rotate(ca, request);
    const bundle = ca.trustBundle();
    if (bundle.join('') !== before) {
      this.log.info({ roots: bundle.length }, 'mesh CA trust bundle changed');
      this.emit('bundle', bundle);
    }
  }

  private async currentAnnotations(): Promise<Record<string, string>> {
    return (await this.store.doc.read()).annotations;
  }

  private async rotate(ca: CertificateAuthority, request: string): Promise<void> {
    let activateAfterSeconds: number;
    try {
      activateAfterSeconds = Math.round(durationMs(request.trim()) / 1000);
    } catch {
      // Record why and drop the request, so it is not retried forever.
      await this.store.doc.update((cur, annotations) => {
        if (!cur || annotations[ROTATE_ANNOTATION] !== request) return undefined;
        const next = { ...annotations };
        delete next[ROTATE_ANNOTATION];
        next[ROTATED_ANNOTATION] = JSON.stringify({ request, by: this.elector.identity, at: new Date().toISOString(), error: `'${request.slice(0, 40)}' is not a duration like 24h or 0s` });
        return { value: cur, annotations: next };
      });
      this.log.error({ request: request.slice(0, 40) }, `${ROTATE_ANNOTATION}: not a duration; request dropped`);
      return;
    }
    // Against exactly the roots just loaded: reload() ran in this step.
    await ca.reload();
    this.store.completing = { request, by: this.elector.identity };
    try {
      const r = await ca.rotateRoot({ activateAfterSeconds });
      this.log.info({ activeFrom: r.activeFrom, oldRootsRetireAt: r.oldRootsRetireAt }, 'staged root rotation stored (leader)');
      this.emit('rotated', r);
    } catch (e) {
      if (!isWeftError(e, 'WEFT_ERR_CONFLICT')) throw e;
      this.log.info('root rotation raced another writer; re-reading');
    } finally {
      this.store.completing = undefined;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.busy;
  }
}
