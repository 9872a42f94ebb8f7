// The Sync RPC: one bidirectional stream per agent, xDS semantics (see control.proto),
// state of the world or delta by the hello's type_url. Each stream remembers the nonce of
// its latest push; requests that answer an older push are stale and ignored, so a slow
// agent ACKing V1 after V2 went out cannot mark V2 as applied. A NACK records the reason
// and leaves the agent's acked version where it was; the server does not resend the
// rejected version, it waits for the next change (as Envoy's management servers do).
// In delta mode the stream also keeps the resource versions the agent ACKed and has at
// most one push in flight, so each delta is computed against a state the agent holds.
import { randomBytes } from 'node:crypto';
import { Metadata, status, type ServerDuplexStream, type ServiceError } from '@grpc/grpc-js';
import type { Logger } from '../telemetry/logger';
import type { SyncRequest__Output } from './generated/weft/control/v1/SyncRequest';
import type { SyncResponse } from './generated/weft/control/v1/SyncResponse';
import type { AgentRegistry, AgentRecord } from './agents';
import { isValidNodeName, requireSelf, type TokenAuthenticator, type Caller, type PeerCredentials } from './auth';
import type { ControlMetrics } from './metrics';
import { NODE_RESOURCES_TYPE_URL, NODE_VIEW_TYPE_URL, RESEND_INITIAL_VERSIONS, PreEncodedSyncResponse, encodeSyncResponse } from './proto';
import { rpcError, toRpcError } from './rpc-error';
import { usableNodeAddress } from './registrations';
import type { SnapshotStore } from './snapshot-store';
import type { EncodedResource, NodeResources } from '../policy/view-cache';

type SyncCall = ServerDuplexStream<SyncRequest__Output, SyncResponse>;

const MAX_VERSION_LEN = 256;
const MAX_NONCE_LEN = 64;
const MAX_ERROR_MESSAGE_LEN = 16 * 1024;
/** initial_resource_versions: a view has one resource per service plus one. */
const MAX_INITIAL_RESOURCES = 100_000;
const MAX_RESOURCE_NAME_LEN = 600;
const MAX_DIGEST_LEN = 64;

/** Pushes written but not yet drained to their sockets: a delta push is kilobytes, so
 *  this bounds bookkeeping more than memory (MAX_BYTES_IN_FLIGHT bounds the bytes). */
const MAX_WRITES_IN_FLIGHT = 64;
/** The fan-out works for at most this long before it yields to the event loop (ACKs,
 *  hellos, Status): yielding after every node made a thousand-node fan-out a thousand
 *  event-loop turns, seconds on a loaded machine. */
const FAN_OUT_SLICE_MS = 5;
/** Whole views (first syncs, state-of-the-world agents) are megabytes each: the bytes
 *  waiting in HTTP/2 buffers are bounded too, which is what bounds the memory of fifty
 *  agents connecting at once. */
const MAX_BYTES_IN_FLIGHT = 12 * 1024 * 1024;
const SLOW_WRITE_MS = 2000;
/** Deltas of at most this many resources are encoded once per version and shared by
 *  every stream that is sent the same one (a change's fan-out: most nodes get the same
 *  few resources); bigger ones (resyncs) are nearly always one stream's own. */
const SHARED_DELTA_MAX_RESOURCES = 64;
/** Bytes of encoded deltas kept for one version. */
const SHARED_DELTA_MAX_BYTES = 16 * 1024 * 1024;
/** A push unanswered for this long while a newer version waits: the agent is too far
 *  behind. Its stream is ended (UNAVAILABLE) rather than queued for; it reconnects and
 *  resyncs from what it holds, and the others never wait for it. */
export const DEFAULT_MAX_ACK_WAIT_MS = 30_000;

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    void p.then(() => { clearTimeout(t); resolve(); });
  });
}

/** Field checks shared by the first and every later request on a stream. */
function checkRequest(req: SyncRequest__Output): void {
  if (req.versionInfo.length > MAX_VERSION_LEN) throw rpcError(status.INVALID_ARGUMENT, `version_info longer than ${MAX_VERSION_LEN}`);
  if (req.initialResourcesDigest.length > MAX_DIGEST_LEN) throw rpcError(status.INVALID_ARGUMENT, `initial_resources_digest longer than ${MAX_DIGEST_LEN}`);
  if (req.initialResourcesDigest && Object.keys(req.initialResourceVersions ?? {}).length) throw rpcError(status.INVALID_ARGUMENT, 'initial_resources_digest and initial_resource_versions are exclusive');
  if (req.responseNonce.length > MAX_NONCE_LEN) throw rpcError(status.INVALID_ARGUMENT, `response_nonce longer than ${MAX_NONCE_LEN}`);
  if (req.typeUrl !== '' && req.typeUrl !== NODE_VIEW_TYPE_URL && req.typeUrl !== NODE_RESOURCES_TYPE_URL) throw rpcError(status.INVALID_ARGUMENT, `unknown type_url '${req.typeUrl.slice(0, 120)}'`);
  // One pass, no per-entry arrays: a thousand reconnecting agents list 5000 each.
  const initial = req.initialResourceVersions ?? {};
  let entries = 0;
  for (const n in initial) {
    if (++entries > MAX_INITIAL_RESOURCES) throw rpcError(status.INVALID_ARGUMENT, `initial_resource_versions has more than ${MAX_INITIAL_RESOURCES} entries`);
    if (n.length > MAX_RESOURCE_NAME_LEN || (initial[n] as string).length > MAX_VERSION_LEN) throw rpcError(status.INVALID_ARGUMENT, 'initial_resource_versions: name or version too long');
  }
  if (req.errorDetail && req.errorDetail.message.length > MAX_ERROR_MESSAGE_LEN) throw rpcError(status.INVALID_ARGUMENT, `error_detail.message longer than ${MAX_ERROR_MESSAGE_LEN}`);
}

/** A push being written: resolves once the message left for the socket. */
interface Push {
  bytes: number;
  done: Promise<void>;
}

/** A delta push waiting for its ACK or NACK: what the agent holds once it ACKs. */
interface InFlightDelta {
  /** The node's view that was sent: what the agent holds once it ACKs. */
  target: NodeResources;
}

/** What a delta agent holds: a view of this replica (kept by reference: no per-agent
 *  copy of five thousand resource versions), except for `dirty` names, which it holds
 *  at another version or not at all, plus `extra` names the view does not have. After
 *  an ACK it is exactly the view that was sent. At hello the versions the agent lists
 *  (from any replica, any history) are compared once with the current view and then
 *  dropped: a thousand agents reconnecting at once would otherwise keep five million
 *  strings alive until each got its first push. */
interface Held { view: NodeResources; dirty?: ReadonlySet<string>; missing?: ReadonlySet<string>; extra?: readonly string[] }

function heldFrom(versions: Record<string, string>, view: NodeResources): Held {
  const { dirty, missing, extra } = view.compare(versions);
  return { view, ...(dirty.size ? { dirty } : {}), ...(missing.size ? { missing } : {}), ...(extra.length ? { extra } : {}) };
}

class SyncStream {
  private readonly id = randomBytes(4).toString('hex');
  private seq = 0;
  private lastNonce = '';
  private sentVersion = '';
  /** The trust bundle sent with the latest push (a root rotation changes it alone). */
  private sentBundle = '';
  /** When the push now waiting for its ACK or NACK went out (0: none waiting). */
  private awaitingSince = 0;
  private agent: AgentRecord | undefined;
  private closed = false;
  /** Delta mode: resource name → version the agent ACKed (or said it had at hello). */
  private delta: { acked: Held | undefined; initial: Record<string, string> | undefined; inFlight: InFlightDelta | undefined } | undefined;

  constructor(
    private readonly call: SyncCall,
    private readonly caller: Caller,
    private readonly svc: SyncService,
  ) {}

  onRequest(req: SyncRequest__Output): void {
    if (this.closed) return;
    try {
      checkRequest(req);
      if (!this.agent) this.hello(req); else this.answer(req);
    } catch (e) {
      this.fail(toRpcError(e));
    }
  }

  private hello(req: SyncRequest__Output): void {
    if (!isValidNodeName(req.node)) throw rpcError(status.INVALID_ARGUMENT, 'node: expected a node name (a DNS subdomain: lower-case letters, digits, \'-\' and \'.\', at most 253 characters)');
    requireSelf(this.caller, req.node, 'node');
    const address = usableNodeAddress(req.nodeAddress ?? '');
    if (req.typeUrl === NODE_RESOURCES_TYPE_URL) {
      const initial = req.initialResourceVersions ?? {};
      const view = this.svc.store.nodeResources(req.node)?.resources;
      if (req.initialResourcesDigest) {
        // The agent names what it holds by digest: resume from this replica's view when
        // it is exactly that, else ask for the list (the agent reconnects with it at once).
        if (!view || view.digest() !== req.initialResourcesDigest) {
          this.svc.metrics.digestMismatches.inc();
          throw rpcError(status.ABORTED, RESEND_INITIAL_VERSIONS);
        }
        this.delta = { acked: { view }, initial: undefined, inFlight: undefined };
      } else {
        // Without a snapshot yet, the listed versions wait for the first one.
        this.delta = view ? { acked: heldFrom(initial, view), initial: undefined, inFlight: undefined } : { acked: undefined, initial, inFlight: undefined };
      }
    }
    this.agent = this.svc.agents.open(req.node, req.versionInfo, this.caller.via);
    this.svc.metrics.connectedAgents.set(this.svc.agents.connected());
    this.svc.log.info({ node: req.node, has: req.versionInfo || undefined, delta: this.delta !== undefined, auth: this.caller.via }, 'agent connected');
    // Headers now, so the agent learns it is connected before the first push.
    this.call.sendMetadata(new Metadata());
    // Through the paced fan-out, not directly: after a control API restart all agents
    // say hello at once, and fifty views built and queued together are the memory peak.
    void this.svc.fanOut();
    // A new or changed address recompiles (and fans out again); the same one is a no-op.
    if (address !== undefined) {
      this.svc.store.nodeReported(req.node, address).catch((e: unknown) => this.svc.log.error({ node: req.node, err: (e as Error).message }, 'cannot record the node address'));
    }
  }

  private answer(req: SyncRequest__Output): void {
    const agent = this.agent as AgentRecord;
    if (req.node !== '' && req.node !== agent.node) throw rpcError(status.INVALID_ARGUMENT, 'node changed mid-stream');
    if (req.typeUrl !== '' && req.typeUrl !== (this.delta ? NODE_RESOURCES_TYPE_URL : NODE_VIEW_TYPE_URL)) throw rpcError(status.INVALID_ARGUMENT, 'type_url changed mid-stream');
    if (req.responseNonce !== this.lastNonce) return; // stale: answers an older push
    this.awaitingSince = 0;
    const inFlight = this.delta?.inFlight;
    if (this.delta) this.delta.inFlight = undefined;
    if (req.errorDetail) {
      const reason = req.errorDetail.message || `code ${req.errorDetail.code}`;
      this.svc.agents.nack(agent, this.sentVersion, reason);
      this.svc.metrics.nacks.inc();
      this.svc.log.warn({ node: agent.node, rejected: this.sentVersion, keeps: req.versionInfo, reason }, 'agent rejected snapshot (NACK)');
      this.pushIfBehind();
      return;
    }
    if (req.versionInfo !== this.sentVersion) throw rpcError(status.INVALID_ARGUMENT, `ACK for version '${req.versionInfo.slice(0, 80)}' but '${this.sentVersion}' was sent with that nonce`);
    if (this.delta && inFlight) this.delta.acked = { view: inFlight.target };
    this.svc.agents.ack(agent, req.versionInfo);
    this.svc.metrics.acks.inc();
    this.svc.emit(agent.node, req.versionInfo);
    this.pushIfBehind();
  }

  /** A delta stream skips fan-out passes while a push is in flight; once it is answered,
   *  a version that landed meanwhile goes out. */
  private pushIfBehind(): void {
    if (this.delta) void this.push();
  }

  /** Send the node's view of the current snapshot unless this stream was sent it. The
   *  first push goes out even when the agent says it has that version (from its cache):
   *  it costs one message and lets the agent confirm it is in sync. */
  push(): Push | undefined {
    if (this.closed || !this.agent) return undefined;
    if (this.svc.store.snapshot()?.version === this.sentVersion && this.svc.trustBundle().join('') === this.sentBundle) return undefined;
    if (this.awaitingSince && performance.now() - this.awaitingSince > this.svc.maxAckWaitMs) {
      this.fail(rpcError(status.UNAVAILABLE, `no answer to the push of ${this.sentVersion} for ${Math.round((performance.now() - this.awaitingSince) / 1000)} s while newer versions wait: reconnect and resync`));
      this.svc.metrics.slowAgentsDropped.inc();
      return undefined;
    }
    return this.delta ? this.pushDelta(this.delta) : this.pushView();
  }

  private pushView(): Push | undefined {
    const view = this.svc.store.nodeView((this.agent as AgentRecord).node);
    if (!view) return undefined;
    this.svc.metrics.pushBytes.inc(view.bytes.length);
    return { bytes: view.bytes.length, done: this.write(view.version, this.svc.trustBundle(), { resource: view.bytes }) };
  }

  /** Only the resources whose version differs from what the agent ACKed, and the names
   *  it holds that the view no longer has. */
  private pushDelta(delta: NonNullable<SyncStream['delta']>): Push | undefined {
    if (delta.inFlight) return undefined;
    const current = this.svc.store.nodeResources((this.agent as AgentRecord).node);
    if (!current) return undefined;
    const held = delta.acked ?? heldFrom(delta.initial ?? {}, current.resources);
    delta.initial = undefined;
    const d = current.resources.deltaFrom(held.view);
    let changed = d.changed;
    let removed = d.removed;
    if (held.dirty || held.missing || held.extra) {
      const names = new Set(changed.map(([name]) => name));
      changed = [...changed];
      for (const name of [...(held.dirty ?? []), ...(held.missing ?? [])]) {
        const r = current.resources.get(name);
        if (r && !names.has(name)) changed.push([name, r]);
      }
      // Never a removal of something the agent does not hold: it would NACK it.
      removed = [...new Set([...removed.filter((name) => !held.missing?.has(name)), ...(held.extra ?? []).filter((name) => !current.resources.has(name))])];
    }
    delta.inFlight = { target: current.resources };
    const trustBundle = this.svc.trustBundle();
    const encoded = this.svc.encodedDelta(current.version, trustBundle, changed, removed);
    this.svc.metrics.deltaResources.inc(changed.length);
    this.svc.metrics.pushBytes.inc(encoded.bytes);
    return { bytes: encoded.bytes, done: this.write(current.version, trustBundle, encoded.shared) };
  }

  /** `body`: the fields besides version, nonce, type and trust bundle, or (delta) the
   *  whole message but its nonce, encoded (SyncService.encodedDelta). */
  private write(version: string, trustBundle: string[], body: Partial<SyncResponse> | Buffer): Promise<void> {
    this.lastNonce = `${this.id}-${++this.seq}`;
    this.sentVersion = version;
    this.awaitingSince = performance.now();
    this.sentBundle = trustBundle.join('');
    this.svc.agents.sent(this.agent as AgentRecord, version);
    this.svc.metrics.pushes.inc();
    const typeUrl = this.delta ? NODE_RESOURCES_TYPE_URL : NODE_VIEW_TYPE_URL;
    const message = Buffer.isBuffer(body)
      ? new PreEncodedSyncResponse(body, this.lastNonce) as unknown as SyncResponse
      : { versionInfo: version, nonce: this.lastNonce, typeUrl, trustBundle, ...body };
    return new Promise((resolve) => {
      this.call.write(message, () => resolve());
    });
  }

  fail(err: ServiceError): void {
    if (this.closed) return;
    this.svc.log.warn({ node: this.caller.node, code: status[err.code], err: err.details }, 'sync stream refused');
    this.cleanup();
    this.call.emit('error', err);
  }

  /** Server shutdown: end the stream with OK so agents reconnect without alarm. */
  end(): void {
    if (this.closed) return;
    this.cleanup();
    this.call.end();
  }

  cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    this.svc.streams.delete(this);
    if (this.agent) {
      this.svc.agents.close(this.agent);
      if (this.agent.streams === 0) this.svc.store.releaseNode(this.agent.node);
      this.svc.metrics.connectedAgents.set(this.svc.agents.connected());
      this.svc.log.info({ node: this.agent.node }, 'agent disconnected');
    }
  }
}

export class SyncService {
  readonly streams = new Set<SyncStream>();
  private fanning = false;
  private fanAgain = false;
  /** Encoded deltas of the current version and trust bundle (`key`), by content. */
  private deltas: { key: string; byContent: Map<string, { shared: Buffer; bytes: number }>; bytes: number } = { key: '', byContent: new Map(), bytes: 0 };
  /** ACK observers (tests, benchmarks): node → callbacks(version). */
  private readonly ackListeners = new Set<(node: string, version: string) => void>();

  constructor(
    readonly store: SnapshotStore,
    readonly agents: AgentRegistry,
    private readonly auth: TokenAuthenticator,
    readonly metrics: ControlMetrics,
    readonly log: Logger,
    readonly trustBundle: () => string[],
    readonly maxAckWaitMs = DEFAULT_MAX_ACK_WAIT_MS,
  ) {
    store.on('update', () => { void this.fanOut(); });
  }

  /**
   * Pushes a new version to every stream, one node view at a time, yielding to the event
   * loop every FAN_OUT_SLICE_MS: building a large view takes tens of milliseconds, and
   * ACKs, new connections and Status calls must not wait for all the nodes. At most
   * MAX_WRITES_IN_FLIGHT pushes and MAX_BYTES_IN_FLIGHT bytes wait in HTTP/2 buffers for
   * slow agents, which bounds the memory a fan-out takes (50 unsent 3 MB views would be
   * 150 MB); a write that does not
   * drain within SLOW_WRITE_MS stops counting, so one stuck agent cannot stall the rest.
   * A version that lands mid-pass starts another pass.
   */
  async fanOut(): Promise<void> {
    if (this.fanning) { this.fanAgain = true; return; }
    this.fanning = true;
    const started = performance.now();
    try {
      do {
        this.fanAgain = false;
        const inFlight = new Set<Promise<void>>();
        let bytesInFlight = 0;
        let slice = performance.now();
        for (const s of [...this.streams]) {
          const sent = s.push();
          if (sent) {
            bytesInFlight += sent.bytes;
            const tracked: Promise<void> = withTimeout(sent.done, SLOW_WRITE_MS).then(() => { inFlight.delete(tracked); bytesInFlight -= sent.bytes; });
            inFlight.add(tracked);
          }
          if (inFlight.size >= MAX_WRITES_IN_FLIGHT || bytesInFlight >= MAX_BYTES_IN_FLIGHT) await Promise.race(inFlight);
          else if (performance.now() - slice >= FAN_OUT_SLICE_MS) await new Promise((r) => setImmediate(r));
          else continue;
          slice = performance.now();
        }
      } while (this.fanAgain);
      this.log.info({ version: this.store.snapshot()?.version, streams: this.streams.size, ms: Math.round(performance.now() - started) }, 'new version sent to every agent');
    } finally {
      this.fanning = false;
    }
  }

  /** A delta push of `version` with these resources and removals, encoded but for its
   *  nonce (PreEncodedSyncResponse), and its resource bytes. The same delta for another
   *  stream is the same bytes: encoded (and its bodies built) once per version. */
  encodedDelta(version: string, trustBundle: string[], changed: readonly [string, EncodedResource][], removed: readonly string[]): { shared: Buffer; bytes: number } {
    const encode = () => {
      const resources = changed.map(([name, r]) => ({ name, version: r.version, body: r.body() }));
      return {
        shared: encodeSyncResponse({ versionInfo: version, typeUrl: NODE_RESOURCES_TYPE_URL, trustBundle, resources, removedResources: [...removed] }),
        bytes: resources.reduce((n, r) => n + r.body.length, 0),
      };
    };
    if (changed.length + removed.length > SHARED_DELTA_MAX_RESOURCES) return encode();
    const generation = `${version}\n${trustBundle.join('')}`;
    if (this.deltas.key !== generation) this.deltas = { key: generation, byContent: new Map(), bytes: 0 };
    let key = '';
    for (const [name, r] of changed) key += `${name}\0${r.version}\n`;
    key += '\n';
    for (const name of removed) key += `${name}\n`;
    let e = this.deltas.byContent.get(key);
    if (!e) {
      e = encode();
      if (this.deltas.bytes + e.shared.length <= SHARED_DELTA_MAX_BYTES) {
        this.deltas.byContent.set(key, e);
        this.deltas.bytes += e.shared.length;
      }
    }
    return e;
  }

  onAck(fn: (node: string, version: string) => void): () => void {
    this.ackListeners.add(fn);
    return () => this.ackListeners.delete(fn);
  }

  emit(node: string, version: string): void {
    for (const fn of this.ackListeners) fn(node, version);
  }

  handle(call: SyncCall, peer: PeerCredentials = {}): void {
    // Requests wait in the call's buffer until the listeners below are attached.
    this.auth.authenticate(call.metadata, peer).then((caller) => {
      if (call.cancelled) return;
      this.serve(call, caller);
    }, (e: unknown) => call.emit('error', toRpcError(e)));
  }

  private serve(call: SyncCall, caller: Caller): void {
    const stream = new SyncStream(call, caller, this);
    this.streams.add(stream);
    call.on('data', (req: SyncRequest__Output) => stream.onRequest(req));
    call.on('end', () => stream.end());
    call.on('cancelled', () => stream.cleanup());
    call.on('error', () => stream.cleanup());
    call.on('close', () => stream.cleanup());
  }

  closeAll(): void {
    for (const s of [...this.streams]) s.end();
  }
}
