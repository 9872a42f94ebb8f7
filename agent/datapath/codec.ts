// TypeScript ↔ Buffer codecs for every struct in bpf/include/weft_abi.h. Each codec
// declares its fields in order (padding included) and computes offsets from that list;
// encode/decode only use those offsets, so test/bpf/abi.test.ts comparing `layout` with
// the addon's sizeof/offsetof (native.abi) proves the codecs match the C compiler.
import { formatIp, parseIp, unmapV4 } from '../lib/ip';

export interface FieldLayout { offset: number; size: number }
export interface StructLayout { size: number; fields: Record<string, FieldLayout> }

/** A field: its name, element size and element count (arrays such as addr[4]). */
type FieldSpec = [name: string, elemSize: number, count?: number];

function layoutOf(fields: FieldSpec[]): StructLayout {
  const out: Record<string, FieldLayout> = {};
  let offset = 0, maxAlign = 1;
  for (const [name, elemSize, count = 1] of fields) {
    // Natural alignment, as the C compiler does it; the header pads explicitly, so this
    // never inserts anything and a missing pad field shows up in the ABI test.
    if (offset % elemSize !== 0) offset += elemSize - (offset % elemSize);
    maxAlign = Math.max(maxAlign, elemSize);
    out[name] = { offset, size: elemSize * count };
    offset += elemSize * count;
  }
  if (offset % maxAlign !== 0) offset += maxAlign - (offset % maxAlign);
  return { size: offset, fields: out };
}

export interface StructCodec<T> {
  readonly name: string;
  readonly layout: StructLayout;
  encode(v: T): Buffer;
  decode(b: Buffer): T;
}

function defineCodec<T>(
  name: string,
  fields: FieldSpec[],
  encode: (v: T, b: Buffer, at: (f: string) => number) => void,
  decode: (b: Buffer, at: (f: string) => number) => T,
): StructCodec<T> {
  const layout = layoutOf(fields);
  const at = (f: string): number => {
    const field = layout.fields[f];
    if (!field) throw new Error(`codec ${name} has no field ${f}`);
    return field.offset;
  };
  return {
    name,
    layout,
    encode(v) { const b = Buffer.alloc(layout.size); encode(v, b, at); return b; },
    decode(b) {
      if (b.length < layout.size) throw new RangeError(`${name}: buffer of ${b.length} bytes, need ${layout.size}`);
      return decode(b, at);
    },
  };
}

export const IPPROTO = { tcp: 6, udp: 17 } as const;
export type Protocol = keyof typeof IPPROTO;

/** Writes an address into the 16-byte addr field and returns its family (4|6). */
function putAddr(b: Buffer, offset: number, ip: string): number {
  const parsed = parseIp(ip);
  if (!parsed) throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
  parsed.bytes.copy(b, offset);
  return parsed.family;
}
const getAddr = (b: Buffer, offset: number, family: number) => formatIp(b.subarray(offset, offset + 16), family);

export interface Endpoint { ip: string; port: number }
export const endpointCodec = defineCodec<Endpoint>(
  'weft_endpoint', [['addr', 4, 4], ['port', 2], ['family', 1], ['pad', 1]],
  (v, b, at) => { b[at('family')] = putAddr(b, at('addr'), v.ip); b.writeUInt16BE(v.port, at('port')); },
  (b, at) => ({ ip: getAddr(b, at('addr'), b[at('family')]!), port: b.readUInt16BE(at('port')) }),
);

/** weft_addr: a bare address (key of weft_local_v1). A v4-mapped IPv6 address is stored
 *  as the IPv4 address it maps: the ingress hook sees an IPv4 packet for it. */
export interface AddrKey { ip: string }
export const addrCodec = defineCodec<AddrKey>(
  'weft_addr', [['addr', 4, 4], ['family', 1], ['pad', 1, 3]],
  (v, b, at) => { b[at('family')] = putAddr(b, at('addr'), unmapV4(v.ip)); },
  (b, at) => ({ ip: getAddr(b, at('addr'), b[at('family')]!) }),
);
/** weft_local_v1's value (WEFT_LOCAL_F_*). */
export const LOCAL_F_WORKLOAD = 0x1;

export interface SvcKey { vip: string; port: number; protocol: Protocol }
export const svcKeyCodec = defineCodec<SvcKey>(
  'weft_svc_key', [['addr', 4, 4], ['port', 2], ['proto', 1], ['family', 1]],
  (v, b, at) => {
    b[at('family')] = putAddr(b, at('addr'), v.vip);
    b.writeUInt16BE(v.port, at('port'));
    b[at('proto')] = IPPROTO[v.protocol];
  },
  (b, at) => ({
    vip: getAddr(b, at('addr'), b[at('family')]!),
    port: b.readUInt16BE(at('port')),
    protocol: b[at('proto')] === IPPROTO.udp ? 'udp' : 'tcp',
  }),
);

export const SVC_F_REDIRECT = 0x1;
/** WEFT_SVC_F_MAGLEV: the slots are a Maglev table indexed by the workload's hash. */
export const SVC_F_MAGLEV = 0x2;
export interface SvcEntry { id: number; rev: number; slotCount: number; backendCount: number; flags: number }
export const svcCodec = defineCodec<SvcEntry>(
  'weft_svc', [['id', 4], ['rev', 4], ['slot_count', 2], ['backend_count', 2], ['flags', 4]],
  (v, b, at) => {
    b.writeUInt32LE(v.id, at('id'));
    b.writeUInt32LE(v.rev, at('rev'));
    b.writeUInt16LE(v.slotCount, at('slot_count'));
    b.writeUInt16LE(v.backendCount, at('backend_count'));
    b.writeUInt32LE(v.flags, at('flags'));
  },
  (b, at) => ({
    id: b.readUInt32LE(at('id')), rev: b.readUInt32LE(at('rev')),
    slotCount: b.readUInt16LE(at('slot_count')), backendCount: b.readUInt16LE(at('backend_count')),
    flags: b.readUInt32LE(at('flags')),
  }),
);

export interface RevKey { svcId: number; rev: number; index: number }
export const revKeyCodec = defineCodec<RevKey>(
  'weft_rev_key', [['svc_id', 4], ['rev', 4], ['index', 4]],
  (v, b, at) => { b.writeUInt32LE(v.svcId, at('svc_id')); b.writeUInt32LE(v.rev, at('rev')); b.writeUInt32LE(v.index, at('index')); },
  (b, at) => ({ svcId: b.readUInt32LE(at('svc_id')), rev: b.readUInt32LE(at('rev')), index: b.readUInt32LE(at('index')) }),
);

/** The slot map's value: a backend position (__u32, host order). */
export const u32Codec = {
  encode(v: number): Buffer { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; },
  decode(b: Buffer): number { return b.readUInt32LE(0); },
};

export interface BackendEntry { ip: string; port: number; weight: number }
export const backendCodec = defineCodec<BackendEntry>(
  'weft_backend', [['addr', 4, 4], ['port', 2], ['family', 1], ['pad', 1], ['weight', 4]],
  (v, b, at) => {
    b[at('family')] = putAddr(b, at('addr'), v.ip);
    b.writeUInt16BE(v.port, at('port'));
    b.writeUInt32LE(v.weight, at('weight'));
  },
  (b, at) => ({
    ip: getAddr(b, at('addr'), b[at('family')]!), port: b.readUInt16BE(at('port')), weight: b.readUInt32LE(at('weight')),
  }),
);

export const ACCEL_PINNED = 0x1;
/** Inserted from the first connection, unless its writes are learned to be bulk. */
export const ACCEL_EAGER = 0x2;
export interface AccelEntry { avgBytes: bigint; flags: number; avgMsg: number }
export const accelCodec = defineCodec<AccelEntry>(
  'weft_accel', [['avg_bytes', 8], ['flags', 4], ['avg_msg', 4]],
  (v, b, at) => {
    b.writeBigUInt64LE(v.avgBytes, at('avg_bytes'));
    b.writeUInt32LE(v.flags, at('flags'));
    b.writeUInt32LE(v.avgMsg, at('avg_msg'));
  },
  (b, at) => ({ avgBytes: b.readBigUInt64LE(at('avg_bytes')), flags: b.readUInt32LE(at('flags')), avgMsg: b.readUInt32LE(at('avg_msg')) }),
);

/** weft_sockb_v2's value: what an inserted socket sent through sk_msg. */
export interface SockBytes { bytes: bigint; msgs: number; flags: number }
export const sockBytesCodec = defineCodec<SockBytes>(
  'weft_sock_bytes', [['bytes', 8], ['msgs', 4], ['flags', 4]],
  (v, b, at) => { b.writeBigUInt64LE(v.bytes, at('bytes')); b.writeUInt32LE(v.msgs, at('msgs')); b.writeUInt32LE(v.flags, at('flags')); },
  (b, at) => ({ bytes: b.readBigUInt64LE(at('bytes')), msgs: b.readUInt32LE(at('msgs')), flags: b.readUInt32LE(at('flags')) }),
);

export const SOCK_F_BALANCED = 0x1;
export const SOCK_F_REDIRECTED = 0x2;
export interface OriginEntry { ip: string; port: number; flags: number; cgroupId: bigint }
export const originCodec = defineCodec<OriginEntry>(
  'weft_origin', [['addr', 4, 4], ['port', 2], ['family', 1], ['flags', 1], ['pad', 4], ['cgroup_id', 8]],
  (v, b, at) => {
    b[at('family')] = putAddr(b, at('addr'), v.ip);
    b.writeUInt16BE(v.port, at('port'));
    b[at('flags')] = v.flags;
    b.writeBigUInt64LE(v.cgroupId, at('cgroup_id'));
  },
  (b, at) => ({
    ip: getAddr(b, at('addr'), b[at('family')]!), port: b.readUInt16BE(at('port')),
    flags: b[at('flags')]!, cgroupId: b.readBigUInt64LE(at('cgroup_id')),
  }),
);

export interface RevNatKey { cookie: bigint; ip: string; port: number }
export const revNatKeyCodec = defineCodec<RevNatKey>(
  'weft_revnat_key', [['cookie', 8], ['addr', 4, 4], ['port', 2], ['family', 1], ['pad', 1], ['pad2', 4]],
  (v, b, at) => {
    b.writeBigUInt64LE(v.cookie, at('cookie'));
    b[at('family')] = putAddr(b, at('addr'), v.ip);
    b.writeUInt16BE(v.port, at('port'));
  },
  (b, at) => ({ cookie: b.readBigUInt64LE(at('cookie')), ip: getAddr(b, at('addr'), b[at('family')]!), port: b.readUInt16BE(at('port')) }),
);

export interface SockKey { localIp: string; localPort: number; remoteIp: string; remotePort: number }
export const sockKeyCodec = defineCodec<SockKey>(
  'weft_sock_key',
  [['local_addr', 4, 4], ['remote_addr', 4, 4], ['local_port', 2], ['remote_port', 2], ['family', 1], ['pad', 1, 3]],
  (v, b, at) => {
    b[at('family')] = putAddr(b, at('local_addr'), v.localIp);
    putAddr(b, at('remote_addr'), v.remoteIp);
    b.writeUInt16BE(v.localPort, at('local_port'));
    b.writeUInt16BE(v.remotePort, at('remote_port'));
  },
  (b, at) => ({
    localIp: getAddr(b, at('local_addr'), b[at('family')]!), localPort: b.readUInt16BE(at('local_port')),
    remoteIp: getAddr(b, at('remote_addr'), b[at('family')]!), remotePort: b.readUInt16BE(at('remote_port')),
  }),
);

/** Counter names in struct order (the struct's field order is the counter index). */
export const COUNTER_FIELDS = [
  'connect_balanced', 'connect_redirected', 'no_backend', 'sockmap_inserts', 'sockmap_skipped',
  'msg_redirected', 'msg_redirected_bytes', 'msg_miss', 'origin_inserts', 'fail_open', 'fail_closed', 'strict_drops',
] as const;
export type CounterName = (typeof COUNTER_FIELDS)[number];
export type Counters = Record<CounterName, bigint>;
export const countersCodec = defineCodec<Counters>(
  'weft_counters', COUNTER_FIELDS.map((f): FieldSpec => [f, 8]),
  (v, b, at) => { for (const f of COUNTER_FIELDS) b.writeBigUInt64LE(v[f], at(f)); },
  (b, at) => Object.fromEntries(COUNTER_FIELDS.map((f) => [f, b.readBigUInt64LE(at(f))])) as Counters,
);

/** What a redirect-mode service does while no agent listens (weft_node_cfg.fail_mode). */
export const FAIL_MODES = { closed: 0, open: 1 } as const;
export type FailMode = keyof typeof FAIL_MODES;
export const MTLS_MODES = { PERMISSIVE: 0, STRICT: 1 } as const;
export type MtlsMode = keyof typeof MTLS_MODES;
export interface NodeCfg { failMode: FailMode; mtls: MtlsMode }
export const nodeCfgCodec = defineCodec<NodeCfg>(
  'weft_node_cfg', [['fail_mode', 4], ['mtls_mode', 4]],
  (v, b, at) => { b.writeUInt32LE(FAIL_MODES[v.failMode], at('fail_mode')); b.writeUInt32LE(MTLS_MODES[v.mtls], at('mtls_mode')); },
  (b, at) => ({
    failMode: b.readUInt32LE(at('fail_mode')) === FAIL_MODES.open ? 'open' : 'closed',
    mtls: b.readUInt32LE(at('mtls_mode')) === MTLS_MODES.STRICT ? 'STRICT' : 'PERMISSIVE',
  }),
);

/** weft_skip_v1: a cgroup id (u64, host order) → WEFT_SKIP_F_* flags. */
export const SKIP_F_SKIP = 0x1;
export interface SkipKey { cgroupId: bigint }
export const skipKeyCodec = defineCodec<SkipKey>(
  'weft_skip_key', [['cgroup_id', 8]],
  (v, b, at) => { b.writeBigUInt64LE(v.cgroupId, at('cgroup_id')); },
  (b, at) => ({ cgroupId: b.readBigUInt64LE(at('cgroup_id')) }),
);
export interface SkipEntry { flags: number }
export const skipCodec = defineCodec<SkipEntry>(
  'weft_skip', [['flags', 4]],
  (v, b, at) => { b.writeUInt32LE(v.flags, at('flags')); },
  (b, at) => ({ flags: b.readUInt32LE(at('flags')) }),
);
/** weft_skipn_v1's only entry: how many entries weft_skip_v1 holds (0: programs skip the lookups). */
export interface SkipState { entries: number }
export const skipStateCodec = defineCodec<SkipState>(
  'weft_skip_state', [['entries', 4]],
  (v, b, at) => { b.writeUInt32LE(v.entries, at('entries')); },
  (b, at) => ({ entries: b.readUInt32LE(at('entries')) }),
);

/** weft_direct_v1: a mesh workload endpoint a direct connect is redirected for (port 0:
 *  every port of the address) → WEFT_DIRECT_F_* flags. A v4-mapped IPv6 address is
 *  stored as the IPv4 address it maps (connect6 looks those up as IPv4). */
export const DIRECT_F_MESH = 0x1;
export const directKeyCodec = defineCodec<Endpoint>(
  'weft_direct_key', [['addr', 4, 4], ['port', 2], ['family', 1], ['pad', 1]],
  (v, b, at) => { b[at('family')] = putAddr(b, at('addr'), unmapV4(v.ip)); b.writeUInt16BE(v.port, at('port')); },
  (b, at) => ({ ip: getAddr(b, at('addr'), b[at('family')]!), port: b.readUInt16BE(at('port')) }),
);
export interface DirectEntry { flags: number }
export const directCodec = defineCodec<DirectEntry>(
  'weft_direct', [['flags', 4]],
  (v, b, at) => { b.writeUInt32LE(v.flags, at('flags')); },
  (b, at) => ({ flags: b.readUInt32LE(at('flags')) }),
);

/** weft_dns_v1's only entry: the agent's DNS listener (IPv4) that connect4/sendmsg4
 *  send workloads' port-53 queries to; port 0 turns capture off. */
export interface DnsCfg { ip: string; port: number }
export const dnsCfgCodec = defineCodec<DnsCfg>(
  'weft_dns_cfg', [['addr', 4], ['port', 2], ['pad', 2]],
  (v, b, at) => {
    const p = parseIp(v.ip);
    if (!p || p.family !== 4) throw new TypeError(`not an IPv4 address: ${JSON.stringify(v.ip)}`);
    p.bytes.copy(b, at('addr'), 0, 4);
    b.writeUInt16BE(v.port, at('port'));
  },
  (b, at) => ({ ip: formatIp(Buffer.concat([b.subarray(at('addr'), at('addr') + 4), Buffer.alloc(12)]), 4), port: b.readUInt16BE(at('port')) }),
);

/** Every ABI codec, by C struct name (what test/bpf/abi.test.ts walks). */
export const ABI_CODECS: ReadonlyArray<StructCodec<never>> = [
  endpointCodec, addrCodec, svcKeyCodec, svcCodec, revKeyCodec, backendCodec, originCodec, revNatKeyCodec, sockKeyCodec,
  accelCodec, sockBytesCodec, nodeCfgCodec, countersCodec, skipKeyCodec, skipCodec, skipStateCodec, directKeyCodec, directCodec,
  dnsCfgCodec,
] as unknown as ReadonlyArray<StructCodec<never>>;
