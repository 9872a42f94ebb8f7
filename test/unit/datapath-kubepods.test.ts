// findKubepodsRoot against fake cgroup trees in a temp dir: both kubelet drivers at the
// root, nested kubelets (kind, k3s), decoys that must not match, and the search bounds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { findKubepodsRoot, isKubepodsDir } from '../../agent/datapath/kubepods';

function tree(t: { after(fn: () => void): void }, dirs: string[]): string {
  const root = mkdtempSync(join(tmpdir(), `wt-kp-${process.pid}-`));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  for (const d of dirs) mkdirSync(join(root, d), { recursive: true });
  return root;
}

const POD = 'kubepods-burstable-pod6f0c1a9e_3b7d_4c2e_9a51_0d8e2f4b7c10.slice';

const cases: { name: string; dirs: string[]; want: string | undefined }[] = [
  { name: 'systemd driver at the root', want: 'kubepods.slice',
    dirs: [`kubepods.slice/kubepods-burstable.slice/${POD}/cri-containerd-abc.scope`, 'system.slice/containerd.service', 'user.slice'] },
  { name: 'cgroupfs driver at the root', want: 'kubepods',
    dirs: ['kubepods/burstable/pod6f0c1a9e-3b7d-4c2e-9a51-0d8e2f4b7c10/abc', 'kubepods/besteffort', 'system.slice'] },
  { name: 'the root one wins over a nested one', want: 'kubepods.slice',
    dirs: ['kubepods.slice', 'kubelet.slice/kubelet-kubepods.slice'] },
  { name: 'kind: nested under kubelet.slice', want: 'kubelet.slice/kubelet-kubepods.slice',
    dirs: [`kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/${POD}`, 'system.slice/containerd.service', 'init.scope'] },
  { name: 'kind node container: three levels down', want: 'system.slice/docker-1234.scope/kubelet.slice/kubelet-kubepods.slice',
    dirs: ['system.slice/docker-1234.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice', 'system.slice/cron.service'] },
  { name: 'k3s cgroupfs: nested kubepods', want: 'k3s/kubepods',
    dirs: ['k3s/kubepods/burstable', 'k3s/k3s-server'] },
  { name: 'no kubelet on this node', want: undefined,
    dirs: ['system.slice/containerd.service', 'user.slice/user-0.slice', 'weft/node-1/workloads'] },
  { name: 'QoS slices and pods are not the tree', want: undefined,
    dirs: [`other.slice/kubepods-burstable.slice/${POD}`, 'other.slice/kubepods-besteffort.slice'] },
  { name: 'too deep for the bounded search', want: undefined,
    dirs: ['a/b/c/d/kubepods'] },
  { name: "weft's own tree is not searched", want: undefined,
    dirs: ['weft/node-1/kubepods'] },
];

for (const c of cases) {
  test(`findKubepodsRoot: ${c.name}`, (t) => {
    const root = tree(t, c.dirs);
    assert.equal(findKubepodsRoot(root), c.want === undefined ? undefined : join(root, c.want));
  });
}

test('findKubepodsRoot: a file named kubepods is not a cgroup', (t) => {
  const root = tree(t, ['system.slice']);
  writeFileSync(join(root, 'kubepods'), '');
  writeFileSync(join(root, 'kubepods.slice'), '');
  assert.equal(findKubepodsRoot(root), undefined);
});

test('findKubepodsRoot: a missing root gives undefined', () => {
  assert.equal(findKubepodsRoot(join(tmpdir(), `wt-kp-missing-${process.pid}`)), undefined);
});

test('findKubepodsRoot: the search reads a bounded number of directories', (t) => {
  // 1100 sibling slices at depth 1, the tree hidden below the last one: over budget.
  const dirs = Array.from({ length: 1100 }, (_, i) => `s${String(i).padStart(4, '0')}.slice`);
  const root = tree(t, [...dirs, 's1099.slice/kubelet-kubepods.slice']);
  assert.equal(findKubepodsRoot(root), undefined);
  // Below the first one, it is found.
  mkdirSync(join(root, 's0000.slice', 'kubelet-kubepods.slice'));
  assert.equal(findKubepodsRoot(root), join(root, 's0000.slice', 'kubelet-kubepods.slice'));
});

test('isKubepodsDir: the tree, not its QoS slices or pods', () => {
  for (const n of ['kubepods', 'kubepods.slice', 'kubelet-kubepods.slice']) assert.equal(isKubepodsDir(n), true, n);
  for (const n of ['kubepods-burstable.slice', 'kubepods-besteffort.slice', 'kubelet-kubepods-burstable.slice', POD, 'kubepods.scope', 'xkubepods', 'kubepods2']) {
    assert.equal(isKubepodsDir(n), false, n);
  }
});
