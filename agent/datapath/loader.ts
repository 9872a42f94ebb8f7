// Loading the node's BPF objects and attaching their programs: a fresh attach pins each
// link under the node's bpffs directory; a restarted agent adopts the pinned links by
// swapping the program behind them (BPF_LINK_UPDATE), never detaching, so live traffic
// sees no gap. Maps are pinned too and re-used as they are.
import { existsSync, mkdirSync, renameSync, unlinkSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';
import * as native from 'weft-native';
import { WeftError } from '../lib/errors';
import { parseIp } from '../lib/ip';
import { bpfObjectPath } from '../lib/paths';
import { componentLogger, type Logger } from '../telemetry/logger';
import { bpfError } from './bpf-error';
import { cgroupLevel, cgroupOf, checkCaptureRoot } from './cgroups';
import { ensureBpffs, nodeLayout, type NodeLayout } from './layout';
import type { DatapathMaps } from './maps';
import { CGROUP_PROGRAMS, MAPS, OBJECTS, SK_MSG_PROGRAM, type CgroupProgram } from './programs';
import { checkCgroupIds, resyncSkipCount, writeSkipped } from './skip-map';

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

/** What loading gave: the open objects, their maps, and what each program's attach did. */
export interface Loaded {
  layout: NodeLayout;
  captureRoot: string | undefined;
  objects: Map<string, native.BpfObject>;
  maps: DatapathMaps;
  attachments: AttachResult[];
  log: Logger;
}

/** Loads (or re-uses the pinned maps of) the node's objects and attaches or adopts
 *  every program; see Datapath.open. */
export async function loadDatapath(opts: DatapathOptions): Promise<Loaded> {
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
      DatapathMaps;
    // The skip map before anything is attached; its entry count re-synced in any case
    // (an agent killed mid-update may have left it above the real count).
    if (skipped && skipped.length > maps.skip.maxEntries) {
      throw new WeftError('WEFT_ERR_CAPACITY', `${skipped.length} skipped cgroups, the map holds ${maps.skip.maxEntries}`);
    }
    // Added to what is there, not replacing it: on a rollout the previous agent still
    // runs, and its pod stays skipped until this agent has listed the pods.
    if (skipped) writeSkipped(maps, skipped, true);
    else resyncSkipCount(maps);

    // Attach, or adopt what an earlier process pinned (the STRICT hook only if an
    // earlier process had it on: setMtlsMode() attaches or detaches it from then on).
    const attachments = CGROUP_PROGRAMS
      .filter((p) => !p.strictOnly || existsSync(join(layout.linksDir, p.program)))
      .map((p) => attachOrAdopt(byName.get(p.object)!.program(p.program), where(p), join(layout.linksDir, p.program), log));
    const skMsg = byName.get(SK_MSG_PROGRAM.object)!;
    // Attaching to the SOCKHASH again replaces the program atomically; sockets already
    // in the map keep the program they were inserted with until they close.
    skMsg.program(SK_MSG_PROGRAM.program).attachToMap(skMsg.map(MAPS.skhash), 'sk_msg_verdict');

    log.info({ adopted: attachments.filter((a) => a.adopted).length, programs: attachments.length, captureRoot }, 'datapath ready');
    return { layout, captureRoot, objects: byName, maps, attachments, log };
  } catch (e) {
    for (const obj of objects) obj.close();
    if (e instanceof WeftError) throw e;
    throw bpfError(`loading the datapath of node ${layout.node}`, e);
  }
}

/** Attaches (on) or detaches (off) the programs that run only under mTLS STRICT,
 *  keeping `l.attachments` in step. */
export function setStrictHooks(l: Loaded, on: boolean): void {
  for (const p of CGROUP_PROGRAMS.filter((x) => x.strictOnly)) {
    const at = l.attachments.findIndex((a) => a.program === p.program);
    const pin = join(l.layout.linksDir, p.program);
    if (on && at < 0) {
      l.attachments.push(attachOrAdopt(l.objects.get(p.object)!.program(p.program), l.captureRoot ?? cgroupOf(l.layout, p), pin, l.log));
      l.log.info({ program: p.program }, 'mTLS STRICT: ingress hook attached');
    } else if (!on && at >= 0) {
      const link = native.BpfLink.openPinned(pin);
      try { link.detach(); link.unpin(); } finally { link.close(); }
      l.attachments.splice(at, 1);
      l.log.info({ program: p.program }, 'mTLS not STRICT: ingress hook detached');
    }
  }
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
