// The agent side of the control API: keeps one Sync stream open in delta mode (see
// control.proto), merges every push into the view resources it holds, applies the merged
// view through the agent's `apply` callback, ACKs or NACKs it, and caches the last good
// view on disk. Failure handling follows linkerd2-proxy's policy client:
// INVALID_ARGUMENT and PERMISSION_DENIED mean "this request can never succeed" and stop
// the stream for good (the agent keeps serving what it has and reports the error); every
// other failure (control API down, restarting, overloaded, token being rotated) is
// retried with jittered exponential backoff. Applying is all-or-nothing by contract: a
// callback that throws has changed nothing, and the agent keeps the previous version;
// a delta is merged into a copy of the held resources, which replaces them only once
// the merged view was applied.
//
// Transport: TLS to the control API, whose serving certificate must chain to the CA
// bundle the operator gave the agent and carry the control API's SPIFFE ID. The agent
// bootstraps with its token; once it holds its node SVID (useCertificate) it reconnects
// presenting it as client certificate and stops sending the token, and does so again on
// every renewal. A reconnect is cheap: the hello lists the resources held, so the
// server sends only what changed meanwhile.
import { EventEmitter } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import type { NodeView } from '../policy/snapshot';
import { WeftError, describeError, type WeftErrorCode } from '../lib/errors';
import { componentLogger, type Logger } from '../telemetry/logger';
import type { ControlClient } from '../control/generated/weft/control/v1/Control';
import type { SyncRequest } from '../control/generated/weft/control/v1/SyncRequest';
import type { SyncResponse__Output } from '../control/generated/weft/control/v1/SyncResponse';
import type { RegisterWorkloadRequest } from '../control/generated/weft/control/v1/RegisterWorkloadRequest';
import type { RegisterWorkloadResponse__Output } from '../control/generated/weft/control/v1/RegisterWorkloadResponse';
import type { DeregisterWorkloadResponse__Output } from '../control/generated/weft/control/v1/DeregisterWorkloadResponse';
import type { DeregisterWorkloadRequest } from '../control/generated/weft/control/v1/DeregisterWorkloadRequest';
import type { StatusResponse__Output } from '../control/generated/weft/control/v1/StatusResponse';
import type { SignCertificateResponse__Output } from '../control/generated/weft/control/v1/SignCertificateResponse';
import type { ExplainRequest } from '../control/generated/weft/control/v1/ExplainRequest';
import type { ExplainResponse__Output } from '../control/generated/weft/control/v1/ExplainResponse';
import { controlProto, AUTH_METADATA_KEY, NODE_METADATA_KEY, NODE_RESOURCES_TYPE_URL, CLIENT_MAX_RECEIVE_BYTES, RESEND_INITIAL_VERSIONS } from '../control/proto';
import { resourceSetDigest } from '../policy/view-resources';
import { Backoff, type BackoffOptions } from './backoff';
import { SnapshotCache, type CachedSnapshot } from './cache';
import { assemble, checkResource, mergeDelta, type HeldResource } from './resource-set';
import { spiffeIdOfCertificate } from '../identity/verify';
import { parseSpiffeId, NODE_NAMESPACE } from '../identity/spiffe';
import { CONTROL_SERVICE_ACCOUNT } from '../control/serving-cert';

export interface ApplyInfo {
  version: string;
  trustBundle: string[];
  /** True when the snapshot comes from the on-disk cache (control API not reached yet). */
  fromCache: boolean;
}

export interface SyncClientOptions {
  /** Control API HOST:PORT. */
  address: string;
  node: string;
  /** This node's address for other nodes' tunnels (--node-address), reported in the
   *  Sync hello; the control API ignores loopback addresses. */
  nodeAddress?: string;
  /** Node bootstrap token, or how to read it: a function is called for every connection
   *  attempt, so a rotated file (kubelet refreshes projected ServiceAccount tokens) is
   *  picked up without a restart. */
  token: string | (() => string);
  /** Agent state dir: the snapshot cache lives here. */
  stateDir: string;
  /** Program the node; must throw (having changed nothing) if it cannot apply all of it. */
  apply: (view: NodeView, info: ApplyInfo) => Promise<void>;
  logger?: Logger;
  backoff?: BackoffOptions;
  /** PEM roots the control API's serving certificate must chain to. Absent: plaintext
   *  (`--control-insecure`, loopback demos only). */
  controlCa?: string;
  /** Deadline of unary calls (registration, certificates, status). */
  unaryTimeoutMs?: number;
  /** When a stream that was up ends (a control API replica stopped or died), the first
   *  reconnect waits a random delay in [0, this] (default 2000 ms), so the agents that
   *  were on that replica arrive at the others spread out instead of all at once. */
  reconnectSpreadMs?: number;
  /** With several control API addresses: false tries them in the given order (the first
   *  is preferred, e.g. the replica in this node's zone); default true, a random order
   *  per agent, which spreads a fleet over the replicas. */
  shuffleReplicas?: boolean;
}

export interface SyncState {
  connected: boolean;
  /** The version applied and ACKed (or loaded from cache); "" if none. */
  version: string;
  fromCache: boolean;
  /** Last transport or apply error, for status pages. */
  lastError: string;
  /** Last NACK we sent: "version: reason". */
  lastNack: string;
  /** Set when the control API refused this agent for good (INVALID_ARGUMENT/PERMISSION_DENIED). */
  fatal: boolean;
  trustBundle: string[];
}

/** Client key and certificate chain (PEM): the node SVID. */
export interface ClientCertificate { key: string; cert: string }

/** The peer must present the control API's SPIFFE ID (any trust domain: the chain was
 *  already verified against the bundle, which is what pins the mesh). */
export function checkControlIdentity(_host: string, cert: { raw: Buffer }): Error | undefined {
  try {
    const { namespace, serviceAccount } = parseSpiffeId(spiffeIdOfCertificate(new X509Certificate(cert.raw)));
    if (namespace === NODE_NAMESPACE && serviceAccount === CONTROL_SERVICE_ACCOUNT) return undefined;
    return new Error(`server certificate is ${namespace}/${serviceAccount}, not the control API`);
  } catch (e) {
    return new Error(`server certificate is not the control API's: ${describeError(e)}`);
  }
}

/** Channel credentials for the control API; `client` adds the node SVID. */
export function controlCredentials(controlCa: string | undefined, client?: ClientCertificate): grpc.ChannelCredentials {
  if (controlCa === undefined) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(Buffer.from(controlCa), client ? Buffer.from(client.key) : null, client ? Buffer.from(client.cert) : null,
    { checkServerIdentity: checkControlIdentity });
}

/**
 * The gRPC target for --control: one HOST:PORT (a name may resolve to several
 * addresses, e.g. a headless Service of the control API's replicas), or a comma-separated
 * list of IP:PORT, one per replica. Either way the channel picks one address at random
 * (pick_first over a shuffled list, so a fleet spreads over the replicas) and moves on to
 * the next when it fails.
 */
export function controlTarget(address: string): string {
  if (!address.includes(',')) return address;
  const parts = address.split(',').map((a) => a.trim());
  const families = new Set<number>();
  const hosts = parts.map((a) => {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(a);
    const port = Number(m?.[3]);
    if (!m || !(port >= 1 && port <= 65535) || isIP(m[1] ?? m[2] ?? '') === 0) {
      throw new WeftError('WEFT_ERR_INVALID_ARG', `control address '${a.slice(0, 80)}': a list of replicas takes IP:PORT entries ([IPv6]:PORT), names only alone`);
    }
    families.add(isIP(m[1] ?? m[2] ?? ''));
    return m[1] ? `[${m[1]}]:${port}` : `${m[2]}:${port}`;
  });
  if (families.size !== 1) throw new WeftError('WEFT_ERR_INVALID_ARG', 'control address list: all IPv4 or all IPv6');
  return `${families.has(6) ? 'ipv6' : 'ipv4'}:${hosts.join(',')}`;
}

const SHUFFLED_PICK_FIRST = JSON.stringify({ loadBalancingConfig: [{ pick_first: { shuffleAddressList: true } }] });
const ORDERED_PICK_FIRST = JSON.stringify({ loadBalancingConfig: [{ pick_first: { shuffleAddressList: false } }] });

function sameBundle(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((p, i) => p === b[i]);
}

/** Codes after which retrying the same request cannot help. */
const FATAL_CODES = new Set<number>([status.INVALID_ARGUMENT, status.PERMISSION_DENIED]);

const WEFT_CODE: Partial<Record<number, WeftErrorCode>> = {
  [status.INVALID_ARGUMENT]: 'WEFT_ERR_INVALID_ARG',
  [status.FAILED_PRECONDITION]: 'WEFT_ERR_INVALID_POLICY',
  [status.PERMISSION_DENIED]: 'WEFT_ERR_PERMISSION',
  [status.UNAUTHENTICATED]: 'WEFT_ERR_UNAUTHENTICATED',
  [status.NOT_FOUND]: 'WEFT_ERR_NOT_FOUND',
  [status.RESOURCE_EXHAUSTED]: 'WEFT_ERR_CAPACITY',
  [status.DEADLINE_EXCEEDED]: 'WEFT_ERR_TIMEOUT',
};

/** A gRPC failure as a WeftError; details.grpcCode keeps the original status. */
export function fromGrpcError(e: grpc.ServiceError): WeftError {
  return new WeftError(WEFT_CODE[e.code] ?? 'WEFT_ERR_UNAVAILABLE', `control API: ${status[e.code]}: ${e.details}`, { cause: e, details: { grpcCode: e.code } });
}

export declare interface SyncClient {
  on(event: 'applied', listener: (info: ApplyInfo) => void): this;
  on(event: 'nack', listener: (version: string, reason: string) => void): this;
  on(event: 'state', listener: (state: SyncState) => void): this;
  on(event: 'fatal', listener: (err: WeftError) => void): this;
  on(event: 'cached', listener: (version: string) => void): this;
}

export class SyncClient extends EventEmitter {
  private readonly opts: SyncClientOptions;
  private readonly log: Logger;
  private rpc: ControlClient;
  private clientCert: ClientCertificate | undefined;
  private clientCertExpiresAt = 0;
  private readonly cache: SnapshotCache;
  private readonly backoff: Backoff;
  private readonly st: SyncState = { connected: false, version: '', fromCache: false, lastError: '', lastNack: '', fatal: false, trustBundle: [] };
  private stream: grpc.ClientDuplexStream<SyncRequest, SyncResponse__Output> | undefined;
  /** Pushes not handled yet, in order: each delta builds on the one before. */
  private readonly pending: SyncResponse__Output[] = [];
  private applying: Promise<void> | undefined;
  /** The view resources applied last (from the control API or the cache). */
  private held = new Map<string, HeldResource>();
  private cacheNext: CachedSnapshot | undefined;
  private cacheWriting: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = true;
  /** The current stream received its headers (the replica answered). */
  private streamUp = false;
  /** The next hello lists the held resources instead of giving their digest. */
  private listHeld = false;

  constructor(opts: SyncClientOptions) {
    super();
    this.opts = opts;
    this.log = opts.logger ?? componentLogger('sync', { node: opts.node });
    this.cache = new SnapshotCache(opts.stateDir);
    this.backoff = new Backoff(opts.backoff);
    this.rpc = this.channel();
  }

  private channel(): ControlClient {
    const Control = controlProto().weft.control.v1.Control;
    return new Control(controlTarget(this.opts.address), controlCredentials(this.opts.controlCa, this.clientCert), {
      'grpc.service_config': this.opts.shuffleReplicas === false ? ORDERED_PICK_FIRST : SHUFFLED_PICK_FIRST,
      'grpc.max_receive_message_length': CLIENT_MAX_RECEIVE_BYTES,
      // The channel's own reconnect backoff must not outlast ours (its default max is 120 s).
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': this.backoff.maxMs,
      // Notice a control API that vanished without closing the connection.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    });
  }

  /** Authenticate with this node certificate from now on (null: back to the token). A
   *  new channel carries it; the open Sync stream is replaced, in-flight unary calls
   *  finish on the old channel. Ignored over plaintext, where it could not be verified. */
  useCertificate(cert: ClientCertificate | null): void {
    if (this.opts.controlCa === undefined) return;
    if (cert?.cert === this.clientCert?.cert && cert?.key === this.clientCert?.key) return;
    this.clientCert = cert ?? undefined;
    this.clientCertExpiresAt = cert ? Date.parse(new X509Certificate(cert.cert).validTo) : 0;
    const old = this.rpc;
    this.rpc = this.channel();
    this.log.info({ auth: cert ? 'certificate' : 'token' }, 'control API credentials changed; reconnecting');
    const s = this.stream;
    if (s && !this.stopped) {
      this.stream = undefined;
      this.pending.length = 0;
      clearTimeout(this.retryTimer);
      s.cancel();
      this.connect();
    }
    // Unary calls in flight keep the old channel until they finish.
    setTimeout(() => old.close(), (this.opts.unaryTimeoutMs ?? 10_000) + 1000).unref();
  }

  /** How the next call authenticates. A certificate that expired (renewal failing) no
   *  longer verifies, so the token goes along again until a new one arrives. */
  authMethod(): 'token' | 'certificate' {
    return this.clientCert && Date.now() < this.clientCertExpiresAt ? 'certificate' : 'token';
  }

  state(): SyncState {
    return { ...this.st, trustBundle: [...this.st.trustBundle] };
  }

  /** Serves the cached snapshot (if any) first, then connects. Resolves once the cache
   *  was handled; syncing continues in the background. */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    await this.applyCached();
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const s = this.stream;
    this.stream = undefined;
    if (s) { s.end(); s.cancel(); }
    await this.applying;
    await this.cacheWriting;
    this.rpc.close();
    this.setState({ connected: false });
  }

  private setState(patch: Partial<SyncState>): void {
    Object.assign(this.st, patch);
    this.emit('state', this.state());
  }

  private async applyCached(): Promise<void> {
    let cached;
    let view: NodeView;
    try {
      cached = await this.cache.load();
      if (!cached) return;
      for (const [name, r] of cached.resources) r.value = checkResource(name, r.value, this.opts.node);
      view = assemble(cached.resources, cached.version, this.opts.node);
    } catch (e) {
      this.log.warn({ err: describeError(e) }, 'ignoring unreadable snapshot cache');
      return;
    }
    const info: ApplyInfo = { version: cached.version, trustBundle: cached.trustBundle, fromCache: true };
    try {
      await this.opts.apply(view, info);
    } catch (e) {
      this.log.warn({ version: cached.version, err: describeError(e) }, 'cached snapshot could not be applied; waiting for the control API');
      this.setState({ lastError: `cached snapshot: ${describeError(e)}` });
      return;
    }
    this.held = cached.resources;
    this.log.info({ version: cached.version }, 'serving the cached snapshot until the control API answers');
    this.setState({ version: cached.version, fromCache: true, trustBundle: cached.trustBundle });
    this.emit('applied', info);
  }

  private lastToken: string | undefined;

  private bootstrapToken(): string {
    const t = this.opts.token;
    if (typeof t === 'string') return t;
    try { this.lastToken = t(); } catch (e) {
      if (this.lastToken === undefined) throw e;
      this.log.warn({ err: (e as Error).message }, 'cannot re-read the bootstrap token; sending the last one read');
    }
    return this.lastToken as string;
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    // With a node certificate the token stays home: the certificate says who we are.
    if (this.authMethod() === 'token') md.set(AUTH_METADATA_KEY, `Bearer ${this.bootstrapToken()}`);
    md.set(NODE_METADATA_KEY, this.opts.node);
    return md;
  }

  private connect(): void {
    if (this.stopped || this.st.fatal) return;
    const stream = this.rpc.Sync(this.metadata());
    this.stream = stream;
    this.streamUp = false;
    stream.on('metadata', () => {
      if (this.stream !== stream) return;
      this.streamUp = true;
      this.backoff.reset();
      this.log.info('connected to the control API');
      this.setState({ connected: true, lastError: '' });
    });
    stream.on('data', (r: SyncResponse__Output) => {
      if (this.stream !== stream) return;
      this.pending.push(r);
      this.drain(stream);
    });
    stream.on('error', () => undefined); // reported through 'status'
    stream.on('status', (s: grpc.StatusObject) => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      this.pending.length = 0;
      this.closed(s);
    });
    // The hello names the resources held once any apply from the previous stream has
    // finished, so the server computes its first delta against what the agent really has.
    void (this.applying ?? Promise.resolve()).then(() => {
      if (this.stream !== stream) return;
      // What it holds goes by digest (a few bytes instead of a name and version per
      // resource), unless the server just asked for the list.
      const held = this.listHeld || this.held.size === 0
        ? { initialResourceVersions: Object.fromEntries([...this.held].map(([name, r]) => [name, r.version])) }
        : { initialResourcesDigest: resourceSetDigest([...this.held].map(([name, r]) => [name, r.version] as const)) };
      this.listHeld = false;
      stream.write({
        node: this.opts.node, versionInfo: this.st.version, responseNonce: '', typeUrl: NODE_RESOURCES_TYPE_URL, ...held,
        ...(this.opts.nodeAddress ? { nodeAddress: this.opts.nodeAddress } : {}),
      });
    });
  }

  private closed(s: grpc.StatusObject): void {
    if (this.stopped) return;
    const why = s.code === status.OK ? 'control API closed the stream' : `${status[s.code]}: ${s.details}`;
    if (FATAL_CODES.has(s.code)) {
      const err = new WeftError(WEFT_CODE[s.code] ?? 'WEFT_ERR_PERMISSION', `control API refused this agent: ${why}`, { details: { grpcCode: s.code } });
      this.log.error({ err: why }, 'sync refused for good; serving the last applied snapshot');
      this.setState({ connected: false, lastError: why, fatal: true });
      this.emit('fatal', err);
      return;
    }
    if (s.code === status.ABORTED && s.details === RESEND_INITIAL_VERSIONS) {
      // The server's view is not what this agent holds (another version, or a replica
      // that is behind): say hello again at once, listing every resource.
      this.listHeld = true;
      this.log.info('control API asked for the list of held resources; reconnecting with it');
      this.retryTimer = setTimeout(() => this.connect(), 0);
      return;
    }
    // A stream that was up ended: its replica went away, and so did every other agent's
    // stream on it. Spread the first reconnect; later ones back off exponentially.
    const spread = this.opts.reconnectSpreadMs ?? 2000;
    const delay = this.streamUp && spread > 0 ? Math.random() * spread : this.backoff.next();
    this.streamUp = false;
    this.log.warn({ err: why, retryInMs: Math.round(delay) }, 'sync stream ended; reconnecting');
    this.setState({ connected: false, lastError: why });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Applies pushes one at a time, in order (the server keeps one delta in flight, so
   *  normally there is at most one waiting). */
  private drain(stream: grpc.ClientDuplexStream<SyncRequest, SyncResponse__Output>): void {
    if (this.applying) return;
    this.applying = (async () => {
      let r: SyncResponse__Output | undefined;
      while (this.stream === stream && (r = this.pending.shift())) await this.handle(r, stream);
    })().finally(() => { this.applying = undefined; });
  }

  private async handle(r: SyncResponse__Output, stream: grpc.ClientDuplexStream<SyncRequest, SyncResponse__Output>): Promise<void> {
    const reply = (req: SyncRequest) => { if (this.stream === stream) stream.write({ node: this.opts.node, typeUrl: NODE_RESOURCES_TYPE_URL, ...req }); };
    const nack = (code: number, message: string) => {
      this.log.warn({ version: r.versionInfo, keeps: this.st.version, err: message }, 'rejecting snapshot (NACK)');
      this.setState({ lastError: message, lastNack: `${r.versionInfo}: ${message}` });
      this.emit('nack', r.versionInfo, message);
      reply({ versionInfo: this.st.version, responseNonce: r.nonce, errorDetail: { code, message } });
    };
    if (r.typeUrl !== NODE_RESOURCES_TYPE_URL) return nack(status.INVALID_ARGUMENT, `unexpected type_url '${r.typeUrl}'`);
    // Nothing new: ACK. A new trust bundle alone (a CA root rotation) is applied like any
    // other change, so the node learns the roots it must trust.
    if (r.versionInfo === this.st.version && r.resources.length === 0 && r.removedResources.length === 0 && sameBundle(r.trustBundle, this.st.trustBundle)) {
      reply({ versionInfo: r.versionInfo, responseNonce: r.nonce });
      if (this.st.fromCache) this.setState({ fromCache: false });
      return;
    }
    let merged: ReturnType<typeof mergeDelta>;
    try {
      merged = mergeDelta(this.held, r.versionInfo, this.opts.node, r.resources, r.removedResources);
    } catch (e) {
      return nack(status.INVALID_ARGUMENT, describeError(e));
    }
    const info: ApplyInfo = { version: r.versionInfo, trustBundle: r.trustBundle, fromCache: false };
    try {
      await this.opts.apply(merged.view, info);
    } catch (e) {
      return nack(status.INTERNAL, describeError(e));
    }
    this.held = merged.resources;
    this.setState({ version: r.versionInfo, fromCache: false, lastError: '', trustBundle: r.trustBundle });
    reply({ versionInfo: r.versionInfo, responseNonce: r.nonce });
    this.emit('applied', info);
    this.saveCache({ version: r.versionInfo, typeUrl: r.typeUrl, trustBundle: r.trustBundle, savedAt: Date.now(), resources: merged.resources });
  }

  /** Writes the cache off the apply path, one write at a time; when versions arrive
   *  faster than the disk takes them, intermediate ones are skipped (only the newest
   *  good view matters after a restart). */
  private saveCache(entry: CachedSnapshot): void {
    this.cacheNext = entry;
    if (this.cacheWriting) return;
    this.cacheWriting = (async () => {
      while (this.cacheNext) {
        const next = this.cacheNext;
        this.cacheNext = undefined;
        try {
          await this.cache.save(next);
          this.emit('cached', next.version);
        } catch (err) {
          this.log.warn({ err: describeError(err) }, 'cannot write the snapshot cache');
        }
      }
    })().finally(() => { this.cacheWriting = undefined; });
  }

  // ------------------------------------------------------------------ unary calls

  private unary<Req, Res>(
    method: (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall,
    req: Req, retry: boolean,
  ): Promise<Res> {
    const timeout = this.opts.unaryTimeoutMs ?? 10_000;
    const until = Date.now() + timeout;
    const backoff = new Backoff(this.opts.backoff);
    const attempt = (): Promise<Res> => new Promise<Res>((resolve, reject) => {
      method.call(this.rpc, req, this.metadata(), { deadline: until }, (err, res) => (err ? reject(err) : resolve(res as Res)));
    }).catch(async (e: grpc.ServiceError) => {
      const retryable = retry && !FATAL_CODES.has(e.code) && e.code !== status.NOT_FOUND && e.code !== status.FAILED_PRECONDITION && e.code !== status.DEADLINE_EXCEEDED;
      const delay = backoff.next();
      if (!retryable || Date.now() + delay >= until) throw fromGrpcError(e);
      await new Promise((r) => setTimeout(r, delay));
      return attempt();
    });
    return attempt();
  }

  /** Registers a workload of this node; resolves with the snapshot version that has it. */
  async registerWorkload(w: Omit<RegisterWorkloadRequest, 'node'>): Promise<string> {
    const res = await this.unary<RegisterWorkloadRequest, RegisterWorkloadResponse__Output>(this.rpc.RegisterWorkload, { ...w, node: this.opts.node }, true);
    return res.versionInfo;
  }

  async deregisterWorkload(w: Omit<DeregisterWorkloadRequest, 'node'>): Promise<string> {
    const res = await this.unary<DeregisterWorkloadRequest, DeregisterWorkloadResponse__Output>(this.rpc.DeregisterWorkload, { ...w, node: this.opts.node }, true);
    return res.versionInfo;
  }

  /** CSR in, chain + trust bundle out; the private key never leaves the node. */
  signCertificate(csrPem: string, ttlSeconds = 0): Promise<SignCertificateResponse__Output> {
    return this.unary(this.rpc.SignCertificate, { csrPem, ttlSeconds }, true);
  }

  /** The control API's explanation of a flow (agent/explain), as JSON. */
  async explain(req: ExplainRequest): Promise<unknown> {
    const res = await this.unary<ExplainRequest, ExplainResponse__Output>(this.rpc.Explain, req, false);
    return JSON.parse(Buffer.from(res.explanation).toString('utf8'));
  }

  status(node = ''): Promise<StatusResponse__Output> {
    return this.unary(this.rpc.Status, { node }, false);
  }
}
