// The demo's network: a fabric namespace with a bridge (the "data-centre switch", where
// the control API and the live view live), and one namespace per simulated node joined to
// the bridge by a veth pair. Each node owns the /24s of the policy Workloads on it (their
// addresses sit on its loopback) and routes every other node's /24 via that node's fabric
// address. No namespace has a default route: a packet the mesh fails to rewrite (a VIP
// nobody balanced) goes nowhere, and nothing can leave the machine.
//
//   weft-demo-<pid>-fabric   br0 10.249.0.254/24  (control API :15010, live view)
//     ├─ veth ─ weft-demo-<pid>-node-1  eth0 10.249.0.1/24, lo 10.250.1.x/32
//     ├─ veth ─ weft-demo-<pid>-node-2  eth0 10.249.0.2/24, lo 10.250.2.x/32
//     └─ veth ─ weft-demo-<pid>-node-3  ...
import { createNetns, destroyNetns, ip, listNetns } from './netns';
import { FABRIC_HOST_IP, type DemoPlan } from './plan';

const DEMO_PREFIX = 'weft-demo-';

export interface Topology {
  prefix: string;
  fabric: string;
  /** node name → namespace name */
  nodes: Map<string, string>;
}

export function demoPrefix(pid = process.pid): string { return `${DEMO_PREFIX}${pid}-`; }

/** Builds the namespaces; on any failure removes what it made and rethrows. */
export function createTopology(plan: DemoPlan, prefix: string): Topology {
  const topo: Topology = { prefix, fabric: `${prefix}fabric`, nodes: new Map() };
  try {
    createNetns(topo.fabric);
    ip(['-n', topo.fabric, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', topo.fabric, 'addr', 'add', `${FABRIC_HOST_IP}/24`, 'dev', 'br0']);
    ip(['-n', topo.fabric, 'link', 'set', 'br0', 'up']);
    for (const node of plan.nodes) {
      const ns = `${prefix}${node.name}`;
      createNetns(ns);
      topo.nodes.set(node.name, ns);
      // Both ends are created directly in their namespaces: nothing appears on the host.
      const port = `veth-${node.name}`.slice(0, 15);
      ip(['link', 'add', port, 'netns', topo.fabric, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      ip(['-n', topo.fabric, 'link', 'set', port, 'master', 'br0', 'up']);
      ip(['-n', ns, 'addr', 'add', `${node.fabricIp}/24`, 'dev', 'eth0']);
      ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      for (const app of node.apps) if (app.address) ip(['-n', ns, 'addr', 'add', `${app.address}/32`, 'dev', 'lo']);
    }
    for (const node of plan.nodes) {
      for (const other of plan.nodes) {
        if (other === node) continue;
        for (const subnet of other.subnets) ip(['-n', topo.nodes.get(node.name)!, 'route', 'add', subnet, 'via', other.fabricIp]);
      }
    }
  } catch (e) {
    destroyTopology(topo);
    throw e;
  }
  return topo;
}

/** Deletes the namespaces (killing whatever still runs in them); veths and the bridge go
 *  with them. Errors are collected, not thrown: teardown must get as far as it can. */
export function destroyTopology(topo: Pick<Topology, 'prefix'>): string[] {
  const problems: string[] = [];
  for (const ns of listNetns().filter((n) => n.startsWith(topo.prefix))) {
    try { destroyNetns(ns); } catch (e) { problems.push((e as Error).message); }
  }
  return problems;
}

/** Namespaces left by demo runs, grouped by the pid that made them. */
export function demoNamespaces(): Map<number, string[]> {
  const byPid = new Map<number, string[]>();
  for (const ns of listNetns()) {
    const m = new RegExp(`^${DEMO_PREFIX}(\\d+)-`).exec(ns);
    if (!m) continue;
    const pid = Number(m[1]);
    byPid.set(pid, [...(byPid.get(pid) ?? []), ns]);
  }
  return byPid;
}
