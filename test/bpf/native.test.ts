// The native addon (weft-native) against the real kernel: every promise of
// native/index.d.ts that weft relies on — loading with load-time constants, map
// operations and their exact error codes, batch and walk paths, per-CPU reads after real
// connects, pinned links that outlive their handle, pinned maps adopted by a second load,
// SOCKHASH attachment, libbpf's log, and handle lifetimes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as native from 'weft-native';
import { requires } from '../lib/privileges';

const fixtures = join(__dirname, 'fixtures', 'native');
const pinDir = `/sys/fs/bpf/wt-native-${process.pid}`;

/** The cgroup2 mount (here /sys/fs/cgroup/unified, elsewhere /sys/fs/cgroup). */
function cgroup2Root(): string {
  const line = readFileSync('/proc/self/mounts', 'utf8').split('\n').find((l) => l.split(' ')[2] === 'cgroup2');
  if (!line) throw new Error('no cgroup2 mount');
  return line.split(' ')[1]!;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

/** Asserts `fn` throws a NativeError with this code (and op when given). */
function assertNative(fn: () => unknown, code: string, op?: string): void {
  assert.throws(fn, (err: native.NativeError) => {
    assert.equal(err.code, code, err.message);
    assert.equal(typeof err.errno, 'number');
    assert.ok(err.errno > 0);
    if (op) {
      assert.equal(err.op, op);
      assert.ok(err.message.startsWith(`${op}: `), err.message);
    }
    return true;
  });
}

function sumPerCpu(values: Buffer[] | null): bigint {
  assert.ok(values);
  return values.reduce((s, v) => s + v.readBigUInt64LE(0), 0n);
}

/** A process that joins `cgroup`, then opens `n` TCP connections to 127.0.0.1:port. */
function connectFromCgroup(cgroup: string, port: number, n: number): Promise<void> {
  const script = 'echo $$ > "$1/cgroup.procs" || exit 2; ' +
    'for i in $(seq "$3"); do exec 3<>"/dev/tcp/127.0.0.1/$2" || exit 3; exec 3>&-; done';
  const child = spawn('bash', ['-c', script, 'bash', cgroup, String(port), String(n)], { stdio: 'inherit' });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('connector timed out')); }, 10_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`connector exited with ${code}`));
    });
  });
}

test('weft-native without a build says how to build it', () => {
  // A copy of index.js next to an empty build/ directory behaves like a fresh checkout.
  const dir = mkdtempSync(join(tmpdir(), 'wt-native-unbuilt-'));
  try {
    copyFileSync(join(__dirname, '..', '..', 'native', 'index.js'), join(dir, 'index.js'));
    assert.throws(() => require(join(dir, 'index.js')), (e: NodeJS.ErrnoException) =>
      e.code === 'WEFT_NATIVE_NOT_BUILT' && e.message.includes('npm run build:native'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('weft-native addon', async (t) => {
  if (!requires(t, { bpffs: true, root: true, commands: ['clang', 'bash'] })) return;

  const work = mkdtempSync(join(tmpdir(), 'wt-native-'));
  const cgroup = join(cgroup2Root(), `wt-native-${process.pid}`);
  const objects: native.BpfObject[] = [];
  const links: native.BpfLink[] = [];
  let server: Server | undefined;
  let fixtureObj = '';
  let unverifiableObj = '';

  t.before(() => {
    for (const name of ['fixture', 'unverifiable']) {
      execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-I/usr/include/x86_64-linux-gnu',
        '-c', join(fixtures, `${name}.bpf.c`), '-o', join(work, `${name}.bpf.o`)]);
    }
    fixtureObj = join(work, 'fixture.bpf.o');
    unverifiableObj = join(work, 'unverifiable.bpf.o');
    mkdirSync(pinDir);
    mkdirSync(cgroup);
  });
  t.after(() => {
    native.setLogger(null);
    for (const l of links) l.close();
    for (const o of objects) o.close();
    server?.close();
    rmSync(pinDir, { recursive: true, force: true });
    if (existsSync(cgroup)) rmdirSync(cgroup);
    rmSync(work, { recursive: true, force: true });
  });

  /** Opens the fixture; always with a pinRoot so the pinned map never lands in /sys/fs/bpf. */
  function open(pinRoot = join(pinDir, 'maps'), file = fixtureObj): native.BpfObject {
    mkdirSync(pinRoot, { recursive: true });
    const obj = native.BpfObject.open(file, { pinRoot });
    objects.push(obj);
    return obj;
  }
  async function loaded(increment?: number): Promise<native.BpfObject> {
    const obj = open();
    if (increment !== undefined) obj.setConst('connect_increment', u64(increment));
    await obj.load();
    return obj;
  }

  await t.test('module functions and constants', () => {
    const possible = readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();
    const cpus = possible.split(',').reduce((n, r) => {
      const [a, b] = r.split('-').map(Number);
      return n + (b === undefined ? 1 : b - a! + 1);
    }, 0);
    assert.equal(native.numPossibleCpus(), cpus);
    assert.deepEqual([native.BPF_ANY, native.BPF_NOEXIST, native.BPF_EXIST], [0, 1, 2]);
    assert.ok(Object.keys(native.abi).length > 0);
    for (const layout of Object.values(native.abi)) assert.equal(typeof layout.size, 'number');
    assert.throws(() => native.setLogger('x' as never), TypeError);
    assert.throws(() => new (native.BpfObject as unknown as new () => unknown)(), TypeError);
  });

  await t.test('cgroupId is the cgroup directory inode', () => {
    assert.equal(native.cgroupId(cgroup), statSync(cgroup, { bigint: true }).ino);
    assertNative(() => native.cgroupId(join(cgroup, 'missing')), 'ENOENT', 'statfs');
    assertNative(() => native.cgroupId(work), 'EINVAL', 'statfs');
    assert.throws(() => native.cgroupId(42 as never), TypeError);
  });

  await t.test('open, setConst, load', async () => {
    assertNative(() => native.BpfObject.open(join(work, 'missing.o')), 'ENOENT', 'bpf_object__open_file');
    const named = native.BpfObject.open(fixtureObj, { name: 'wtn', pinRoot: join(pinDir, 'maps') });
    assert.ok(named.mapNames.includes('wtn.rodata'), named.mapNames.join());
    named.close();
    assert.throws(() => native.BpfObject.open(fixtureObj, { pinRoot: 1 } as never), TypeError);
    const obj = open();
    assert.deepEqual(obj.programNames, ['count_connect', 'count_connect_v2', 'pass_msg']);
    for (const m of ['kv', 'connects', 'lru', 'socks', 'cidrs', 'adopted']) assert.ok(obj.mapNames.includes(m), m);
    assertNative(() => obj.setConst('no_such_variable', u64(1)), 'ENOENT', 'BpfObject.setConst');
    assert.throws(() => obj.setConst('connect_increment', u32(1)), RangeError);
    assert.throws(() => obj.setConst('connect_increment', 7 as never), TypeError);
    assertNative(() => obj.program('count_connect'), 'EINVAL');
    obj.setConst('connect_increment', u64(2));
    await obj.load();
    assertNative(() => obj.setConst('connect_increment', u64(1)), 'EBUSY', 'BpfObject.setConst');
    await assert.rejects(obj.load(), (e: native.NativeError) => e.code === 'EBUSY');
    assertNative(() => obj.program('nope'), 'ENOENT');
    assertNative(() => obj.map('nope'), 'ENOENT');
    const prog = obj.program('count_connect');
    assert.equal(prog.name, 'count_connect');
    assert.equal(prog.section, 'cgroup/connect4');
    assert.ok(prog.id > 0 && prog.fd > 0);
    const kv = obj.map('kv');
    assert.deepEqual([kv.type, kv.keySize, kv.valueSize, kv.maxEntries, kv.name], ['hash', 4, 8, 4096, 'kv']);
    assert.ok(kv.id > 0);
    assert.equal(obj.map('connects').type, 'percpu_array');
    assert.equal(obj.map('lru').type, 'lru_hash');
    assert.equal(obj.map('socks').type, 'sockhash');
  });

  await t.test('map CRUD and exact errors', async () => {
    const obj = await loaded();
    const kv = obj.map('kv');
    assert.equal(kv.lookup(u32(1)), null);
    kv.update(u32(1), u64(10));
    assert.deepEqual(kv.lookup(u32(1)), u64(10));
    assertNative(() => kv.update(u32(1), u64(11), native.BPF_NOEXIST), 'EEXIST', 'bpf_map_update_elem');
    assert.throws(() => kv.update(u32(1), u64(11), native.BPF_NOEXIST), /^Error: bpf_map_update_elem: File exists$/);
    assertNative(() => kv.update(u32(2), u64(11), native.BPF_EXIST), 'ENOENT', 'bpf_map_update_elem');
    kv.update(u32(1), u64(12), native.BPF_EXIST);
    assert.deepEqual(kv.lookup(u32(1)), u64(12));
    assert.deepEqual(kv.keys(), [u32(1)]);
    assert.equal(kv.delete(u32(1)), true);
    assert.equal(kv.delete(u32(1)), false);
    assert.throws(() => kv.lookup(Buffer.alloc(3)), RangeError);
    assert.throws(() => kv.update(u32(1), u32(1)), RangeError);
    assert.throws(() => kv.update(u32(1), u64(1), 7 as never), RangeError);
    assert.throws(() => kv.lookup('key' as never), TypeError);
    assert.throws(() => kv.update(u32(1), [1] as never), TypeError);
    assert.throws(() => kv.delete(undefined as never), TypeError);
    assertNative(() => kv.lookupPerCpu(u32(1)), 'EINVAL');

    const lru = obj.map('lru');
    lru.update(u32(5), u32(50));
    assert.deepEqual(lru.lookup(u32(5)), u32(50));

    // A full hash map refuses new keys with E2BIG.
    const adopted = obj.map('adopted');
    for (let i = 0; i < adopted.maxEntries; i++) adopted.update(u32(i), u32(i));
    assertNative(() => adopted.update(u32(1000), u32(1)), 'E2BIG', 'bpf_map_update_elem');
    adopted.deleteBatch(adopted.keys());
    assert.deepEqual(adopted.keys(), []);
  });

  await t.test('entries, updateBatch, deleteBatch: batch and walk paths', async () => {
    const obj = await loaded();
    const kv = obj.map('kv');
    // More entries than one lookup batch holds, so the batch cursor is exercised.
    const keys = Array.from({ length: 3000 }, (_, i) => u32(i));
    const values = keys.map((_, i) => u64(i * 7));
    kv.updateBatch(keys, values);
    const entries = kv.entries();
    assert.equal(entries.length, 3000);
    for (const [k, v] of entries) assert.equal(v.readBigUInt64LE(0), BigInt(k.readUInt32LE(0) * 7));
    assert.equal(kv.keys().length, 3000);
    assertNative(() => kv.updateBatch([u32(1)], [u64(1)], native.BPF_NOEXIST), 'EEXIST', 'bpf_map_update_elem');
    kv.deleteBatch(keys.slice(0, 1000));
    assert.equal(kv.entries().length, 2000);
    assert.equal(kv.lookup(u32(999)), null);
    assertNative(() => kv.deleteBatch([u32(5)]), 'ENOENT', 'bpf_map_delete_batch');
    assert.throws(() => kv.updateBatch([u32(1)], []), RangeError);
    assert.throws(() => kv.updateBatch([u32(1)], [u32(1)]), RangeError);
    assert.throws(() => kv.updateBatch(u32(1) as never, []), TypeError);
    kv.updateBatch([], []);

    // Per-CPU array: each entry's value holds every possible CPU's slot.
    const connects = obj.map('connects');
    const cpus = native.numPossibleCpus();
    const perCpu = connects.entries();
    assert.equal(perCpu.length, 2);
    for (const [, v] of perCpu) assert.equal(v.length, 8 * cpus);

    // LPM trie has no batch ops: the same calls go through the per-element fallback.
    const cidrs = obj.map('cidrs');
    const cidr = (len: number, a: number): Buffer => {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(len, 0);
      b.writeUInt32BE(a, 4);
      return b;
    };
    cidrs.updateBatch([cidr(8, 0x0a000000), cidr(24, 0xc0a80100)], [u32(1), u32(2)]);
    const found = cidrs.entries().map(([k, v]) => `${k.readUInt32LE(0)}/${k.readUInt32BE(4).toString(16)}=${v.readUInt32LE(0)}`);
    assert.deepEqual(found.sort(), ['24/c0a80100=2', '8/a000000=1']);
    cidrs.deleteBatch([cidr(8, 0x0a000000)]);
    assert.equal(cidrs.keys().length, 1);
    assertNative(() => cidrs.deleteBatch([cidr(8, 0x0a000000)]), 'ENOENT', 'bpf_map_delete_elem');
  });

  await t.test('attachCgroup, pinned links, update, per-CPU counters after real connects', async () => {
    server = createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const obj = await loaded(3);
    const v1 = obj.program('count_connect');
    const v2 = obj.program('count_connect_v2');
    const connects = obj.map('connects');
    const type = 'cgroup_inet4_connect';

    assertNative(() => v1.attachCgroup(join(cgroup, 'missing')), 'ENOENT', 'open');
    const link = v1.attachCgroup(cgroup);
    links.push(link);
    assert.equal(link.progId, v1.id);
    assert.equal(link.cgroupId, native.cgroupId(cgroup), 'cgroupId names the cgroup it is attached to');
    assert.deepEqual(native.queryCgroup(cgroup, type).progIds, [v1.id]);

    await connectFromCgroup(cgroup, port, 5);
    assert.equal(sumPerCpu(connects.lookupPerCpu(u32(0))), 15n); // 5 connects × setConst 3
    assert.equal(connects.lookup(u32(0))!.length, 8 * native.numPossibleCpus());
    assert.equal(sumPerCpu(connects.lookupPerCpu(u32(1))), 0n);

    // Pinned: the attachment survives closing the handle that made it.
    const linkPin = join(pinDir, 'connect4-link');
    link.pin(linkPin);
    const linkId = link.id;
    link.close();
    const pinned = native.BpfLink.openPinned(linkPin);
    links.push(pinned);
    assert.equal(pinned.id, linkId);
    assert.deepEqual(native.queryCgroup(cgroup, type).progIds, [v1.id]);
    assertNative(() => native.BpfLink.openPinned(join(pinDir, 'missing')), 'ENOENT', 'bpf_link__open');

    // update() swaps the program in place.
    pinned.update(v2);
    assert.equal(pinned.progId, v2.id);
    assert.deepEqual(native.queryCgroup(cgroup, type).progIds, [v2.id]);
    await connectFromCgroup(cgroup, port, 2);
    assert.equal(sumPerCpu(connects.lookupPerCpu(u32(1))), 6n);
    assert.equal(sumPerCpu(connects.lookupPerCpu(u32(0))), 15n);

    assert.equal(pinned.cgroupId, native.cgroupId(cgroup), 'also on a re-opened pin');
    pinned.detach();
    assert.deepEqual(native.queryCgroup(cgroup, type).progIds, []);
    assert.equal(pinned.cgroupId, 0n, 'a detached link has no cgroup');
    pinned.unpin();
    assert.equal(existsSync(linkPin), false);
    pinned.close();
    assert.deepEqual(native.queryCgroup(cgroup, type).progIds, []);
    assert.throws(() => native.queryCgroup(cgroup, 'no_such_type'), TypeError);
  });

  await t.test('pinRoot: a second load adopts the first one\'s pinned map', async () => {
    const root = join(pinDir, 'adopt');
    const first = open(root);
    await first.load();
    const firstMap = first.map('adopted');
    firstMap.update(u32(7), u32(70));
    const id = firstMap.id;
    first.close();

    assert.ok(existsSync(join(root, 'adopted')));
    const byPath = native.BpfMap.openPinned(join(root, 'adopted'));
    assert.deepEqual([byPath.id, byPath.type, byPath.name], [id, 'hash', 'adopted']);
    assert.deepEqual(byPath.lookup(u32(7)), u32(70));
    byPath.close();

    const second = open(root);
    await second.load();
    const secondMap = second.map('adopted');
    assert.equal(secondMap.id, id);
    assert.deepEqual(secondMap.lookup(u32(7)), u32(70));

    // Explicit pin / unpin of an unpinned map, and kind checking on openPinned.
    const kvPin = join(pinDir, 'kv');
    second.map('kv').pin(kvPin);
    const reopened = native.BpfMap.openPinned(kvPin);
    assert.equal(reopened.id, second.map('kv').id);
    reopened.close();
    assertNative(() => second.map('kv').pin(kvPin), 'EEXIST', 'bpf_obj_pin');
    second.map('kv').unpin(kvPin);
    assert.equal(existsSync(kvPin), false);
    assertNative(() => second.map('kv').unpin(kvPin), 'ENOENT', 'unlink');

    const link = second.program('count_connect').attachCgroup(cgroup);
    links.push(link);
    const linkPin = join(pinDir, 'not-a-map');
    link.pin(linkPin);
    assertNative(() => native.BpfMap.openPinned(linkPin), 'EINVAL', 'bpf_obj_get');
    assertNative(() => native.BpfLink.openPinned(join(root, 'adopted')), 'EINVAL', 'bpf_link__open');
    link.unpin();
    link.close();
    assert.deepEqual(native.queryCgroup(cgroup, 'cgroup_inet4_connect').progIds, []);
  });

  await t.test('attachToMap / detachFromMap on a SOCKHASH', async () => {
    const obj = await loaded();
    const socks = obj.map('socks');
    const prog = obj.program('pass_msg');
    assertNative(() => prog.detachFromMap(socks, 'sk_msg_verdict'), 'ENOENT', 'bpf_prog_detach2');
    prog.attachToMap(socks, 'sk_msg_verdict');
    prog.detachFromMap(socks, 'sk_msg_verdict');
    assertNative(() => prog.detachFromMap(socks, 'sk_msg_verdict'), 'ENOENT', 'bpf_prog_detach2');
    assert.throws(() => prog.attachToMap(socks, 'sk_msg_nonsense'), TypeError);
    assert.throws(() => prog.attachToMap({} as never, 'sk_msg_verdict'), TypeError);
    // The sk_msg program on a connect4 hook is refused by the kernel, not by the addon.
    assertNative(() => obj.program('count_connect').attachToMap(socks, 'sk_msg_verdict'), 'EINVAL', 'bpf_prog_attach');
  });

  await t.test('setLogger receives libbpf lines, including the verifier log', async () => {
    const lines: Array<[native.LibbpfLevel, string]> = [];
    native.setLogger((level, message) => lines.push([level, message]));
    const bad = open(undefined, unverifiableObj);
    assert.ok(lines.some(([, m]) => m.includes('loading object')), 'main-thread lines arrive synchronously');
    await assert.rejects(bad.load(), (e: native.NativeError) => {
      assert.ok(e.code === 'EACCES' || e.code === 'EINVAL', e.code);
      assert.equal(e.op, 'bpf_object__load');
      // Lines printed on the load worker thread arrive before the promise settles.
      assert.ok(lines.some(([level, m]) => level === 'warn' && /invalid mem access/.test(m)),
        'verifier log reached the logger');
      return true;
    });
    assert.ok(lines.every(([level]) => ['warn', 'info', 'debug'].includes(level)));
    native.setLogger(() => { throw new Error('a throwing logger must not break libbpf'); });
    open().close();
    native.setLogger(null);
    const before = lines.length;
    open().close();
    assert.equal(lines.length, before);
  });

  await t.test('garbage collection: a map handle keeps its object; finalizers close fds', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const openMapIds = (): number[] => readdirSync('/proc/self/fdinfo').flatMap((fd) => {
      let text = '';
      try { text = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'); } catch { return []; } // fd closed meanwhile
      const m = /^map_id:\s*(\d+)$/m.exec(text);
      return m ? [Number(m[1])] : [];
    });
    const settle = async (done: () => boolean): Promise<boolean> => {
      for (let i = 0; i < 50 && !done(); i++) { gc(); await new Promise((r) => setImmediate(r)); }
      return done();
    };
    // Only the map handle references the object: collecting the object now would close
    // the fd under the live handle.
    let kv: native.BpfMap | undefined = await (async () => {
      const obj = native.BpfObject.open(fixtureObj, { pinRoot: join(pinDir, 'maps') });
      await obj.load();
      return obj.map('kv');
    })();
    const id = kv.id;
    await settle(() => false);
    kv.update(u32(1), u64(1));
    assert.deepEqual(kv.lookup(u32(1)), u64(1));
    assert.ok(openMapIds().includes(id));
    kv = undefined;
    assert.ok(await settle(() => !openMapIds().includes(id)), 'finalizers closed the object and its map fds');
  });

  await t.test('close semantics', async () => {
    const obj = await loaded();
    const kv = obj.map('kv');
    const prog = obj.program('count_connect');
    obj.close();
    obj.close();
    assertNative(() => obj.programNames, 'EBADF');
    assertNative(() => obj.map('kv'), 'EBADF');
    assertNative(() => kv.lookup(u32(1)), 'EBADF', 'bpf_map_lookup_elem');
    assertNative(() => kv.fd, 'EBADF');
    assertNative(() => prog.fd, 'EBADF');
    assertNative(() => prog.attachCgroup(cgroup), 'EBADF');
    await assert.rejects(obj.load(), (e: native.NativeError) => e.code === 'EBADF');

    const again = await loaded();
    const link = again.program('count_connect').attachCgroup(cgroup);
    link.close();
    link.close();
    assertNative(() => link.id, 'EBADF');
    assertNative(() => link.pin(join(pinDir, 'x')), 'EBADF');
    // An unpinned link ends its attachment when closed.
    assert.deepEqual(native.queryCgroup(cgroup, 'cgroup_inet4_connect').progIds, []);

    const map = again.map('kv');
    map.close();
    map.close();
    assertNative(() => map.keys(), 'EBADF');
    assertNative(() => map.type, 'EBADF');
    assert.equal(again.map('kv').keys().length, 0, 'closing one handle leaves the object usable');
  });
});
