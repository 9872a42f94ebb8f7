// The ABI check (Cilium's alignchecker idea): every struct in bpf/include/weft_abi.h,
// as the C++ compiler lays it out (native.abi, from native/src/abi.cc), must match the
// TypeScript codec field for field, padding included, in both directions.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as native from 'weft-native';

import { ABI_CODECS } from '../../agent/datapath/codec';

test('every ABI struct has a codec with the same size and field offsets', () => {
  const codecs = new Map(ABI_CODECS.map((c) => [c.name, c.layout]));
  assert.deepEqual([...codecs.keys()].sort(), Object.keys(native.abi).sort(), 'same set of structs');
  for (const [name, layout] of Object.entries(native.abi)) {
    assert.deepEqual(codecs.get(name), layout, `${name}: codec layout differs from the compiler's`);
  }
});

test('codecs round-trip their values', () => {
  const samples: Record<string, unknown> = {
    weft_endpoint: { ip: 'fd00::1:2', port: 15001 },
    weft_addr: { ip: 'fd00:77::12' },
    weft_svc_key: { vip: '10.96.0.10', port: 80, protocol: 'udp' },
    weft_svc: { id: 7, rev: 0xffffffff, slotCount: 1024, backendCount: 256, flags: 1 },
    weft_rev_key: { svcId: 1, rev: 2, index: 3 },
    weft_backend: { ip: '10.0.1.2', port: 8080, weight: 30 },
    weft_origin: { ip: '10.96.0.10', port: 443, flags: 2, cgroupId: 0x1234567890n },
    weft_revnat_key: { cookie: 42n, ip: '::ffff:127.0.0.1', port: 53 },
    weft_sock_key: { localIp: '127.0.0.1', localPort: 40000, remoteIp: '127.0.0.2', remotePort: 5201 },
    weft_accel: { avgBytes: 1n << 40n, flags: 1, avgMsg: 65536 },
    weft_sock_bytes: { bytes: 1n << 33n, msgs: 7, flags: 1 },
    weft_node_cfg: { failMode: 'open', mtls: 'STRICT' },
    weft_skip_key: { cgroupId: 0xfedcba9876543210n },
    weft_skip: { flags: 1 },
    weft_skip_state: { entries: 4096 },
    weft_direct_key: { ip: 'fd00:77::12', port: 8080 },
    weft_direct: { flags: 1 },
    weft_dns_cfg: { ip: '10.77.0.1', port: 15053 },
    weft_counters: Object.fromEntries(Object.keys(native.abi.weft_counters!.fields).map((f, i) => [f, BigInt(i) << 40n])),
  };
  for (const codec of ABI_CODECS) {
    const v = samples[codec.name];
    assert.ok(v, `a sample for ${codec.name}`);
    const c = codec as unknown as { encode(x: unknown): Buffer; decode(b: Buffer): unknown };
    const buf = c.encode(v);
    assert.equal(buf.length, codec.layout.size);
    assert.deepEqual(c.decode(buf), v, codec.name);
  }
});

test('weft_addr: IPv4 in the first word, IPv6 in all 16 bytes, v4-mapped stored as IPv4', () => {
  const codec = ABI_CODECS.find((c) => c.name === 'weft_addr') as unknown as { encode(x: unknown): Buffer; decode(b: Buffer): unknown };
  const v4 = codec.encode({ ip: '10.77.0.11' });
  assert.deepEqual([...v4.subarray(0, 16)], [10, 77, 0, 11, ...new Array(12).fill(0)]);
  assert.equal(v4[16], 4);
  assert.deepEqual(codec.encode({ ip: '::ffff:10.77.0.11' }), v4, 'what the ingress hook sees of a v4-mapped peer');
  const v6 = codec.encode({ ip: 'fd00::1' });
  assert.deepEqual([...v6.subarray(0, 16)], [0xfd, 0, ...new Array(13).fill(0), 1]);
  assert.equal(v6[16], 6);
  assert.deepEqual(codec.decode(v6), { ip: 'fd00::1' });
  assert.throws(() => codec.encode({ ip: '10.77.0' }), /not an IP address/);
});

test('weft_direct_key: a v4-mapped address is stored as IPv4 (connect6 looks it up so), port 0 is every port', () => {
  const codec = ABI_CODECS.find((c) => c.name === 'weft_direct_key') as unknown as { encode(x: unknown): Buffer; decode(b: Buffer): unknown };
  const v4 = codec.encode({ ip: '10.77.0.11', port: 8080 });
  assert.deepEqual([...v4.subarray(0, 16)], [10, 77, 0, 11, ...new Array(12).fill(0)]);
  assert.deepEqual([...v4.subarray(16, 19)], [0x1f, 0x90, 4]);
  assert.deepEqual(codec.encode({ ip: '::ffff:10.77.0.11', port: 8080 }), v4);
  assert.deepEqual(codec.decode(codec.encode({ ip: '10.77.0.11', port: 0 })), { ip: '10.77.0.11', port: 0 });
});

test('addresses and ports are stored in network byte order', () => {
  const codec = ABI_CODECS.find((c) => c.name === 'weft_endpoint') as unknown as { encode(x: unknown): Buffer };
  const b = codec.encode({ ip: '10.96.0.1', port: 80 });
  assert.deepEqual([...b.subarray(0, 4)], [10, 96, 0, 1]);
  assert.deepEqual([...b.subarray(4, 16)], new Array(12).fill(0));
  assert.deepEqual([...b.subarray(16, 18)], [0, 80]);
  assert.equal(b[18], 4);
});
