// The pure parts of the Kubernetes harness (no root needed): kubelet's cgroup naming,
// checked against weft's own pod-cgroup resolver on a directory tree shaped the same;
// the OCI config runc gets for default and privileged, host-network and hostPID
// containers; downward-API env and $(VAR) expansion; kubelet's /etc/hosts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerScope, newContainerId, podCgroupDir } from '../lib/kube-cgroups';
import { ociConfig, REPO_ROOT } from '../lib/runc';
import { expandVars, fieldPathValue, podObject } from '../lib/k8s-objects';
import { hostsFileContent } from '../lib/cluster';
import { loadDaemonSet, podOptionsFromTemplate } from '../lib/pod-template';
import { podQosClass } from '../lib/k8s-store';
import { resolvePodCgroup } from '../../agent/discovery/pod-cgroup';

const UID = '6f1c2b3a-4d5e-4f60-8a9b-0c1d2e3f4a5b';

test('kubelet cgroup names (systemd driver), found by weft\'s resolver under a node\'s tree', (t) => {
  const base = 'weft-e2e-abcd/ip-10-0-1-2.ec2.internal';
  assert.equal(podCgroupDir(base, UID, 'Burstable'), `${base}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f1c2b3a_4d5e_4f60_8a9b_0c1d2e3f4a5b.slice`);
  assert.equal(podCgroupDir(base, UID, 'BestEffort'), `${base}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6f1c2b3a_4d5e_4f60_8a9b_0c1d2e3f4a5b.slice`);
  assert.equal(podCgroupDir(base, UID, 'Guaranteed'), `${base}/kubepods.slice/kubepods-pod6f1c2b3a_4d5e_4f60_8a9b_0c1d2e3f4a5b.slice`);
  assert.throws(() => podCgroupDir(base, '../../etc', 'Burstable'), /RFC 4122/);
  const id = newContainerId();
  assert.match(id, /^[0-9a-f]{64}$/);
  assert.equal(containerScope(id), `cri-containerd-${id}.scope`);
  assert.throws(() => containerScope('abc'), /64 hex/);

  const root = mkdtempSync(join(tmpdir(), 'weft-kube-cg-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  for (const qos of ['Burstable', 'BestEffort', 'Guaranteed'] as const) {
    const uid = UID.replace(/^6f/, qos === 'Burstable' ? 'a1' : qos === 'BestEffort' ? 'b2' : 'c3');
    const dir = join(root, podCgroupDir(base, uid, qos));
    mkdirSync(join(dir, containerScope(newContainerId())), { recursive: true });
    // The agent sees the node's tree as its cgroup root (the DaemonSet's /sys/fs/cgroup).
    assert.equal(resolvePodCgroup(uid, join(root, base), qos)?.path, dir);
    assert.equal(resolvePodCgroup(uid, join(root, base))?.path, dir, `${qos} without a hint`);
  }
});

test('OCI config: default vs privileged, host network, hostPID, mounts and propagation, the cgroup hook', () => {
  const base = { runcRoot: '/r', workDir: '/w', cgroupParent: 'weft-e2e-x/n1/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podx.slice', args: ['node', 'server.js'], id: 'a'.repeat(64) };
  const hook = { script: '/w/hook.sh', v2Dir: '/sys/fs/cgroup/unified/x' };
  type Cfg = {
    process: { args: string[]; env: string[]; capabilities: { bounding: string[] } };
    mounts: { destination: string; source: string; options: string[]; type: string }[];
    linux: { cgroupsPath: string; namespaces: { type: string; path?: string }[]; maskedPaths?: string[]; readonlyPaths?: string[]; rootfsPropagation: string; resources: { devices: { allow: boolean }[] } };
    hooks: { createRuntime: { path: string; args: string[] }[] };
    hostname: string;
  };
  const def = ociConfig({ ...base, netns: '/run/netns/wkp-1-2', env: { A: 'b' }, hostsFile: '/w/hosts' }, '/w/rootfs', hook) as Cfg;
  assert.deepEqual(def.process.args, ['node', 'server.js']);
  assert.ok(def.process.env.includes('A=b'));
  assert.ok(def.process.env.some((e) => e.startsWith('PATH=')));
  assert.equal(def.linux.cgroupsPath, `/${base.cgroupParent}/cri-containerd-${'a'.repeat(64)}.scope`);
  assert.deepEqual(def.linux.namespaces.find((n) => n.type === 'network'), { type: 'network', path: '/run/netns/wkp-1-2' });
  assert.ok(def.linux.namespaces.some((n) => n.type === 'pid'));
  assert.ok(def.linux.maskedPaths?.includes('/proc/kcore'));
  assert.ok(!def.process.capabilities.bounding.includes('CAP_SYS_ADMIN'));
  assert.equal(def.linux.resources.devices[0]!.allow, false);
  assert.deepEqual(def.hooks.createRuntime[0]!.args, ['sh', '/w/hook.sh', '/sys/fs/cgroup/unified/x']);
  const dest = (c: Cfg, d: string) => c.mounts.filter((m) => m.destination === d);
  assert.equal(dest(def, '/etc/hosts')[0]!.source, '/w/hosts');
  assert.equal(dest(def, '/opt/weft')[0]!.source, REPO_ROOT);
  assert.ok(dest(def, REPO_ROOT)[0]!.options.includes('ro'));
  assert.ok(dest(def, '/usr')[0]!.options.includes('ro'));
  assert.ok(dest(def, '/sys')[0]!.options.includes('ro'));
  assert.equal(def.linux.rootfsPropagation, 'rprivate');

  assert.equal(def.linux.namespaces.find((n) => n.type === 'cgroup'), undefined);
  const priv = ociConfig({
    ...base, netns: 'host', hostPID: true, privileged: true, mountRepo: false, cgroupns: '/proc/42/ns/cgroup',
    mounts: [{ source: '/sys/fs/bpf', destination: '/sys/fs/bpf', propagation: 'rshared' }, { source: '/sys/fs/cgroup/unified', destination: '/sys/fs/cgroup', propagation: 'rslave', readonly: true }],
  }, '/w/rootfs', hook) as Cfg;
  assert.equal(priv.linux.namespaces.find((n) => n.type === 'network'), undefined, 'host network: no network namespace');
  assert.equal(priv.linux.namespaces.find((n) => n.type === 'pid'), undefined, 'hostPID: no pid namespace');
  assert.deepEqual(priv.linux.namespaces.find((n) => n.type === 'cgroup'), { type: 'cgroup', path: '/proc/42/ns/cgroup' });
  assert.equal(priv.linux.maskedPaths, undefined);
  assert.equal(priv.linux.readonlyPaths, undefined);
  assert.ok(priv.process.capabilities.bounding.includes('CAP_SYS_ADMIN'));
  assert.ok(dest(priv, '/sys')[0]!.options.includes('rw'));
  assert.equal(priv.linux.resources.devices[0]!.allow, true);
  assert.equal(dest(priv, '/opt/weft').length, 0);
  assert.ok(dest(priv, '/sys/fs/bpf')[0]!.options.includes('rshared'));
  // The hostPath over /sys/fs/cgroup comes after runc's own cgroup mount, so it wins.
  const cg = priv.mounts.map((m, i) => [m, i] as const).filter(([m]) => m.destination === '/sys/fs/cgroup');
  assert.deepEqual(cg.map(([m]) => m.type), ['cgroup', 'bind']);
  assert.ok(cg[1]![0].options.includes('rslave') && cg[1]![0].options.includes('ro'));
  assert.equal(priv.linux.rootfsPropagation, 'rshared');
});

test('downward API env, $(VAR) expansion, kubelet\'s /etc/hosts', () => {
  const pod = podObject({ name: 'web', namespace: 'shop', nodeName: 'ip-10-0-1-2.ec2.internal', serviceAccount: 'web', qos: 'Burstable', containerName: 'app', args: [], labels: { app: 'web' } });
  pod.status = { podIP: '10.81.1.2', hostIP: '10.80.0.11' };
  (pod.metadata as Record<string, unknown>).uid = UID;
  assert.equal(fieldPathValue(pod, 'spec.nodeName'), 'ip-10-0-1-2.ec2.internal');
  assert.equal(fieldPathValue(pod, 'status.hostIP'), '10.80.0.11');
  assert.equal(fieldPathValue(pod, 'metadata.uid'), UID);
  assert.equal(fieldPathValue(pod, "metadata.labels['app']"), 'web');
  assert.throws(() => fieldPathValue(pod, 'spec.containers'), /unsupported/);
  const env = { NODE_NAME: 'n1', NODE_IP: '10.80.0.11' };
  assert.equal(expandVars('--node=$(NODE_NAME)', env), '--node=n1');
  assert.equal(expandVars('--outbound=$(NODE_IP):15001', env), '--outbound=10.80.0.11:15001');
  assert.equal(expandVars('$(MISSING) $$(NODE_NAME)', env), '$(MISSING) $(NODE_NAME)');
  const hosts = hostsFileContent({ ip: '10.81.1.2', name: 'web' }, [{ ip: '10.80.0.2', hostnames: ['weft-control.weft-system.svc'] }]);
  assert.match(hosts, /^# Kubernetes-managed hosts file\.$/m);
  assert.match(hosts, /^10\.81\.1\.2\tweb$/m);
  assert.match(hosts, /^10\.80\.0\.2\tweft-control\.weft-system\.svc$/m);
  const spec = pod.spec as { containers: { resources: unknown }[] };
  assert.deepEqual(spec.containers[0]!.resources, { requests: { cpu: '10m', memory: '32Mi' } });
});

test('deploy/agent-daemonset.yaml as pod options: image entrypoint + args, downward API env, host mounts mapped, configMap and projected token volumes, the rest of the spec kept', () => {
  const ds = loadDaemonSet('deploy/agent-daemonset.yaml');
  assert.equal(ds.name, 'weft-agent');
  assert.equal(ds.namespace, 'weft-system');
  assert.throws(() => podOptionsFromTemplate(ds), /volume ca .*volumeSources/);
  const o = podOptionsFromTemplate(ds, {
    hostPathMap: { '/sys/fs/cgroup': '/sys/fs/cgroup/unified/weft-e2e-x/n1', '/var/lib/weft': '/tmp/state' },
    volumeSources: { ca: '/tmp/ca' },
    hostAliases: [{ ip: '10.80.0.2', hostnames: ['weft-control.weft-system.svc'] }],
  });
  assert.match(o.name, /^weft-agent-[a-z0-9]{5}$/);
  assert.equal(o.serviceAccount, 'weft-agent');
  assert.equal(o.args[0], '/opt/weft/bin/weft');
  assert.equal(o.args[1], 'agent');
  assert.ok(o.args.includes('--node=$(NODE_NAME)'));
  assert.equal(o.cwd, '/opt/weft');
  assert.deepEqual(o.env?.NODE_NAME, { fieldPath: 'spec.nodeName' });
  assert.deepEqual(o.env?.NODE_IP, { fieldPath: 'status.hostIP' });
  assert.equal(o.hostNetwork, true);
  assert.equal(o.hostPID, true);
  assert.equal(o.privileged, true);
  const m = Object.fromEntries((o.mounts ?? []).map((x) => [x.name, x]));
  assert.deepEqual([m.bpffs!.hostPath, m.bpffs!.mountPath, m.bpffs!.mountPropagation], ['/sys/fs/bpf', '/sys/fs/bpf', 'Bidirectional']);
  assert.deepEqual([m.cgroup!.hostPath, m.cgroup!.mountPath, m.cgroup!.mountPropagation], ['/sys/fs/cgroup/unified/weft-e2e-x/n1', '/sys/fs/cgroup', 'HostToContainer']);
  assert.equal(m.state!.hostPath, '/tmp/state');
  assert.deepEqual([m['control-token']!.serviceAccountToken, m['control-token']!.readOnly], [{ audience: 'weft-control', expirationSeconds: 3600, path: 'token' }, true]);
  assert.equal(podQosClass({ containers: [{ resources: o.resources }] }), 'Burstable');

  // The Pod object it makes looks like the template: args without the entrypoint, probes,
  // tolerations, priority class, owner.
  const pod = podObject({ name: o.name, namespace: o.namespace!, nodeName: 'n1', serviceAccount: o.serviceAccount!, qos: 'Burstable', containerName: o.containerName!, args: o.args, env: o.env, hostNetwork: o.hostNetwork, hostPID: o.hostPID, privileged: o.privileged, volumes: o.mounts, hostAliases: o.hostAliases, resources: o.resources, overrides: o.overrides, labels: o.labels });
  const spec = pod.spec as { priorityClassName: string; dnsPolicy: string; tolerations: unknown[]; hostAliases: unknown[]; containers: { name: string; args: string[]; command?: string[]; readinessProbe?: unknown; lifecycle?: unknown; resources: unknown }[] };
  assert.equal(spec.priorityClassName, 'system-node-critical');
  assert.equal(spec.dnsPolicy, 'ClusterFirstWithHostNet');
  assert.deepEqual(spec.tolerations, [{ operator: 'Exists' }]);
  assert.equal(spec.hostAliases.length, 1);
  assert.equal(spec.containers[0]!.name, 'agent');
  assert.equal(spec.containers[0]!.args[0], 'agent');
  assert.equal(spec.containers[0]!.command, undefined);
  assert.ok(spec.containers[0]!.readinessProbe && spec.containers[0]!.lifecycle);
  assert.deepEqual(spec.containers[0]!.resources, { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2', memory: '512Mi' } });
  assert.equal((pod.metadata!.ownerReferences as { kind: string; name: string }[])[0]!.kind, 'DaemonSet');
  assert.equal(pod.metadata!.labels!['app.kubernetes.io/name'], 'weft-agent');
  const volumes = (pod.spec as { volumes: { name: string; projected?: unknown }[] }).volumes;
  assert.deepEqual(volumes.find((v) => v.name === 'control-token')?.projected, { sources: [{ serviceAccountToken: { audience: 'weft-control', expirationSeconds: 3600, path: 'token' } }] });
});
