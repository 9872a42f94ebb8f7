// resolvePodCgroup against fake cgroup trees in a temp dir: both kubelet cgroup drivers,
// every QoS class, a nested (kind-style) layout, decoys that must not match.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolvePodCgroup } from '../../agent/discovery/pod-cgroup';

const UID = '6f0c1a9e-3b7d-4c2e-9a51-0d8e2f4b7c10';
const U_ = UID.replace(/-/g, '_');
const OTHER = '11111111-2222-3333-4444-555555555555';

function tree(t: { after(fn: () => void): void }, dirs: string[]): string {
  const root = mkdtempSync(join(tmpdir(), `wt-cg-${process.pid}-`));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  for (const d of dirs) mkdirSync(join(root, d), { recursive: true });
  return root;
}

function expectAt(root: string, rel: string, got: ReturnType<typeof resolvePodCgroup>): void {
  assert.ok(got, `expected to find ${rel}`);
  assert.equal(got.path, join(root, rel));
  assert.equal(got.id, statSync(join(root, rel), { bigint: true }).ino);
}

const cases: { name: string; qos?: 'Guaranteed' | 'Burstable' | 'BestEffort'; rel: string }[] = [
  { name: 'systemd burstable', qos: 'Burstable', rel: `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice` },
  { name: 'systemd besteffort', qos: 'BestEffort', rel: `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${U_}.slice` },
  { name: 'systemd guaranteed', qos: 'Guaranteed', rel: `kubepods.slice/kubepods-pod${U_}.slice` },
  { name: 'cgroupfs burstable', qos: 'Burstable', rel: `kubepods/burstable/pod${UID}` },
  { name: 'cgroupfs besteffort', qos: 'BestEffort', rel: `kubepods/besteffort/pod${UID}` },
  { name: 'cgroupfs guaranteed', qos: 'Guaranteed', rel: `kubepods/pod${UID}` },
  { name: 'no qos given', rel: `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${U_}.slice` },
  { name: 'nested kubelet (kind)', qos: 'Burstable', rel: `kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod${U_}.slice` },
  { name: 'qos hint wrong, found by search', qos: 'Guaranteed', rel: `kubepods/burstable/pod${UID}` },
];

for (const c of cases) {
  test(`resolvePodCgroup: ${c.name}`, (t) => {
    const root = tree(t, [
      c.rel,
      `${c.rel}/cri-containerd-abc.scope`,                       // a container inside: not the pod
      `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${OTHER.replace(/-/g, '_')}.slice`,
      `kubepods/besteffort/pod${OTHER}`,
      'system.slice/containerd.service',
    ]);
    expectAt(root, c.rel, resolvePodCgroup(UID, root, c.qos));
  });
}

test('resolvePodCgroup: upper-case UID is matched as the lower-case directory', (t) => {
  const rel = `kubepods/burstable/pod${UID}`;
  const root = tree(t, [rel]);
  expectAt(root, rel, resolvePodCgroup(UID.toUpperCase(), root, 'Burstable'));
});

test('resolvePodCgroup: missing pod, a file of that name, and malformed UIDs give undefined', (t) => {
  const root = tree(t, ['kubepods/burstable', `kubepods/besteffort/pod${OTHER}`]);
  assert.equal(resolvePodCgroup(UID, root), undefined);
  writeFileSync(join(root, `kubepods/burstable/pod${UID}`), '');
  assert.equal(resolvePodCgroup(UID, root, 'Burstable'), undefined);
  for (const bad of ['', '../../etc', `${UID}/..`, 'pod']) assert.equal(resolvePodCgroup(bad, root), undefined, bad);
  assert.equal(resolvePodCgroup(UID, join(root, 'does-not-exist')), undefined);
});

test('resolvePodCgroup: the search does not wander outside kubelet trees', (t) => {
  // A pod-named directory under an unrelated service must not be taken for the pod.
  const root = tree(t, [`system.slice/other.service/pod${UID}`]);
  assert.equal(resolvePodCgroup(UID, root), undefined);
});
