// The datapath API the rest of the agent uses: load and attach (or adopt) the node's
// BPF programs, program services into the maps as a minimal diff, look up where a
// redirected connection was going, read counters, manage workload cgroups, and remove
// everything (`weft agent --cleanup`). State lives in bpffs pins, so a restarted agent
// adopts it: maps keep their contents and links are swapped to the new programs in
// place (BPF_LINK_UPDATE), never detached, so live traffic sees no gap.
import { existsSync, mkdirSync, realpathSync, renameSync, rmdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { isAbsolute, join, relative, sep } from 'node:path';
import * as native from 'weft-native';

import { WeftError, describeError } from '../lib/errors';
import { bpfObjectPath } from '../lib/paths';
import { componentLogger, type Logger } from '../telemetry/logger';
import {
  accelCodec, addrCodec, backendCodec, countersCodec, endpointCodec, nodeCfgCodec, originCodec, revKeyCodec, svcCodec, svcKeyCodec,
  skipCodec, skipKeyCodec, skipStateCodec, u32Codec, directKeyCodec, directCodec, dnsCfgCodec, DIRECT_F_MESH, ACCEL_EAGER, SKIP_F_SKIP, ACCEL_PINNED, COUNTER_FIELDS, LOCAL_F_WORKLOAD, FAIL_MODES, MTLS_MODES, SVC_F_MAGLEV, SVC_F_REDIRECT, type AccelEntry, type Counters, type FailMode, type MtlsMode, type NodeCfg, type SvcEntry, type SvcKey,
} from './codec';
import { parseIp } from './ip';
import { cgroup2Root, ensureBpffs, nodeLayout, workloadCgroupPath, type NodeLayout } from './layout';
import {
  MAX_BACKENDS_PER_SERVICE, MAX_SLOTS_PER_SERVICE, sameBackends, serviceName, slotCount, slotTable, validateServices,
  type DatapathService,
} from './services';
import { cleanupNode, inspectNode, type CleanupReport, type NodeInspection } from './teardown';
import { CGROUP_PROGRAMS, MAPS, OBJECTS, SK_MSG_PROGRAM, type CgroupProgram } from './programs';

export interface RedirectTarget {
  /** The agent's outbound listener as seen from workloads (default 127.0.0.1). */
  ipv4: string;
  port: number;
  /** For IPv6 sockets; defaults to the v4-mapped form of ipv4. */
  ipv6?: string;
}

export interface DatapathOptions {
  node: string;
  redirect?: RedirectTarget;
  /** A plain connection to a server endpoint must carry this many bytes before later
   *  connections to it are put in the SOCKHASH (see bpf/sockops.bpf.c). */
  accelMinBytes?: number;
  /** Endpoints whose writes average this many bytes or more are bulk streams and stay
   *  on plain TCP (see bpf/sockops.bpf.c); agent-pinned endpoints are inserted anyway. */
  accelBulkMsgBytes?: number;
  /**
   * A cgroup v2 directory (absolute) to capture instead of weft's own tree, e.g.
   * kubelet's `<cg2>/kubepods.slice` (findKubepodsRoot()): every cgroup program
   * (sockops, the sock_addr hooks, the STRICT ingress hook) attaches there, and nothing
   * creates or joins cgroups under <cg2>/weft/<node> (createWorkloadCgroup and
   * joinAgentCgroup refuse). Pins stay under /sys/fs/bpf/weft/<node>; links pinned for
   * another cgroup are replaced. The agent's own pod must be in the skip map.
   */
  captureRoot?: string;
  /** Cgroup ids put into the skip map (setSkippedCgroups) before any program is
   *  attached, so e.g. the agent's own pod is never captured, not even at first start. */
  skippedCgroups?: bigint[];
  logger?: Logger;
}

export interface ApplySummary { added: string[]; updated: string[]; removed: string[]; unchanged: string[] }
export interface Origin { dstIp: string; dstPort: number; cgroupId: bigint }
export interface AttachResult {
  program: string; linkId: number; progId: number; adopted: boolean; previousProgId?: number;
  /** The cgroup directory the link is attached to. */
  cgroup: string;
  /** A pinned link of this program was attached to another cgroup (the capture root
   *  changed): a new link replaced it, this was the old one's id. */
  replacedLinkId?: number;
}

export const DEFAULT_REDIRECT: RedirectTarget = { ipv4: '127.0.0.1', port: 15001 };
/**
 * Mean bytes per connection above which a server endpoint's connections go into the
 * SOCKHASH (bpf/sockops.bpf.c explains the mechanism). Figures from npm run bench:l4
 * on this 2-vCPU VM (same run, medians of 3, machine shared with other builds, so
 * only the direction is trustworthy): inserting every socket of a connection-per-
 * request load (wrk → nginx, `Connection: close`, ~250 B per connection) ran at
 * 0.47x-0.93x of plain loopback across runs (0.84x in perf-baselines.md), i.e. an
 * insertion pair costs tens of µs; once inserted, a 64 B ping-pong round trip ran
 * 1.66x-1.70x and nginx keep-alive 1.22x-1.94x, i.e. a few µs saved per message. At
 * 1-4 KiB per message, 64 KiB is 16-64 messages: a few µs each pays the insertion back
 * with margin, while request-per-connection traffic (hundreds of bytes) stays two
 * orders of magnitude below it and is never inserted.
 */
export const DEFAULT_ACCEL_MIN_BYTES = 65536;
/**
 * Mean write size (bytes per TCP data segment, or per sk_msg message once inserted) at
 * or above which an endpoint counts as a bulk stream and is not inserted (mechanism and
 * reasons in bpf/sockops.bpf.c). Measured on this 2-vCPU VM, kernel 6.18, iperf3 single
 * stream, same run, alternating, 7 rounds x 3 s (machine lightly loaded): plain loopback
 * median 42.0 Gbit/s (35.4-45.4), sockmap-redirected 32.1 (20.9-47.3) = 0.77x, sockets
 * left in the SOCKHASH but passed to TCP 31.8 (20.4-42.2) = 0.76x; CPU per Gbit/s
 * (iperf3's sender+receiver %) 2.4 plain vs 3.3 redirected. bench:l4 (5 rounds x 3 s):
 * redirected bulk 0.77x (CPU/Gbit 1.51x) in one run and 1.06x (0.89x) in a quieter
 * one; with the machine busy, earlier runs gave 0.38-0.62x, the receiver's psock holding
 * 460-690 MB. So redirecting bulk wins a few percent at best and collapses under load;
 * not inserting it runs at plain speed (1.00-1.01x in the same runs). The sk_msg program itself is not the cost: 508 ns per run at ~111 KiB
 * per message (bpf_stats), 0.5 % of a CPU at 9 Gbit/s. Chatty traffic writes tens to
 * hundreds of bytes (64 B ping-pong 1.77x, nginx keep-alive 1.45x once inserted) and
 * loopback bulk writes 64 KiB segments, so 16 KiB sits far from both.
 */
export const DEFAULT_ACCEL_BULK_MSG_BYTES = 16384;

interface CurrentService { key: SvcKey; entry: SvcEntry; service: DatapathService }

const bpfError = (what: string, cause: unknown) =>
  new WeftError('WEFT_ERR_BPF', `${what}: ${describeError(cause)}`, { cause });

function be16(port: number): Buffer { const b = Buffer.alloc(2); b.writeUInt16BE(port); return b; }

function checkRedirect(r: RedirectTarget): Required<RedirectTarget> {
  const ipv6 = r.ipv6 ?? `::ffff:${r.ipv4}`;
  if (!isIPv4(r.ipv4)) throw new WeftError('WEFT_ERR_INVALID_ARG', `redirect.ipv4 ${JSON.stringify(r.ipv4)} is not an IPv4 address`);
  if (!isIPv6(ipv6)) throw new WeftError('WEFT_ERR_INVALID_ARG', `redirect.ipv6 ${JSON.stringify(ipv6)} is not an IPv6 address`);
  if (!Number.isInteger(r.port) || r.port < 1 || r.port > 65535) {
    throw new WeftError('WEFT_ERR_INVALID_ARG', `redirect.port ${JSON.stringify(r.port)} is not a port`);
  }
  return { ipv4: r.ipv4, ipv6, port: r.port };
}

/** The depth of a cgroup directory below the cgroup v2 hierarchy's root (the root is
 *  level 0): what the kernel's ancestor helpers count in. The mount need not be the whole
 *  hierarchy: a node that sees only its own subtree at /sys/fs/cgroup (a kind node, or a
 *  hostPath of one) has that subtree's path as the mount's root in mountinfo, and its
 *  depth counts too. */
export function cgroupLevel(path: string, root: string = cgroup2Root()): number {
  const rel = relative(root, path);
  if (rel.startsWith('..') || isAbsolute(rel)) {
    throw new WeftError('WEFT_ERR_INVALID_ARG', `${path} is not below the cgroup v2 root ${root}`);
  }
  return cgroup2MountDepth(root) + (rel === '' ? 0 : rel.split(sep).length);
}

/** How deep in the hierarchy the cgroup2 mount at `mountPoint` starts: 0 for a mount
 *  of the whole tree. mountinfo prints the mount's root relative to this process's
 *  cgroup namespace ('..' climbs above it); with the host's PID namespace (the DaemonSet
 *  has hostPID), /proc/1/cgroup — the host's init, at the top — tells how deep that
 *  namespace's root is (one '..' per level). Without hostPID /proc/1 shares our
 *  namespace and the namespace is taken for the root. */
export function cgroup2MountDepth(mountPoint: string): number {
  let info: string;
  try { info = readFileSync('/proc/self/mountinfo', 'utf8'); } catch { return 0; }
  let mroot: string | undefined;
  for (const line of info.split('\n')) {
    const f = line.split(' ');
    const sepAt = f.indexOf('-');
    if (sepAt < 0 || f[sepAt + 1] !== 'cgroup2' || f[4]?.replace(/\\040/g, ' ') !== mountPoint) continue;
    mroot = f[3] ?? '/';
  }
  if (mroot === undefined) return 0;
  let depth = 0;
  try {
    const init = /^0::(.*)$/m.exec(readFileSync('/proc/1/cgroup', 'utf8'))?.[1] ?? '/';
    for (const seg of init.split('/')) { if (seg === '..') depth++; else if (seg) break; }
  } catch { /* no /proc/1: the namespace is the root */ }
  for (const seg of mroot.split('/').filter(Boolean)) depth += seg === '..' ? -1 : 1;
  return Math.max(0, depth);
}

function checkCaptureRoot(path: string): string {
  if (typeof path !== 'string' || !isAbsolute(path)) {
    throw new WeftError('WEFT_ERR_INVALID_ARG', `captureRoot ${JSON.stringify(path)} is not an absolute path`);
  }
  let real: string;
  try {
    real = realpathSync(path);
    if (!statSync(real).isDirectory()) throw new Error('not a directory');
    native.cgroupId(real);
  } catch (e) {
    throw new WeftError('WEFT_ERR_INVALID_ARG', `captureRoot ${path} is not a cgroup v2 directory: ${describeError(e)}`, { cause: e });
  }
  cgroupLevel(real);
  return real;
}

export class Datapath {
  readonly layout: NodeLayout;
  /** Where the cgroup programs are attached in Kubernetes mode (DatapathOptions.captureRoot). */
  readonly captureRoot: string | undefined;
  /** What open() did per attached program: fresh attach or adoption of a pinned link
   *  (the STRICT hook appears and disappears with the mTLS mode). */
  readonly attachments: AttachResult[];
  private readonly objects: Map<string, native.BpfObject>;
  private readonly maps: Record<keyof typeof MAPS, native.BpfMap>;
  private readonly log: Logger;
  private swept = false;
  private closed = false;

  private constructor(layout: NodeLayout, captureRoot: string | undefined, objects: Map<string, native.BpfObject>,
    maps: Record<keyof typeof MAPS, native.BpfMap>, attachments: AttachResult[], log: Logger) {
    this.layout = layout;
    this.captureRoot = captureRoot;
    this.objects = objects;
    this.maps = maps;
    this.attachments = attachments;
    this.log = log;
  }

  static async open(opts: DatapathOptions): Promise<Datapath> {
    const layout = nodeLayout(opts.node);
    const redirect = checkRedirect(opts.redirect ?? DEFAULT_REDIRECT);
    const accelMinBytes = opts.accelMinBytes ?? DEFAULT_ACCEL_MIN_BYTES;
    if (!Number.isSafeInteger(accelMinBytes) || accelMinBytes < 0) {
      throw new WeftError('WEFT_ERR_INVALID_ARG', `accelMinBytes ${accelMinBytes} is not a byte count`);
    }
    const accelBulkMsgBytes = opts.accelBulkMsgBytes ?? DEFAULT_ACCEL_BULK_MSG_BYTES;
    if (!Number.isInteger(accelBulkMsgBytes) || accelBulkMsgBytes < 1 || accelBulkMsgBytes > 0xffffffff) {
      throw new WeftError('WEFT_ERR_INVALID_ARG', `accelBulkMsgBytes ${accelBulkMsgBytes} is not a byte count (1 to 2^32-1)`);
    }
    const captureRoot = opts.captureRoot === undefined ? undefined : checkCaptureRoot(opts.captureRoot);
    const skipped = opts.skippedCgroups === undefined ? undefined : checkCgroupIds(opts.skippedCgroups);
    const log = opts.logger ?? componentLogger('datapath', { node: layout.node });
    native.setLogger((level, message) => log[level]({ libbpf: true }, message.trimEnd()));

    // Where pins and cgroups go; all idempotent, so a restart finds them in place. With
    // a capture root, weft's own cgroup tree is not used at all.
    ensureBpffs();
    const dirs = captureRoot ? [layout.linksDir] : [layout.linksDir, layout.agentCgroup, layout.workloadsCgroup];
    for (const dir of dirs) mkdirSync(dir, { recursive: true });
    const where = (p: CgroupProgram) => captureRoot ?? cgroupOf(layout, p);
    // The skip map's ancestor levels count from the root of what is captured.
    const level = Buffer.alloc(4);
    level.writeUInt32LE(cgroupLevel(captureRoot ?? layout.workloadsCgroup));

    const objects: native.BpfObject[] = [];
    try {
      // Open every object against the node's pin root so maps are shared and re-used.
      const byName = new Map<string, native.BpfObject>();
      for (const name of OBJECTS) {
        const obj = native.BpfObject.open(bpfObjectPath(name), { pinRoot: layout.pinRoot, name: `weft-${name}` });
        objects.push(obj);
        byName.set(name, obj);
      }
      // Per-node settings, fixed at load time.
      const ip4 = parseIp(redirect.ipv4)!.bytes.subarray(0, 4);
      const ip6 = parseIp(redirect.ipv6)!.bytes;
      const sockLb = byName.get('sock_lb')!;
      sockLb.setConst('redirect_ip4', Buffer.from(ip4));
      sockLb.setConst('redirect_ip6', Buffer.from(ip6));
      sockLb.setConst('redirect_port', be16(redirect.port));
      // STRICT lets SYNs from the agent's address through (workloads in their own netns).
      byName.get('ingress')!.setConst('agent_ip4', Buffer.from(ip4));
      for (const name of ['sock_lb', 'sockops', 'ingress'] as const) byName.get(name)!.setConst('capture_level', level);
      const sockops = byName.get('sockops')!;
      sockops.setConst('redirect_port', be16(redirect.port));
      const min = Buffer.alloc(8); min.writeBigUInt64LE(BigInt(accelMinBytes));
      sockops.setConst('accel_min_bytes', min);
      const bulk = Buffer.alloc(4); bulk.writeUInt32LE(accelBulkMsgBytes);
      sockops.setConst('accel_bulk_msg_bytes', bulk);
      // Verify and load; maps already pinned by an earlier agent are re-used as they are.
      for (const obj of objects) await obj.load();

      const maps = Object.fromEntries(Object.entries(MAPS).map(([k, name]) => [k, sockLb.map(name)])) as
        Record<keyof typeof MAPS, native.BpfMap>;
      // The skip map before anything is attached; its entry count re-synced in any case
      // (an agent killed mid-update may have left it above the real count).
      if (skipped && skipped.length > maps.skip.maxEntries) {
        throw new WeftError('WEFT_ERR_CAPACITY', `${skipped.length} skipped cgroups, the map holds ${maps.skip.maxEntries}`);
      }
      // Added to what is there, not replacing it: on a rollout the previous agent still
      // runs, and its pod stays skipped until this agent has listed the pods.
      if (skipped) writeSkipped(maps, skipped, true);
      else maps.skipState.update(Buffer.alloc(4), skipStateCodec.encode({ entries: maps.skip.keys().length }));

      // Attach, or adopt what an earlier process pinned (the STRICT hook only if an
      // earlier process had it on: setMtlsMode() attaches or detaches it from then on).
      const attachments = CGROUP_PROGRAMS
        .filter((p) => !p.strictOnly || existsSync(join(layout.linksDir, p.program)))
        .map((p) => attachOrAdopt(byName.get(p.object)!.program(p.program), where(p), join(layout.linksDir, p.program), log));
      const skMsg = byName.get(SK_MSG_PROGRAM.object)!;
      // Attaching to the SOCKHASH again replaces the program atomically; sockets already
      // in the map keep the program they were inserted with until they close.
      skMsg.program(SK_MSG_PROGRAM.program).attachToMap(skMsg.map(MAPS.skhash), 'sk_msg_verdict');

      const dp = new Datapath(layout, captureRoot, byName, maps, attachments, log);
      log.info({ adopted: attachments.filter((a) => a.adopted).length, programs: attachments.length, captureRoot }, 'datapath ready');
      return dp;
    } catch (e) {
      for (const obj of objects) obj.close();
      if (e instanceof WeftError) throw e;
      throw bpfError(`loading the datapath of node ${layout.node}`, e);
    }
  }

  /** Validates every service first (nothing changes on error), then applies the
   *  minimal diff against what the maps hold now (also right after adopting). */
  applyServices(services: DatapathService[]): ApplySummary {
    this.assertOpen();
    validateServices(services);
    this.checkCapacity(services);
    if (!this.swept) { this.sweepOrphans(); this.swept = true; }
    const current = this.readServices();
    const summary: ApplySummary = { added: [], updated: [], removed: [], unchanged: [] };
    let nextId = Math.max(0, ...[...current.values()].map((c) => c.entry.id)) + 1;
    const wanted = new Set<string>();
    try {
      for (const s of services) {
        const name = serviceName(s);
        wanted.add(name);
        const cur = current.get(name);
        if (!cur) {
          this.writeService(s, nextId++, 1);
          summary.added.push(name);
        } else if (cur.service.mode === s.mode && (cur.service.lb ?? 'random') === (s.lb ?? 'random')
          && sameBackends(cur.service.backends, s.backends) && cur.entry.slotCount === slotCount(s)) {
          // (The slot count check also rewrites redirect services adopted from an agent
          // that gave them no slots, before fail-open needed them.)
          summary.unchanged.push(name);
        } else {
          // New rev first, then one update flips the service, then the old rev goes.
          this.writeService(s, cur.entry.id, (cur.entry.rev + 1) >>> 0);
          this.deleteRev(cur.entry);
          summary.updated.push(name);
        }
      }
      for (const [name, cur] of current) {
        if (wanted.has(name)) continue;
        this.maps.svc.delete(svcKeyCodec.encode(cur.key));
        this.deleteRev(cur.entry);
        summary.removed.push(name);
      }
    } catch (e) {
      throw bpfError('applying services', e);
    }
    this.log.info({ added: summary.added.length, updated: summary.updated.length, removed: summary.removed.length,
      unchanged: summary.unchanged.length }, 'services applied');
    return summary;
  }

  /** The services as the maps hold them now. */
  services(): DatapathService[] {
    this.assertOpen();
    return [...this.readServices().values()].map((c) => c.service);
  }

  /** Where a connection redirected to the agent was going, by the client's endpoint
   *  (the accepted socket's remote address). */
  lookupOrigin(clientIp: string, clientPort: number): Origin | null {
    this.assertOpen();
    return readOrigin(this.maps.origin, clientIp, clientPort);
  }

  /** Marks a server endpoint (e.g. the agent's own listener) as always worth a sockmap
   *  insertion, without waiting for a bulk connection to teach the kernel. */
  accelerate(ip: string, port: number): void {
    this.assertOpen();
    this.maps.accel.update(endpointCodec.encode({ ip, port }), accelCodec.encode({ avgBytes: 0n, flags: ACCEL_PINNED, avgMsg: 0 }));
  }

  /**
   * The server endpoints whose connections are spliced from the first one
   * (WEFT_ACCEL_EAGER in bpf/sockops.bpf.c): the agent's own hops, i.e. its outbound
   * listener and the local endpoints it pools connections to. Their bulk check stays:
   * an endpoint learned to carry bulk writes is left on TCP. Applied as a diff; what the
   * kernel learned about an endpoint (its means) is kept when the flag comes or goes.
   */
  setEagerEndpoints(endpoints: { ip: string; port: number }[]): { added: number; removed: number } {
    this.assertOpen();
    const wanted = new Map<string, Buffer>();
    for (const ep of endpoints) {
      if (!parseIp(ep.ip) || !Number.isInteger(ep.port) || ep.port < 1 || ep.port > 65535) {
        throw new WeftError('WEFT_ERR_INVALID_ARG', `eager endpoint ${JSON.stringify(ep)}: expected an IP address and a port from 1 to 65535`);
      }
      const key = endpointCodec.encode(ep);
      wanted.set(key.toString('hex'), key);
    }
    let added = 0, removed = 0;
    try {
      const current = this.accelEntries();
      const fresh = [...wanted.keys()].filter((k) => !current.has(k)).length;
      if (current.size + fresh > this.maps.accel.maxEntries) {
        throw new WeftError('WEFT_ERR_CAPACITY', `${wanted.size} eager endpoints do not fit the accel map (${this.maps.accel.maxEntries} entries)`);
      }
      for (const [hex, key] of wanted) {
        const e = current.get(hex) ?? { avgBytes: 0n, flags: 0, avgMsg: 0 };
        if (e.flags & ACCEL_EAGER) continue;
        this.maps.accel.update(key, accelCodec.encode({ ...e, flags: e.flags | ACCEL_EAGER }));
        added++;
      }
      for (const [hex, e] of current) {
        if (wanted.has(hex) || !(e.flags & ACCEL_EAGER)) continue;
        this.maps.accel.update(Buffer.from(hex, 'hex'), accelCodec.encode({ ...e, flags: e.flags & ~ACCEL_EAGER }));
        removed++;
      }
    } catch (e) {
      if (e instanceof WeftError) throw e;
      throw bpfError('updating the eager sockmap endpoints', e);
    }
    return { added, removed };
  }

  /** Endpoints currently marked eager, as `ip:port` (IPv6 in brackets). */
  eagerEndpoints(): string[] {
    this.assertOpen();
    const out: string[] = [];
    for (const [hex, e] of this.accelEntries()) {
      if (!(e.flags & ACCEL_EAGER)) continue;
      const ep = endpointCodec.decode(Buffer.from(hex, 'hex'));
      out.push(ep.ip.includes(':') ? `[${ep.ip}]:${ep.port}` : `${ep.ip}:${ep.port}`);
    }
    return out.sort();
  }

  /** The acceleration map by hex key, read in batches (it holds every endpoint the
   *  kernel learned, so one syscall per entry would grow with the node). */
  private accelEntries(): Map<string, AccelEntry> {
    return new Map(this.maps.accel.entries().map(([k, v]) => [k.toString('hex'), accelCodec.decode(v)]));
  }

  /**
   * What redirect-mode (L7/mTLS) services do while no agent process listens on the
   * redirect target (MeshConfig failMode; the kernel checks for the listener at every
   * such connect): 'closed' refuses with ECONNREFUSED, 'open' balances the connection
   * over the service's backends in the kernel, without L7 policy or mTLS. Kept in a
   * pinned map, so it holds while the agent is down; a fresh node is 'closed'. Call it
   * whenever a snapshot is applied.
   */
  setFailMode(mode: FailMode): void {
    this.updateNodeCfg({ failMode: oneOf(FAIL_MODES, mode, 'fail mode') });
  }

  failMode(): FailMode {
    return this.nodeCfg().failMode;
  }

  /**
   * MeshConfig mTLS mode, enforced by bpf/ingress.bpf.c on the workloads cgroup: under
   * 'STRICT' a connection to a mesh workload must come from this node (its agent after
   * mTLS, or a local workload); plaintext from outside is dropped at the SYN. A fresh
   * node is 'PERMISSIVE' until the first snapshot says otherwise.
   */
  setMtlsMode(mode: MtlsMode): void {
    const mtls = oneOf(MTLS_MODES, mode, 'mTLS mode');
    // The hook goes in before the mode flips (it passes everything until then) and
    // comes out after, so enforcement starts and stops with the map update.
    if (mtls === 'STRICT') this.setStrictHooks(true);
    this.updateNodeCfg({ mtls });
    if (mtls !== 'STRICT') this.setStrictHooks(false);
  }

  private setStrictHooks(on: boolean): void {
    for (const p of CGROUP_PROGRAMS.filter((x) => x.strictOnly)) {
      const at = this.attachments.findIndex((a) => a.program === p.program);
      const pin = join(this.layout.linksDir, p.program);
      if (on && at < 0) {
        this.attachments.push(attachOrAdopt(this.objects.get(p.object)!.program(p.program), this.captureRoot ?? cgroupOf(this.layout, p), pin, this.log));
        this.log.info({ program: p.program }, 'mTLS STRICT: ingress hook attached');
      } else if (!on && at >= 0) {
        const link = native.BpfLink.openPinned(pin);
        try { link.detach(); link.unpin(); } finally { link.close(); }
        this.attachments.splice(at, 1);
        this.log.info({ program: p.program }, 'mTLS not STRICT: ingress hook detached');
      }
    }
  }

  /**
   * This node's mesh workload addresses (their own, e.g. pod IPs: `weft run --address`),
   * the allow-list bpf/ingress.bpf.c applies under STRICT besides loopback and the agent:
   * same-node pod-to-pod connections that the kernel balances (no mTLS hop) arrive over a
   * veth from the other pod's address. Call it whenever the local workload set changes
   * (and after open, which adopts what an earlier agent left): validates every address
   * first (nothing changes on error), then writes the minimal diff. Returns what changed.
   */
  setLocalWorkloads(addresses: string[]): { added: string[]; removed: string[] } {
    this.assertOpen();
    const wanted = new Map<string, Buffer>();
    for (const ip of addresses) {
      if (typeof ip !== 'string' || !parseIp(ip)) {
        throw new WeftError('WEFT_ERR_INVALID_ARG', `local workload address ${JSON.stringify(ip)} is not an IPv4 or IPv6 address`);
      }
      const key = addrCodec.encode({ ip });
      wanted.set(key.toString('hex'), key);
    }
    if (wanted.size > this.maps.local.maxEntries) {
      throw new WeftError('WEFT_ERR_CAPACITY', `${wanted.size} local workload addresses, the map holds ${this.maps.local.maxEntries}`);
    }
    const current = new Map(this.maps.local.keys().map((k) => [k.toString('hex'), k]));
    const added: string[] = [], removed: string[] = [];
    const value = u32Codec.encode(LOCAL_F_WORKLOAD);
    try {
      // Additions first: a workload that moves address is never briefly unlisted.
      for (const [hex, key] of wanted) {
        if (current.has(hex)) continue;
        this.maps.local.update(key, value);
        added.push(addrCodec.decode(key).ip);
      }
      for (const [hex, key] of current) {
        if (wanted.has(hex)) continue;
        this.maps.local.delete(key);
        removed.push(addrCodec.decode(key).ip);
      }
    } catch (e) {
      throw bpfError('updating the local workload addresses', e);
    }
    if (added.length || removed.length) this.log.info({ added, removed }, 'local workload addresses updated');
    return { added, removed };
  }

  /**
   * The mesh workload endpoints a direct connect (to the workload's own address, not a
   * VIP) is redirected to the agent for (weft_direct_v1): every endpoint whose service
   * connections go through the agent, so that such a connection meets the same
   * authorization and mTLS hop. Port 0 stands for every port of the address. Validates
   * every entry first (nothing changes on error), then writes the minimal diff
   * (additions first). Returns what changed, as "ip:port" (IPv6 in brackets).
   */
  setDirectEndpoints(endpoints: { ip: string; port: number }[]): { added: string[]; removed: string[] } {
    this.assertOpen();
    const wanted = new Map<string, Buffer>();
    for (const e of endpoints) {
      if (typeof e?.ip !== 'string' || !parseIp(e.ip)) {
        throw new WeftError('WEFT_ERR_INVALID_ARG', `direct endpoint address ${JSON.stringify(e?.ip)} is not an IPv4 or IPv6 address`);
      }
      if (!Number.isInteger(e.port) || e.port < 0 || e.port > 65535) {
        throw new WeftError('WEFT_ERR_INVALID_ARG', `direct endpoint port ${JSON.stringify(e.port)} is not 0-65535`);
      }
      const key = directKeyCodec.encode(e);
      wanted.set(key.toString('hex'), key);
    }
    if (wanted.size > this.maps.direct.maxEntries) {
      throw new WeftError('WEFT_ERR_CAPACITY', `${wanted.size} direct workload endpoints, the map holds ${this.maps.direct.maxEntries}`);
    }
    const current = new Map(this.maps.direct.keys().map((k) => [k.toString('hex'), k]));
    const added: string[] = [], removed: string[] = [];
    const value = directCodec.encode({ flags: DIRECT_F_MESH });
    const show = (k: Buffer) => { const d = directKeyCodec.decode(k); return d.ip.includes(':') ? `[${d.ip}]:${d.port}` : `${d.ip}:${d.port}`; };
    try {
      for (const [hex, key] of wanted) {
        if (current.has(hex)) continue;
        this.maps.direct.update(key, value);
        added.push(show(key));
      }
      for (const [hex, key] of current) {
        if (wanted.has(hex)) continue;
        this.maps.direct.delete(key);
        removed.push(show(key));
      }
    } catch (e) {
      throw bpfError('updating the direct workload endpoints', e);
    }
    if (added.length || removed.length) this.log.info({ added: added.length, removed: removed.length }, 'direct workload endpoints updated');
    return { added, removed };
  }

  /** The endpoints weft_direct_v1 holds now, sorted. */
  directEndpoints(): { ip: string; port: number }[] {
    this.assertOpen();
    return this.maps.direct.keys().map((k) => directKeyCodec.decode(k))
      .sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port));
  }

  /**
   * The cgroups whose sockets weft leaves alone (weft_skip_v1): the agent's own pod,
   * hostNetwork pods, pods opted out. A pod's cgroup id covers its containers, present
   * and future: the programs also check a socket's ancestors one and two levels below
   * the capture root (bpf/include/skip.h). connect/sendmsg/recvmsg/getpeername leave
   * such sockets untouched, sockops neither inserts nor measures them, STRICT lets
   * their packets pass. Validates every id first (nothing changes on error), then
   * writes the minimal diff; the map is pinned, so the list survives the agent.
   */
  setSkippedCgroups(ids: bigint[]): { added: bigint[]; removed: bigint[] } {
    this.assertOpen();
    const wanted = checkCgroupIds(ids);
    if (wanted.length > this.maps.skip.maxEntries) {
      throw new WeftError('WEFT_ERR_CAPACITY', `${wanted.length} skipped cgroups, the map holds ${this.maps.skip.maxEntries}`);
    }
    try {
      const r = writeSkipped(this.maps, wanted);
      if (r.added.length || r.removed.length) this.log.info({ added: r.added.map(String), removed: r.removed.map(String) }, 'skipped cgroups updated');
      return r;
    } catch (e) {
      throw bpfError('updating the skipped cgroups', e);
    }
  }

  /** The cgroup ids weft_skip_v1 holds now, ascending. */
  skippedCgroups(): bigint[] {
    this.assertOpen();
    return this.maps.skip.keys().map((k) => skipKeyCodec.decode(k).cgroupId).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /**
   * Puts the agent's outbound listening socket (by fd, any process's copy of it) into
   * weft_agentl_v1: connect4/6 of a workload in its own network namespace cannot find
   * the listener with a lookup in that namespace, and learn from this map that an agent
   * listens (else fail mode applies). The kernel drops the entry when the socket closes.
   */
  setAgentListener(fd: number): void {
    this.assertOpen();
    if (!Number.isInteger(fd) || fd < 0) throw new WeftError('WEFT_ERR_INVALID_ARG', `listener fd ${JSON.stringify(fd)} is not a file descriptor`);
    const v = Buffer.alloc(8); v.writeBigUInt64LE(BigInt(fd));
    try { this.maps.agentListener.update(Buffer.alloc(4), v); } catch (e) {
      throw bpfError('registering the outbound listener for pod namespaces', e);
    }
  }

  /**
   * Workloads' DNS capture (weft_dns_v1, bpf/sock_lb.bpf.c): with a listener, connect4
   * and sendmsg4 send their TCP and UDP queries to port 53 of any IPv4 address that is no
   * VIP to it (the agent's DNS server, agent/dns/); null turns capture off. The listener's
   * sockets (setDnsListeners) must exist too, or queries go where they were sent.
   */
  setDnsCapture(listener: { ip: string; port: number } | null): void {
    this.assertOpen();
    if (listener && (parseIp(listener.ip)?.family !== 4 || listener.ip === '0.0.0.0' || !Number.isInteger(listener.port) || listener.port < 1 || listener.port > 65535)) {
      throw new WeftError('WEFT_ERR_INVALID_ARG', `DNS listener ${JSON.stringify(listener)}: expected a specific IPv4 address and a port from 1 to 65535`);
    }
    try { this.maps.dns.update(Buffer.alloc(4), listener ? dnsCfgCodec.encode(listener) : Buffer.alloc(dnsCfgCodec.layout.size)); } catch (e) {
      throw bpfError('updating the DNS capture', e);
    }
  }

  /** Where the kernel sends workloads' DNS now, or null (capture off). */
  dnsCapture(): { ip: string; port: number } | null {
    this.assertOpen();
    const v = this.maps.dns.lookup(Buffer.alloc(4));
    const c = v ? dnsCfgCodec.decode(v) : null;
    return c && c.port ? c : null;
  }

  /** Puts the DNS server's UDP and TCP listening sockets (fds) into weft_dnsl_v1: a pod
   *  in its own network namespace learns from them that the agent answers. */
  setDnsListeners(fds: { udp?: number; tcp?: number }): void {
    this.assertOpen();
    for (const [index, fd] of [[0, fds.udp], [1, fds.tcp]] as const) {
      if (fd === undefined) continue;
      if (!Number.isInteger(fd) || fd < 0) throw new WeftError('WEFT_ERR_INVALID_ARG', `DNS listener fd ${JSON.stringify(fd)} is not a file descriptor`);
      const k = Buffer.alloc(4); k.writeUInt32LE(index);
      const v = Buffer.alloc(8); v.writeBigUInt64LE(BigInt(fd));
      try { this.maps.dnsListeners.update(k, v); } catch (e) { throw bpfError('registering the DNS listener for pod namespaces', e); }
    }
  }

  /** Which DNS listening sockets weft_dnsl_v1 holds (live ones only). */
  dnsListenersRegistered(): { udp: boolean; tcp: boolean } {
    this.assertOpen();
    const at = (i: number) => { const k = Buffer.alloc(4); k.writeUInt32LE(i); return this.maps.dnsListeners.lookup(k) !== null; };
    return { udp: at(0), tcp: at(1) };
  }

  /** Whether weft_agentl_v1 holds a (live) listening socket. */
  agentListenerRegistered(): boolean {
    this.assertOpen();
    return this.maps.agentListener.lookup(Buffer.alloc(4)) !== null;
  }

  /** The addresses weft_local_v1 holds now. */
  localWorkloads(): string[] {
    this.assertOpen();
    return this.maps.local.keys().map((k) => addrCodec.decode(k).ip).sort();
  }

  mtlsMode(): MtlsMode {
    return this.nodeCfg().mtls;
  }

  private nodeCfg(): NodeCfg {
    this.assertOpen();
    const v = this.maps.cfg.lookup(Buffer.alloc(4));
    return v ? nodeCfgCodec.decode(v) : { failMode: 'closed', mtls: 'PERMISSIVE' };
  }

  private updateNodeCfg(change: Partial<NodeCfg>): void {
    this.maps.cfg.update(Buffer.alloc(4), nodeCfgCodec.encode({ ...this.nodeCfg(), ...change }));
  }

  /** Kernel counters summed over CPUs. */
  counters(): Counters {
    this.assertOpen();
    const total = Object.fromEntries(COUNTER_FIELDS.map((f) => [f, 0n])) as Counters;
    for (const cpu of this.maps.ctrs.lookupPerCpu(Buffer.alloc(4)) ?? []) {
      const c = countersCodec.decode(cpu);
      for (const f of COUNTER_FIELDS) total[f] += c[f];
    }
    return total;
  }

  createWorkloadCgroup(namespace: string, name: string): { path: string; id: bigint } {
    this.assertOwnCgroups('create workload cgroups');
    const path = workloadCgroupPath(this.layout, namespace, name);
    mkdirSync(path, { recursive: true });
    return { path, id: native.cgroupId(path) };
  }

  /** Removes a workload's cgroup; refuses (WEFT_ERR_INVALID_ARG, pids listed) while
   *  processes are still in it rather than moving them out of the mesh silently. */
  removeWorkloadCgroup(namespace: string, name: string): void {
    const path = workloadCgroupPath(this.layout, namespace, name);
    if (!existsSync(path)) return;
    const pids = readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
    if (pids.length) {
      throw new WeftError('WEFT_ERR_INVALID_ARG', `workload cgroup ${namespace}.${name} still has processes: ${pids.join(', ')}`,
        { details: { pids: pids.map(Number) } });
    }
    rmdirSync(path);
  }

  agentCgroupPath(): string { return this.layout.agentCgroup; }

  /** Moves a process (default: this one) into the agent cgroup: its sockets are never
   *  rewritten by the connect-family hooks, which is what prevents redirect loops. */
  joinAgentCgroup(pid: number = process.pid): void {
    this.assertOwnCgroups('move processes into the agent cgroup');
    writeFileSync(join(this.layout.agentCgroup, 'cgroup.procs'), String(pid));
  }

  /** Drops this process's fds. Pinned links and maps stay: traffic keeps flowing. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const m of Object.values(this.maps)) m.close();
    for (const obj of this.objects.values()) obj.close();
  }

  static cleanup(node: string): CleanupReport { return cleanupNode(nodeLayout(node)); }
  static inspect(node: string): NodeInspection { return inspectNode(nodeLayout(node)); }

  /** With a capture root, processes stay where kubelet put them. */
  private assertOwnCgroups(what: string): void {
    if (this.captureRoot) {
      throw new WeftError('WEFT_ERR_INVALID_ARG', `the datapath captures ${this.captureRoot}: it does not ${what} (skip the agent's pod instead)`);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new WeftError('WEFT_ERR_INVALID_ARG', 'datapath is closed');
  }

  private checkCapacity(services: DatapathService[]): void {
    const backends = services.reduce((n, s) => n + s.backends.length, 0);
    const slots = services.reduce((n, s) => n + slotCount(s), 0);
    // One service at a time holds two revs while it is being switched.
    const over = (what: string, need: number, max: number) => new WeftError('WEFT_ERR_CAPACITY',
      `${services.length} services need ${need} ${what} entries, the map holds ${max}`);
    if (services.length > this.maps.svc.maxEntries) throw over('service', services.length, this.maps.svc.maxEntries);
    if (backends + MAX_BACKENDS_PER_SERVICE > this.maps.backend.maxEntries) {
      throw over('backend', backends + MAX_BACKENDS_PER_SERVICE, this.maps.backend.maxEntries);
    }
    if (slots + MAX_SLOTS_PER_SERVICE > this.maps.slot.maxEntries) {
      throw over('slot', slots + MAX_SLOTS_PER_SERVICE, this.maps.slot.maxEntries);
    }
  }

  private readServices(): Map<string, CurrentService> {
    const out = new Map<string, CurrentService>();
    for (const [k, v] of this.maps.svc.entries()) {
      const key = svcKeyCodec.decode(k);
      const entry = svcCodec.decode(v);
      const backends = [];
      for (let i = 0; i < entry.backendCount; i++) {
        const b = this.maps.backend.lookup(revKeyCodec.encode({ svcId: entry.id, rev: entry.rev, index: i }));
        if (b) backends.push(backendCodec.decode(b));
      }
      const service: DatapathService = { vip: key.vip, port: key.port, protocol: key.protocol,
        mode: entry.flags & SVC_F_REDIRECT ? 'redirect' : 'l4', ...(entry.flags & SVC_F_MAGLEV ? { lb: 'maglev' as const } : {}), backends };
      out.set(serviceName(service), { key, entry, service });
    }
    return out;
  }

  private writeService(s: DatapathService, id: number, rev: number): void {
    // Redirect-mode services get slots too: fail-open balances them in the kernel while
    // no agent runs, and that has to work from the maps as the last agent left them.
    const slots = slotTable(s);
    if (s.backends.length) {
      this.maps.backend.updateBatch(
        s.backends.map((_, index) => revKeyCodec.encode({ svcId: id, rev, index })),
        s.backends.map((b) => backendCodec.encode(b)));
    }
    if (slots.length) {
      this.maps.slot.updateBatch(slots.map((_, index) => revKeyCodec.encode({ svcId: id, rev, index })), slots.map((b) => u32Codec.encode(b)));
    }
    // The flip: connecting sockets now read the new rev.
    this.maps.svc.update(svcKeyCodec.encode(s), svcCodec.encode({
      id, rev, slotCount: slots.length, backendCount: s.backends.length,
      flags: (s.mode === 'redirect' ? SVC_F_REDIRECT : 0) | (s.lb === 'maglev' ? SVC_F_MAGLEV : 0),
    }));
  }

  private deleteRev(e: SvcEntry): void {
    const keys = (n: number) => Array.from({ length: n }, (_, index) => revKeyCodec.encode({ svcId: e.id, rev: e.rev, index }));
    this.deleteAll(this.maps.backend, keys(e.backendCount));
    this.deleteAll(this.maps.slot, keys(e.slotCount));
  }

  private deleteAll(map: native.BpfMap, keys: Buffer[]): void {
    if (!keys.length) return;
    try { map.deleteBatch(keys); } catch { for (const k of keys) map.delete(k); }
  }

  /** An agent killed between writing a new rev and flipping to it leaves entries no
   *  service points at; the first apply after open removes them before ids are reused. */
  private sweepOrphans(): void {
    const live = new Set([...this.maps.svc.entries()].map(([, v]) => { const e = svcCodec.decode(v); return `${e.id}/${e.rev}`; }));
    for (const map of [this.maps.backend, this.maps.slot]) {
      const dead = map.keys().filter((k) => { const r = revKeyCodec.decode(k); return !live.has(`${r.svcId}/${r.rev}`); });
      if (dead.length) { this.deleteAll(map, dead); this.log.info({ map: map.name, entries: dead.length }, 'removed orphaned entries'); }
    }
  }
}


/** `value` if it names an entry of `table` (a codec's name → number table), else WEFT_ERR_INVALID_ARG. */
function oneOf<K extends string>(table: Record<K, number>, value: K, what: string): K {
  if (!Object.hasOwn(table, value)) {
    throw new WeftError('WEFT_ERR_INVALID_ARG', `${what} ${JSON.stringify(value)} is not one of ${Object.keys(table).join(', ')}`);
  }
  return value;
}

/**
 * Reads the origin map (the pinned one from any process, see agent/node/origin-map.ts).
 * The client's socket family decides the key: an IPv6 workload socket reaching an IPv4
 * listener through a v4-mapped redirect target is keyed '::ffff:a.b.c.d', while the
 * listener reports 'a.b.c.d' (and the reverse for a dual-stack one).
 */
export function readOrigin(map: native.BpfMap, clientIp: string, clientPort: number): Origin | null {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(clientIp);
  const alternate = mapped ? mapped[1]! : isIPv4(clientIp) ? `::ffff:${clientIp}` : undefined;
  for (const ip of alternate ? [clientIp, alternate] : [clientIp]) {
    const v = map.lookup(endpointCodec.encode({ ip, port: clientPort }));
    if (v) { const o = originCodec.decode(v); return { dstIp: o.ip, dstPort: o.port, cgroupId: o.cgroupId }; }
  }
  return null;
}

function cgroupOf(layout: NodeLayout, p: CgroupProgram): string {
  return p.where === 'root' ? layout.cgroupRoot : layout.workloadsCgroup;
}

const U64_MAX = (1n << 64n) - 1n;

/** Distinct cgroup ids (u64, never 0), or WEFT_ERR_INVALID_ARG naming the first bad one. */
function checkCgroupIds(ids: bigint[]): bigint[] {
  if (!Array.isArray(ids)) throw new WeftError('WEFT_ERR_INVALID_ARG', 'skipped cgroups: expected an array of cgroup ids');
  for (const id of ids) {
    if (typeof id !== 'bigint' || id <= 0n || id > U64_MAX) {
      throw new WeftError('WEFT_ERR_INVALID_ARG', `skipped cgroup ${typeof id === 'bigint' ? id.toString() : JSON.stringify(id)} is not a cgroup id (a u64 above 0)`);
    }
  }
  return [...new Set(ids)];
}

/**
 * Makes weft_skip_v1 hold exactly `wanted`. weft_skipn_v1 (the count the programs check
 * first) never reads 0 while an entry is present: it is raised to cover the additions
 * before they are written and lowered to the exact count after the removals.
 */
function writeSkipped(maps: Record<keyof typeof MAPS, native.BpfMap>, wanted: bigint[], keep = false): { added: bigint[]; removed: bigint[] } {
  const current = new Set(maps.skip.keys().map((k) => skipKeyCodec.decode(k).cgroupId));
  const want = new Set(keep ? [...current, ...wanted] : wanted);
  const added = wanted.filter((id) => !current.has(id));
  const removed = [...current].filter((id) => !want.has(id));
  const state = (entries: number) => maps.skipState.update(Buffer.alloc(4), skipStateCodec.encode({ entries }));
  const value = skipCodec.encode({ flags: SKIP_F_SKIP });
  if (added.length) state(current.size + added.length);
  for (const id of added) maps.skip.update(skipKeyCodec.encode({ cgroupId: id }), value);
  for (const id of removed) maps.skip.delete(skipKeyCodec.encode({ cgroupId: id }));
  state(want.size);
  return { added, removed };
}

/**
 * Attaches `prog` to `cgroup` and pins the link, or adopts the link pinned at `pinPath`:
 * on the same cgroup, BPF_LINK_UPDATE swaps the program in place; on another one (the
 * capture root changed, or the pinned link's cgroup is gone), a new link goes in at
 * `cgroup` first, then the old one is detached and the new pin takes its name.
 */
function attachOrAdopt(prog: native.BpfProgram, cgroup: string, pinPath: string, log: Logger): AttachResult {
  const wanted = native.cgroupId(cgroup);
  if (existsSync(pinPath)) {
    const old = native.BpfLink.openPinned(pinPath);
    try {
      if (old.cgroupId === wanted) {
        // BPF_LINK_UPDATE swaps the program behind the live attachment: no window in which
        // the cgroup runs without it (detach-then-attach would let connects escape).
        const previousProgId = old.progId;
        old.update(prog);
        return { program: prog.name, linkId: old.id, progId: old.progId, adopted: true, previousProgId, cgroup };
      }
      const fresh = prog.attachCgroup(cgroup);
      try {
        const staging = `${pinPath}-new`; // bpffs refuses names with a dot
        if (existsSync(staging)) unlinkSync(staging);
        fresh.pin(staging);
        const replacedLinkId = old.id;
        log.info({ program: prog.name, cgroup, replacedLinkId, previousCgroupId: old.cgroupId.toString() }, 'pinned link was attached elsewhere: replaced');
        old.detach();
        old.unpin();
        renameSync(staging, pinPath);
        return { program: prog.name, linkId: fresh.id, progId: fresh.progId, adopted: false, cgroup, replacedLinkId };
      } finally { fresh.close(); }
    } finally { old.close(); }
  }
  const link = prog.attachCgroup(cgroup);
  try {
    link.pin(pinPath);
    return { program: prog.name, linkId: link.id, progId: link.progId, adopted: false, cgroup };
  } finally { link.close(); }
}
