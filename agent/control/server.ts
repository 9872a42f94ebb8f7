// `weft control` composition: a policy source feeds the snapshot store; the gRPC server
// exposes Sync, workload registration, certificate signing and Status; an optional admin
// HTTP listener serves /metrics and /healthz. Every RPC authenticates first, validates
// its input second, and only then touches state, so a refused call changes nothing.
import * as grpc from '@grpc/grpc-js';
import { status, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { WeftError, isWeftError } from '../lib/errors';
import { componentLogger, type Logger } from '../telemetry/logger';
import type { ControlHandlers } from './generated/weft/control/v1/Control';
import type { StatusResponse } from './generated/weft/control/v1/StatusResponse';
import { AgentRegistry } from './agents';
import { requireSelf, isValidNodeName, type TokenAuthenticator, type Caller, type PeerCredentials } from './auth';
import { signCertificate, type CertificateSigner } from './certificates';
import { ControlMetrics } from './metrics';
import type { PolicyCompiler } from './policy-compiler';
import { controlServiceDefinition, SERVER_MAX_RECEIVE_BYTES } from './proto';
import { RegistrationStore, validateRegistration, workloadKey } from './registrations';
import { rpcError, toRpcError } from './rpc-error';
import { SnapshotStore } from './snapshot-store';
import type { PolicySource } from './sources/source';
import { SyncService } from './sync-service';
import { explain } from '../explain/explain';
import { writeFileAtomic } from '../sync/atomic-file';
import { ServingIdentity } from './serving-cert';
import { registrationAllowed } from '../policy/snapshot';

export interface ControlServerOptions {
  source: PolicySource;
  compiler: PolicyCompiler;
  auth: TokenAuthenticator;
  /** HOST:PORT; port 0 picks a free port (see `port` after start). */
  host: string;
  port: number;
  stateDir?: string;
  /** Creates the CA once the first snapshot names the trust domain (MeshConfig). */
  createSigner?: (trustDomain: string) => Promise<CertificateSigner>;
  logger?: Logger;
  /** TLS 1.3 on the gRPC port with a serving certificate from the mesh CA (needs
   *  createSigner). Without it the port is plaintext: loopback demos and tests only. */
  tls?: ControlTlsOptions;
  /** A Sync push left unanswered this long while newer versions wait ends the stream
   *  (the agent reconnects and resyncs). Default 30 s. */
  maxAckWaitMs?: number;
  /** One of several replicas sharing state through the Kubernetes API: every replica
   *  must compile the same snapshot from the same inputs, so nothing only one replica
   *  hears of goes in. Workloads come from the Kubernetes API (RegisterWorkload is
   *  refused) and node addresses from Node objects (Sync hello addresses are ignored). */
  replicated?: boolean;
}

export interface ControlTlsOptions {
  /** Trust domain of the CA when no snapshot compiled at startup (MeshConfig's default). */
  defaultTrustDomain: string;
  /** Lifetime of the serving certificate when no snapshot says (mesh certTtl). */
  defaultTtlSeconds?: number;
  /** The CA trust bundle (PEM) is written here on every issue, for operators to give to
   *  agents (`weft agent --control-ca`). */
  bundleOut?: string;
}

export class ControlServer {
  readonly metrics = new ControlMetrics();
  readonly agents = new AgentRegistry();
  readonly registrations: RegistrationStore;
  readonly store: SnapshotStore;
  readonly sync: SyncService;
  private readonly log: Logger;
  private readonly grpcServer: grpc.Server;
  private boundPort = 0;
  private signer: CertificateSigner | undefined;
  private signerReady: Promise<void> | undefined;
  private serving: ServingIdentity | undefined;

  constructor(private readonly opts: ControlServerOptions) {
    this.log = opts.logger ?? componentLogger('control');
    this.registrations = new RegistrationStore(opts.replicated ? undefined : opts.stateDir);
    this.store = new SnapshotStore(opts.compiler, this.registrations, this.metrics, this.log, { nodeReports: !opts.replicated });
    this.sync = new SyncService(this.store, this.agents, opts.auth, this.metrics, this.log, () => this.signer?.trustBundle() ?? [], opts.maxAckWaitMs);
    this.store.on('update', (snap) => { void this.ensureSigner(snap.mesh.trustDomain); });
    this.grpcServer = new grpc.Server({
      'grpc.max_receive_message_length': SERVER_MAX_RECEIVE_BYTES,
      // Agents send keepalive pings on idle Sync streams; accept them.
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5000,
    });
    this.grpcServer.addService(controlServiceDefinition(), this.handlers());
  }

  get port(): number { return this.boundPort; }

  /** Loads the policies (first snapshot or a recorded rejection), then listens. */
  async start(): Promise<void> {
    await this.opts.source.start((tree) => this.store.policyChanged(tree));
    await this.signerReady;
    const credentials = this.opts.tls ? await this.tlsCredentials(this.opts.tls) : grpc.ServerCredentials.createInsecure();
    this.boundPort = await new Promise<number>((resolve, reject) => {
      this.grpcServer.bindAsync(`${this.opts.host.includes(':') ? `[${this.opts.host}]` : this.opts.host}:${this.opts.port}`, credentials, (err, port) => {
        if (err) reject(new WeftError('WEFT_ERR_UNAVAILABLE', `cannot listen on ${this.opts.host}:${this.opts.port}: ${err.message}`, { cause: err }));
        else resolve(port);
      });
    });
    this.log.info({ address: `${this.opts.host}:${this.boundPort}`, tls: this.serving?.spiffeId ?? false, source: this.opts.source.description, version: this.store.snapshot()?.version }, 'control API listening');
  }

  /** The serving certificate needs the CA: when no snapshot named a trust domain yet
   *  (the first policy load failed), the CA starts with the default one. */
  private async tlsCredentials(tls: ControlTlsOptions): Promise<grpc.ServerCredentials> {
    if (!this.signerReady) this.ensureSigner(tls.defaultTrustDomain);
    await this.signerReady;
    const signer = this.signer;
    if (!signer?.trustDomain) throw new WeftError('WEFT_ERR_IDENTITY', 'TLS needs the mesh CA, which could not be created (see the log)');
    const ttlMs = this.store.snapshot()?.mesh.certTtlMs;
    this.serving = new ServingIdentity({
      signer: signer as CertificateSigner & { trustDomain: string },
      ttlSeconds: ttlMs ? Math.round(ttlMs / 1000) : tls.defaultTtlSeconds ?? 24 * 3600,
      log: this.log,
      onBundle: (pem) => {
        if (!tls.bundleOut) return;
        const file = tls.bundleOut;
        bundleWritten = writeFileAtomic(file, pem, 0o644).catch((e: unknown) => this.log.error({ err: (e as Error).message, file }, 'cannot write the CA bundle'));
      },
    });
    let bundleWritten: Promise<void> = Promise.resolve();
    const creds = await this.serving.credentials();
    // Agents started right after "listening" read the file: it is there before we bind.
    await bundleWritten;
    return creds;
  }

  /** The peer's TLS-verified certificate, if any (grpc-js reports verified peers only). */
  private peer(call: { getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } } | null }): PeerCredentials {
    return { certificate: call.getAuthContext()?.sslPeerCertificate?.raw, trustDomain: this.signer?.trustDomain };
  }

  /** The CA is created (or loaded from the state dir) for the first snapshot's trust
   *  domain, before that snapshot is pushed anywhere, so the trust bundle travels with
   *  it. A later trust-domain change needs a CA root rotation and is only logged. */
  private ensureSigner(trustDomain: string): void {
    if (!this.opts.createSigner) return;
    if (this.signerReady) {
      if (this.signer && 'trustDomain' in this.signer && this.signer.trustDomain !== trustDomain) {
        this.log.warn({ ca: this.signer.trustDomain, mesh: trustDomain }, 'MeshConfig changed the trust domain; the CA keeps signing for its own until restarted with a new state dir');
      }
      return;
    }
    this.signerReady = this.opts.createSigner(trustDomain).then((s) => { this.signer = s; }, (e: unknown) => {
      this.log.error({ err: (e as Error).message }, 'cannot create the CA; SignCertificate will fail');
    });
  }

  /** The CA's trust bundle changed outside a snapshot (a root rotation, or roots another
   *  replica stored): every agent is sent it. */
  trustBundleChanged(): void {
    void this.sync.fanOut();
  }

  /** Streams end with OK (agents reconnect to the next instance), unary calls finish. */
  async stop(): Promise<void> {
    await this.opts.source.stop();
    this.serving?.stop();
    this.sync.closeAll();
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => { this.grpcServer.forceShutdown(); resolve(); }, 2000);
      this.grpcServer.tryShutdown(() => { clearTimeout(force); resolve(); });
    });
  }

  private authed<Req, Res>(fn: (req: Req, caller: Caller) => Promise<Res> | Res) {
    return (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>): void => {
      this.opts.auth.authenticate(call.metadata, this.peer(call)).then((caller) => fn(call.request, caller)).then((res) => cb(null, res), (e: unknown) => {
        const err = toRpcError(e);
        if (err.code === status.INTERNAL) this.log.error({ err: err.details }, 'control RPC failed');
        cb(err);
      });
    };
  }

  private handlers(): ControlHandlers {
    return {
      Sync: (call) => this.sync.handle(call, this.peer(call)),

      RegisterWorkload: this.authed(async (req, caller) => {
        this.refuseIfReplicated();
        if (!isValidNodeName(req.node)) throw rpcError(status.INVALID_ARGUMENT, 'node: expected a node name');
        requireSelf(caller, req.node, 'node');
        const w = validateRegistration({ ...req, labels: req.labels ?? {} });
        const key = workloadKey(w.namespace, w.name);
        const existing = this.registrations.get(key);
        if (existing && existing.node !== caller.node) throw rpcError(status.PERMISSION_DENIED, `workload ${key} is registered by node '${existing.node}'`);
        // Without a snapshot the grant is checked when one compiles (the compiler drops
        // registrations MeshConfig does not allow); with one, refuse here and say why.
        const snap = this.store.snapshot();
        if (snap && !registrationAllowed(snap.mesh.registrations, caller.node, w.namespace, w.serviceAccount)) {
          throw rpcError(status.PERMISSION_DENIED, `node '${caller.node}' may not register workloads of namespace '${w.namespace}' with service account '${w.serviceAccount}' (MeshConfig spec.registrations)`);
        }
        return { versionInfo: await this.changeRegistrations(key, w) };
      }),

      DeregisterWorkload: this.authed(async (req, caller) => {
        this.refuseIfReplicated();
        if (!isValidNodeName(req.node)) throw rpcError(status.INVALID_ARGUMENT, 'node: expected a node name');
        requireSelf(caller, req.node, 'node');
        const key = workloadKey(req.namespace, req.name);
        const existing = this.registrations.get(key);
        if (!existing) throw rpcError(status.NOT_FOUND, `workload ${key.slice(0, 200)} is not registered`);
        if (existing.node !== caller.node) throw rpcError(status.PERMISSION_DENIED, `workload ${key} is registered by node '${existing.node}'`);
        return { versionInfo: await this.changeRegistrations(key, undefined) };
      }),

      SignCertificate: this.authed(async (req, caller) => {
        await this.signerReady;
        return signCertificate(req, caller, this.store.snapshot(), this.signer);
      }),

      Status: this.authed((req) => this.status(req.node)),

      Explain: this.authed((req) => {
        const snap = this.store.snapshot();
        if (!snap) throw rpcError(status.UNAVAILABLE, 'no policy snapshot has compiled yet');
        if (!req.from || !req.host || !(req.port >= 1 && req.port <= 65535)) throw rpcError(status.INVALID_ARGUMENT, 'explain needs from, host and a port in 1..65535');
        const e = explain(snap, {
          from: req.from, host: req.host, port: req.port, ...(req.path ? { path: req.path } : {}), ...(req.method ? { method: req.method } : {}), headers: req.headers ?? {},
        });
        return { explanation: Buffer.from(JSON.stringify(e)) };
      }),
    };
  }

  private refuseIfReplicated(): void {
    if (this.opts.replicated) {
      throw rpcError(status.FAILED_PRECONDITION, 'this control API runs as replicas on the Kubernetes API, where workloads come from the Pods; registering workloads (weft run) needs a control API with --state-store dir');
    }
  }

  /** Applies a registration change and recompiles; if the result does not compile, the
   *  change is undone (nothing persisted, nothing served) and the caller gets why. */
  private async changeRegistrations(key: string, next: ReturnType<typeof validateRegistration> | undefined): Promise<string> {
    const before = this.registrations.set(key, next);
    let version: string | undefined;
    try {
      version = await this.store.registrationsChanged();
    } catch (e) {
      this.registrations.set(key, before);
      if (isWeftError(e, 'WEFT_ERR_INVALID_POLICY')) {
        const d = e.details?.diagnostics;
        throw rpcError(status.FAILED_PRECONDITION, `the workload does not fit the policy set: ${Array.isArray(d) ? d.join('; ') : e.message}`);
      }
      throw e;
    }
    await this.registrations.persist();
    this.log.info({ workload: key, node: next?.node ?? before?.node, action: next ? 'register' : 'deregister', version }, 'workload registration changed');
    return version ?? '';
  }

  status(node: string): StatusResponse {
    const agents = this.agents.list().filter((a) => !node || a.node === node);
    if (node && agents.length === 0) throw rpcError(status.NOT_FOUND, `no agent '${node.slice(0, 200)}' has synced with this control API`);
    const rej = this.store.lastRejection();
    return {
      currentVersion: this.store.snapshot()?.version ?? '',
      source: this.opts.source.description,
      currentSinceMs: String(this.store.since()),
      registeredWorkloads: this.registrations.size,
      lastRejection: rej ? { revision: rej.revision, diagnostics: rej.diagnostics, atMs: String(rej.at) } : null,
      lastReloadMs: String(this.store.lastReload()?.at ?? 0), lastReloadAccepted: this.store.lastReload()?.accepted ?? false,
      agents: agents.map((a) => ({
        node: a.node, connected: a.streams > 0, ackedVersion: a.ackedVersion, sentVersion: a.sentVersion,
        lastNackVersion: a.lastNackVersion, lastNackReason: a.lastNackReason, lastSeenMs: String(a.lastSeenMs), auth: a.auth,
      })),
    };
  }
}
