// Simulated node agents for bench:control's 1000-agent row: many per process, each with
// its own gRPC channel (its own TLS connection: no shared subchannel) and a real delta
// Sync stream, speaking the protocol exactly as agent/sync/client.ts does — hello with
// the resource versions held, apply each push to the held set, ACK with the nonce — but
// holding only names and versions (and their digest) (a real agent would program its node from the bodies;
// a thousand full views would not fit one machine's memory). Reconnects like the real
// client: a stream that was up ends → a random delay in [0, spread], then exponential
// backoff with jitter. Events go to the parent over IPC, batched:
//   {t:'ack', node, version, at, resync}  resync: first ACK on a new stream
//   {t:'down', node, at}                  the stream ended
//   {t:'dial', node, at}                  a Sync call is started (hello written)
//   {t:'up', node, at}                    the server answered the hello with headers
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { controlProto, NODE_RESOURCES_TYPE_URL, AUTH_METADATA_KEY, NODE_METADATA_KEY, CLIENT_MAX_RECEIVE_BYTES, RESEND_INITIAL_VERSIONS } from '../../agent/control/proto';
import { digestString, resourceDigestTerm } from '../../agent/policy/view-resources';
import { controlCredentials, controlTarget } from '../../agent/sync/client';
import type { SyncRequest } from '../../agent/control/generated/weft/control/v1/SyncRequest';
import type { SyncResponse__Output } from '../../agent/control/generated/weft/control/v1/SyncResponse';
import type { ControlClient } from '../../agent/control/generated/weft/control/v1/Control';
import { Backoff } from '../../agent/sync/backoff';
import { nodeToken } from '../lib/bootstrap-tokens';

interface Config { address: string; /** Each node's token is nodeToken(node, tokenSeed). */ tokenSeed: string; controlCa: string; nodes: string[]; shuffle: boolean; spreadMs: number; warm?: { version: string; file: string } }
const cfg = JSON.parse(process.argv[2] as string) as Config;

let outbox: object[] = [];
const flush = () => { if (outbox.length) { process.send?.(outbox); outbox = []; } };
setInterval(flush, 20).unref();
const emit = (e: object) => { outbox.push(e); if (outbox.length >= 500) flush(); };

const Control = controlProto().weft.control.v1.Control;
const serviceConfig = JSON.stringify({ loadBalancingConfig: [{ pick_first: { shuffleAddressList: cfg.shuffle } }] });

class SimAgent {
  private readonly rpc: ControlClient;
  private held = new Map<string, string>();
  /** Sum of the digest terms of `held` (resourceSetDigest). */
  private sum = 0n;
  private listHeld = false;
  private version = '';
  private stream: grpc.ClientDuplexStream<SyncRequest, SyncResponse__Output> | undefined;
  private up = false;
  private acksOnStream = 0;
  private readonly backoff = new Backoff({ baseMs: 100, maxMs: 5000 });
  bytes = 0;

  constructor(readonly node: string, version: string, held: Record<string, string>) {
    this.version = version;
    this.held = new Map(Object.entries(held));
    for (const [name, v] of this.held) this.sum += resourceDigestTerm(name, v);
    this.rpc = new Control(controlTarget(cfg.address), controlCredentials(cfg.controlCa), {
      'grpc.max_receive_message_length': CLIENT_MAX_RECEIVE_BYTES,
      'grpc.service_config': serviceConfig,
      'grpc.use_local_subchannel_pool': 1,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 5000,
    }) as unknown as ControlClient;
  }

  connect(): void {
    const md = new grpc.Metadata();
    md.set(AUTH_METADATA_KEY, `Bearer ${nodeToken(this.node, cfg.tokenSeed)}`);
    md.set(NODE_METADATA_KEY, this.node);
    const s = this.rpc.Sync(md);
    this.stream = s;
    this.up = false;
    this.acksOnStream = 0;
    emit({ t: 'dial', node: this.node, at: Date.now() });
    s.on('metadata', () => { this.up = true; this.backoff.reset(); emit({ t: 'up', node: this.node, at: Date.now() }); });
    s.on('data', (r: SyncResponse__Output) => {
      for (const name of r.removedResources) { this.untrack(name); this.held.delete(name); }
      for (const res of r.resources) { this.untrack(res.name); this.held.set(res.name, res.version); this.sum += resourceDigestTerm(res.name, res.version); this.bytes += res.body.length; }
      this.version = r.versionInfo;
      s.write({ node: this.node, typeUrl: NODE_RESOURCES_TYPE_URL, versionInfo: r.versionInfo, responseNonce: r.nonce });
      emit({ t: 'ack', node: this.node, version: r.versionInfo, at: Date.now(), resync: this.acksOnStream++ === 0, resources: r.resources.length });
    });
    s.on('error', () => undefined);
    s.on('status', (st: grpc.StatusObject) => {
      if (this.stream !== s) return;
      this.stream = undefined;
      emit({ t: 'down', node: this.node, at: Date.now() });
      // As agent/sync/client.ts: asked for the list, the agent says hello again at once.
      if (st.code === grpc.status.ABORTED && st.details === RESEND_INITIAL_VERSIONS) { this.listHeld = true; setTimeout(() => this.connect(), 0); return; }
      const delay = this.up ? Math.random() * cfg.spreadMs : this.backoff.next();
      setTimeout(() => this.connect(), delay);
    });
    // As the real client: the held resources by digest (kept up to date per push), or
    // listed when the server asked for them.
    const held = this.listHeld || this.held.size === 0 ? { initialResourceVersions: Object.fromEntries(this.held) } : { initialResourcesDigest: digestString(this.sum) };
    this.listHeld = false;
    s.write({ node: this.node, versionInfo: this.version, responseNonce: '', typeUrl: NODE_RESOURCES_TYPE_URL, ...held });
  }

  /** Removes a held resource's term from the digest sum. */
  private untrack(name: string): void {
    const v = this.held.get(name);
    if (v !== undefined) this.sum -= resourceDigestTerm(name, v);
  }
}

/** Warm start: the versions of the current snapshot, as from an on-disk cache. */
const warm = cfg.warm ? JSON.parse(readFileSync(cfg.warm.file, 'utf8')) as Record<string, Record<string, string>> : {};
const agents = cfg.nodes.map((n) => new SimAgent(n, cfg.warm?.version ?? '', warm[n] ?? {}));
// Staggered start: a fleet's agents do not all start in the same millisecond either.
agents.forEach((a, i) => setTimeout(() => a.connect(), i * 5));
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
