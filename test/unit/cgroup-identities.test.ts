// CgroupIdentities against fake cgroup trees in a temp dir (a cgroup v2 id is the
// directory's inode number, which any directory has): a pod's container cgroups name the
// pod, a restarted container (a new directory) is found on demand, and ids of nobody's
// cgroups are not re-scanned on every connection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CgroupIdentities } from '../../agent/node/cgroup-identities';
import type { LocalWorkload } from '../../agent/node/workloads';

function ino(p: string): bigint { return statSync(p, { bigint: true }).ino; }

function podTree(t: { after(fn: () => void): void }) {
  const root = mkdtempSync(join(tmpdir(), `wt-cgid-${process.pid}-`));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const pod = join(root, 'kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda_b.slice');
  const c1 = join(pod, `cri-containerd-${'1'.repeat(64)}.scope`);
  mkdirSync(c1, { recursive: true });
  const other = join(root, 'kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podc_d.slice/crio-2.scope');
  mkdirSync(other, { recursive: true });
  const w: LocalWorkload = { name: 'web-0', namespace: 'shop', serviceAccount: 'web', labels: {}, address: '10.1.0.5', cgroupPath: pod, cgroupId: ino(pod).toString() };
  return { root, pod, c1, other, w };
}

test('CgroupIdentities: the pod cgroup and its containers name the pod; a restart keeps it', (t) => {
  const { pod, c1, other, w } = podTree(t);
  const ids = new CgroupIdentities([w]);
  assert.equal(ids.lookup(ino(pod))?.name, 'web-0');
  assert.equal(ids.lookup(ino(c1))?.name, 'web-0', 'a container cgroup is resolved on demand');
  assert.equal(ids.lookup(ino(other)), undefined, 'a cgroup of a pod that is not meshed');
  // The container restarts: kubelet makes a new scope under the same pod cgroup.
  rmSync(c1, { recursive: true });
  const c2 = join(pod, `cri-containerd-${'2'.repeat(64)}.scope`);
  mkdirSync(c2);
  assert.equal(ids.lookup(ino(c2))?.serviceAccount, 'web');
});

test('CgroupIdentities: a removed workload names nobody; misses are not re-scanned at once', (t) => {
  const { pod, c1, w } = podTree(t);
  const ids = new CgroupIdentities([w]);
  assert.ok(ids.lookup(ino(c1)));
  ids.replace([]);
  assert.equal(ids.lookup(ino(c1)), undefined);
  assert.equal(ids.lookup(ino(pod)), undefined);
  // Back again: the negative cache was cleared by replace().
  ids.replace([w]);
  assert.equal(ids.lookup(ino(c1))?.name, 'web-0');
  // A container that appears right after a miss is found once the miss expires (1 s),
  // not before: one stat walk per unknown id and second at most.
  const late = join(pod, 'crio-3.scope');
  const unknown = ino(w.cgroupPath) + 1_000_000n;
  assert.equal(ids.lookup(unknown), undefined);
  mkdirSync(late);
  assert.equal(ids.lookup(ino(late))?.name, 'web-0', 'a different id is scanned for');
});
