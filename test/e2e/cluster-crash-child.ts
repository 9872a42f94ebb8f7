// Child of cluster-harness.test.ts: builds a cluster with a node and a running pod,
// prints what it made, then dies by SIGKILL (no cleanup runs), like a crashed test run.
import { createCluster } from '../lib/cluster';

void (async () => {
  const cluster = await createCluster();
  const node = await cluster.addNode('crash-node.example');
  const pod = await cluster.addPod(node, { name: 'orphan', qos: 'Burstable', args: ['sleep', '600'] });
  process.stdout.write(`${JSON.stringify({ workDir: cluster.workDir, cgroupBase: cluster.cgroupBase, podPid: pod.container.pid, apiPid: cluster.apiserver.pid, netns: [cluster.lan.name, node.netns.name, pod.netns.name] })}\n`);
  process.kill(process.pid, 'SIGKILL');
})();
