// A single-machine Kubernetes "cluster" for e2e tests: network namespaces for the
// nodes, the pods and a control plane, runc containers in kubelet-shaped cgroups for the
// pods, and the fake API server (fake-apiserver.ts) holding the objects kubelet,
// scheduler and controllers would have written.
//
//   lan netns: bridge lan0, 10.80.0.0/24 — a switch joining
//     cp        10.80.0.2   the fake API server (https://10.80.0.2:6443), later weft control
//     node i    10.80.0.(10+i), pods on its bridge cbr0: 10.81.i.0/24, gateway 10.81.i.1
//     outsider  10.80.0.99  a machine on the LAN that is not part of the cluster
//   Every member has a route to every node's pod CIDR via that node; nodes forward.
//   cgroups: <cg2>/weft-e2e-<rand>/<node name>/kubepods.slice/... per node (like kind),
//   and a cgroup namespace per node rooted there, which the node's pods join: inside,
//   /proc/self/cgroup reads 0::/kubepods.slice/..., as on a real node.
//
//   const cluster = await createCluster(t);        // cleanup registered with t.after
//   const node = await cluster.addNode('ip-10-0-1-2.ec2.internal');
//   const pod = await cluster.addPod(node, { name: 'web', namespace: 'shop', qos: 'Burstable', args: [...] });
//   await cluster.restartContainer(pod);
//   await cluster.deletePod(pod);
//   await cluster.cleanup();                        // idempotent
//
// Nothing here sends traffic from the host namespace: every address above lives only
// inside the namespaces the cluster creates.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { cgroup2Root } from '../../agent/datapath/layout';
import { apiClient, type ApiClient } from './k8s-client';
import { podQosClass, type KObject } from './k8s-store';
import {
  endpointSliceObject, expandVars, fieldPathValue, nodeObject, podObject, runningPodStatus, serviceObject,
  type ContainerPort, type ContainerTermination, type EndpointSliceInput, type EnvValue, type HostPathVolume, type ObjectOverrides, type ServiceInput,
} from './k8s-objects';
import { podCgroupDir, removeCgroupTree, type QosClass } from './kube-cgroups';
import { API_AUDIENCE } from './k8s-tokens';
import { bridge, createNetns, netnsPath, podOnBridge, type ExecResult, type Netns } from './netns';
import { REPO_ROOT, runcDeleteAll, runcList, startContainer, type Container, type ContainerMount } from './runc';

export const LAN_CIDR = '10.80.0.0/24';
export const CP_IP = '10.80.0.2';
export const OUTSIDER_IP = '10.80.0.99';
export const APISERVER_PORT = 6443;
const nodeIp = (i: number): string => `10.80.0.${10 + i}`;
const podCidr = (i: number): string => `10.81.${i}.0/24`;

export interface ClusterNode {
  readonly name: string;
  /** 1-based. */
  readonly index: number;
  /** The node's address on the LAN (InternalIP). */
  readonly ip: string;
  readonly podCIDR: string;
  /** The node's address on cbr0 (the pods' gateway). */
  readonly gateway: string;
  readonly netns: Netns;
  readonly netnsPath: string;
  /** The node's cgroup subtree, relative to the cgroup roots (weft-e2e-<rand>/<name>). */
  readonly cgroupBase: string;
  /** Absolute cgroup v2 path of that subtree (the agent's cgroup root on this node would be
   *  <cg2>, and the pods are below <cg2>/<cgroupBase>/kubepods.slice). */
  readonly cgroupPath: string;
  /** The node's cgroup namespace (rooted at cgroupPath), which every pod on it joins, so
   *  /proc/<pid>/cgroup inside reads 0::/kubepods.slice/... as on a real (kind) node. */
  readonly cgroupnsPath: string;
  readonly pods: Set<Pod>;
  nextPodHost: number;
}

export interface PodOptions {
  name: string;
  namespace?: string;
  serviceAccount?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  qos?: QosClass;
  /** Command and arguments ($(VAR) expanded from env, as kubelet does). */
  args: string[];
  /** Plain values or downward-API fields ({ fieldPath: 'status.hostIP' }). */
  env?: Record<string, EnvValue>;
  ports?: ContainerPort[];
  containerName?: string;
  hostNetwork?: boolean;
  hostPID?: boolean;
  privileged?: boolean;
  /** hostPath volumes (mountPropagation Bidirectional → rshared, HostToContainer → rslave). */
  mounts?: HostPathVolume[];
  hostAliases?: { ip: string; hostnames: string[] }[];
  /** Mount ca.crt, token, namespace at /var/run/secrets/kubernetes.io/serviceaccount (default true). */
  automountServiceAccountToken?: boolean;
  cwd?: string;
  /** Exact requests/limits; the QoS class then follows from them (qos, if given, must agree). */
  resources?: Record<string, Record<string, string>>;
  /** Extra fields for the Pod object (e.g. probes, tolerations, ownerReferences). */
  overrides?: ObjectOverrides;
}

export interface Pod {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
  readonly node: ClusterNode;
  readonly ip: string;
  readonly qos: QosClass;
  readonly hostNetwork: boolean;
  /** The pod's own netns (the node's for hostNetwork pods). */
  readonly netns: Netns;
  /** Pod-level cgroup, relative and absolute (v2). */
  readonly cgroupRel: string;
  readonly cgroupPath: string;
  /** The running container (replaced by restartContainer). */
  container: Container;
  restartCount: number;
  /** Logs of containers this pod had before (kubectl logs --previous). */
  readonly previousLogs: { id: string; stdout: string; stderr: string }[];
  /** Runs argv in the container (kubectl exec). */
  exec(argv: string[], env?: Record<string, string>, opts?: { timeoutMs?: number; input?: string }): Promise<ExecResult>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  logs(): { stdout: string; stderr: string };
  /** The Pod object as the API server has it now. */
  object(): Promise<KObject>;
}

interface PodInternal extends Pod {
  spec: { opts: PodOptions; env: Record<string, string>; args: string[]; mounts: ContainerMount[]; hostsFile?: string; saDir?: string; workDir: string };
  startTime: string;
  startedAt: string;
  ownNetns?: Netns;
  deleted: boolean;
}

export interface ApiServerInfo {
  url: string;
  kubeconfigPath: string;
  /** ca.crt, token, kubeconfig. */
  dir: string;
  caPath: string;
  token: string;
  socketPath: string;
  pid: number;
}

export interface ClusterOptions {
  /** Passed to the fake API server (e.g. bookmark interval for tests). */
  apiserverArgs?: string[];
}

const waitExit = (c: ChildProcess, ms: number): Promise<boolean> =>
  c.exitCode !== null || c.signalCode !== null ? Promise.resolve(true)
    : new Promise((r) => { const t = setTimeout(() => r(false), ms); c.once('exit', () => { clearTimeout(t); r(true); }); });

export class Cluster {
  readonly id = randomBytes(4).toString('hex');
  /** Relative cgroup path of the whole cluster: weft-e2e-<id>. */
  readonly cgroupBase = `weft-e2e-${this.id}`;
  readonly workDir: string;
  readonly runcRoot: string;
  readonly nodes = new Map<string, ClusterNode>();
  lan!: Netns;
  cp!: Netns;
  outsider!: Netns;
  apiserver!: ApiServerInfo;
  api!: ApiClient;
  private lanBridge = 'lan0';
  private apiProcess?: ChildProcess;
  private apiStderr = '';
  private readonly netnses: Netns[] = [];
  /** Processes holding the nodes' cgroup namespaces. */
  private readonly holders: ChildProcess[] = [];
  private cleaned = false;
  private readonly exitHook = (): void => this.cleanupSync();

  constructor() {
    // The pid in the name tells sweepStaleClusters() whether the run that made it is gone.
    this.workDir = mkdtempSync(join(tmpdir(), `weft-e2e-${this.id}-p${process.pid}-`));
    this.runcRoot = join(this.workDir, 'runc');
    process.once('exit', this.exitHook);
  }

  /** Builds the LAN, the control plane and the outsider, and starts the API server. */
  async start(opts: ClusterOptions = {}): Promise<void> {
    mkdirSync(join(cgroup2Root(), this.cgroupBase));
    this.lan = this.netns('wke-lan');
    bridge(this.lan, '', this.lanBridge);
    this.cp = this.netns('wke-cp');
    podOnBridge(this.lan, this.lanBridge, this.cp, `${CP_IP}/24`);
    this.outsider = this.netns('wke-out');
    podOnBridge(this.lan, this.lanBridge, this.outsider, `${OUTSIDER_IP}/24`);
    await this.startApiServer(opts.apiserverArgs ?? []);
  }

  private netns(prefix: string): Netns {
    const ns = createNetns(prefix);
    this.netnses.push(ns);
    return ns;
  }

  private async startApiServer(extra: string[]): Promise<void> {
    const dir = join(this.workDir, 'apiserver');
    mkdirSync(dir);
    const socketPath = join(dir, 'admin.sock');
    // `ip netns exec` as an operator would start it; the server needs nothing from /sys.
    const child = spawn('ip', ['netns', 'exec', this.cp.name, process.execPath, '--import', 'tsx', join(REPO_ROOT, 'test/lib/fake-apiserver.ts'),
      '--listen', `${CP_IP}:${APISERVER_PORT}`, '--dir', dir, '--admin-socket', socketPath, ...extra], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    this.apiProcess = child;
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { this.apiStderr = (this.apiStderr + d).slice(-8000); });
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fake API server not ready after 30 s: ${this.apiStderr}`)), 30_000);
      createInterface(child.stdout!).once('line', (l) => { clearTimeout(timer); resolve(l); });
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`fake API server exited (${code}): ${this.apiStderr}`)); });
    });
    const ready = JSON.parse(line) as { url: string; kubeconfig: string; pid: number };
    this.apiserver = {
      url: ready.url, kubeconfigPath: ready.kubeconfig, dir, caPath: join(dir, 'ca.crt'),
      token: readFileSync(join(dir, 'token'), 'utf8'), socketPath, pid: ready.pid,
    };
    this.api = apiClient(socketPath);
  }

  /** Stderr of the API server process so far (for failure messages). */
  apiserverLog(): string {
    return this.apiStderr;
  }

  async addNode(name: string, opts: { zone?: string; labels?: Record<string, string> } = {}): Promise<ClusterNode> {
    if (this.nodes.has(name)) throw new Error(`node ${name} exists`);
    const index = this.nodes.size + 1;
    if (index > 80) throw new Error('at most 80 nodes');
    const ns = this.netns(`wke-n${index}`);
    const ip = nodeIp(index), cidr = podCidr(index), gateway = `10.81.${index}.1`;
    podOnBridge(this.lan, this.lanBridge, ns, `${ip}/24`);
    bridge(ns, `${gateway}/24`, 'cbr0');
    ns.run(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    // Routes to this node's pods from everyone on the LAN, and from it to every other node's.
    for (const other of [this.cp, this.outsider, ...[...this.nodes.values()].map((n) => n.netns)]) other.run(['ip', 'route', 'add', cidr, 'via', ip]);
    for (const n of this.nodes.values()) ns.run(['ip', 'route', 'add', n.podCIDR, 'via', n.ip]);
    const cgroupBase = join(this.cgroupBase, name);
    const cgroupPath = join(cgroup2Root(), cgroupBase);
    // What kubelet creates at start: the node's kubepods tree with its QoS slices.
    for (const d of ['kubepods.slice/kubepods-burstable.slice', 'kubepods.slice/kubepods-besteffort.slice']) mkdirSync(join(cgroupPath, d), { recursive: true });
    const cgroupnsPath = await this.nodeCgroupNamespace(cgroupPath);
    const node: ClusterNode = { name, index, ip, podCIDR: cidr, gateway, netns: ns, netnsPath: netnsPath(ns), cgroupBase, cgroupPath, cgroupnsPath, pods: new Set(), nextPodHost: 2 };
    this.nodes.set(name, node);
    await this.api.create('nodes', nodeObject({ name, internalIP: ip, podCIDR: cidr, zone: opts.zone, labels: opts.labels, kernelVersion: release() }));
    return node;
  }

  /**
   * A cgroup namespace whose root is the node's cgroup (as a kind node container has):
   * a holder process enters the node's cgroup, unshares its cgroup namespace there (the
   * root is fixed at that moment) and is then moved out to <cluster>/cgns-holders, so
   * the node's cgroup holds no process of its own. Pods join it by path.
   */
  private async nodeCgroupNamespace(nodeCgroup: string): Promise<string> {
    const holders = join(cgroup2Root(), this.cgroupBase, 'cgns-holders');
    mkdirSync(holders, { recursive: true });
    const child = spawn('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec unshare --cgroup sleep infinity', nodeCgroup], { stdio: 'ignore' });
    this.holders.push(child);
    const ns = `/proc/${child.pid}/ns/cgroup`;
    const own = readlinkSync('/proc/self/ns/cgroup');
    const deadline = Date.now() + 5000;
    for (;;) {
      let target = own, comm = '';
      try { target = readlinkSync(ns); comm = readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim(); } catch { /* not yet, or gone */ }
      if (target !== own && comm === 'sleep') break;
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`cgroup namespace holder for ${nodeCgroup} did not start`);
      await new Promise((r) => setTimeout(r, 10));
    }
    writeFileSync(join(holders, 'cgroup.procs'), String(child.pid));
    return ns;
  }

  private async ensureNamespace(namespace: string): Promise<void> {
    if (await this.api.find('namespaces', undefined, namespace)) return;
    try { await this.api.create('namespaces', { metadata: { name: namespace } }); } catch (e) {
      if ((e as { code?: number }).code !== 409) throw e;
    }
  }

  async addPod(nodeRef: ClusterNode | string, o: PodOptions): Promise<Pod> {
    const node = typeof nodeRef === 'string' ? this.nodes.get(nodeRef) : nodeRef;
    if (!node) throw new Error(`no node ${String(nodeRef)}`);
    const namespace = o.namespace ?? 'default';
    const qos = o.qos ?? (o.resources ? podQosClass({ containers: [{ resources: o.resources }] }) : 'BestEffort');
    const containerName = o.containerName ?? 'app';
    await this.ensureNamespace(namespace);
    // The scheduler's decision is in the object from the start (spec.nodeName).
    const created = await this.api.create('pods', podObject({
      name: o.name, namespace, nodeName: node.name, serviceAccount: o.serviceAccount ?? 'default', labels: o.labels, annotations: o.annotations,
      qos, containerName, args: o.args, env: o.env, ports: o.ports, hostNetwork: o.hostNetwork, hostPID: o.hostPID, privileged: o.privileged,
      volumes: o.mounts, hostAliases: o.hostAliases, resources: o.resources, overrides: o.overrides,
    }));
    const uid = created.metadata!.uid as string;
    const apiQos = (created.status as { qosClass: QosClass }).qosClass;
    if (apiQos !== qos) throw new Error(`pod ${o.name}: the API server computed QoS ${apiQos}, want ${qos}`);
    const startTime = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const workDir = join(this.workDir, 'pods', `${namespace}_${o.name}_${uid.slice(0, 8)}`);
    mkdirSync(workDir, { recursive: true });
    const cgroupRel = podCgroupDir(node.cgroupBase, uid, qos);
    mkdirSync(join(cgroup2Root(), cgroupRel), { recursive: true });

    let netns: Netns, ip: string, ownNetns: Netns | undefined;
    if (o.hostNetwork) {
      netns = node.netns;
      ip = node.ip;
    } else {
      if (node.nextPodHost > 254) throw new Error(`node ${node.name}: pod CIDR exhausted`);
      ip = `10.81.${node.index}.${node.nextPodHost++}`;
      ownNetns = this.netns('wke-p');
      netns = ownNetns;
      podOnBridge(node.netns, 'cbr0', ownNetns, `${ip}/24`, node.gateway);
    }
    const withIp: KObject = { ...created, status: { ...(created.status as object), podIP: ip, hostIP: node.ip } };
    const env: Record<string, string> = {
      KUBERNETES_SERVICE_HOST: CP_IP, KUBERNETES_SERVICE_PORT: String(APISERVER_PORT), KUBERNETES_SERVICE_PORT_HTTPS: String(APISERVER_PORT),
      KUBERNETES_PORT: `tcp://${CP_IP}:${APISERVER_PORT}`,
    };
    for (const [k, v] of Object.entries(o.env ?? {})) env[k] = typeof v === 'string' ? expandVars(v, env) : fieldPathValue(withIp, v.fieldPath);
    const args = o.args.map((a) => expandVars(a, env));
    // Projected ServiceAccount tokens: requested for this Pod (TokenRequest, bound to its
    // uid) and written where the container sees them, as kubelet does. Not refreshed: a
    // test is shorter than the token's lifetime.
    const podMounts = await Promise.all((o.mounts ?? []).map(async (m) => {
      if (!m.serviceAccountToken) return m;
      const dir = join(workDir, `projected-${m.name}`);
      mkdirSync(dir, { recursive: true });
      const { audience, expirationSeconds, path } = m.serviceAccountToken;
      const token = await this.api.requestToken(namespace, o.serviceAccount ?? 'default', {
        audiences: [audience ?? API_AUDIENCE], ...(expirationSeconds ? { expirationSeconds } : {}), pod: { name: o.name, uid },
      });
      writeFileSync(join(dir, path), token, { mode: 0o600 });
      return { ...m, hostPath: dir, readOnly: true };
    }));
    const mounts: ContainerMount[] = podMounts.map((m) => ({
      source: m.hostPath, destination: m.mountPath, readonly: m.readOnly,
      propagation: m.mountPropagation === 'Bidirectional' ? 'rshared' : m.mountPropagation === 'HostToContainer' ? 'rslave' : 'rprivate',
    }));
    for (const m of podMounts) {
      if (m.type === 'DirectoryOrCreate') mkdirSync(m.hostPath, { recursive: true });
      else if (!existsSync(m.hostPath)) throw new Error(`pod ${o.name}: hostPath ${m.hostPath} does not exist`);
    }
    let saDir: string | undefined;
    if (o.automountServiceAccountToken !== false) {
      saDir = join(workDir, 'serviceaccount');
      mkdirSync(saDir);
      writeFileSync(join(saDir, 'ca.crt'), readFileSync(this.apiserver.caPath));
      writeFileSync(join(saDir, 'token'), this.apiserver.token, { mode: 0o600 });
      writeFileSync(join(saDir, 'namespace'), namespace);
      mounts.push({ source: saDir, destination: '/var/run/secrets/kubernetes.io/serviceaccount', readonly: true });
    }
    const hostsFile = join(workDir, 'etc-hosts');
    writeFileSync(hostsFile, hostsFileContent(o.hostNetwork ? undefined : { ip, name: o.name }, o.hostAliases ?? []));

    const pod: PodInternal = {
      name: o.name, namespace, uid, node, ip, qos, hostNetwork: !!o.hostNetwork, netns, cgroupRel, cgroupPath: join(cgroup2Root(), cgroupRel),
      container: undefined as unknown as Container, restartCount: 0, previousLogs: [],
      spec: { opts: o, env, args, mounts, hostsFile, saDir, workDir },
      startTime, startedAt: startTime, ownNetns, deleted: false,
      exec: (argv, e, eo) => pod.container.exec(argv, e, eo),
      kill: (sig) => pod.container.kill(sig),
      logs: () => pod.container.logs(),
      object: () => this.api.get('pods', namespace, o.name),
    };
    node.pods.add(pod);
    pod.container = await this.runContainer(pod);
    await this.reportStatus(pod);
    return pod;
  }

  private runContainer(pod: PodInternal): Promise<Container> {
    const o = pod.spec.opts;
    pod.startedAt = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    return startContainer({
      runcRoot: this.runcRoot, workDir: pod.spec.workDir, cgroupParent: pod.cgroupRel, args: pod.spec.args, env: pod.spec.env, cwd: o.cwd,
      netns: pod.hostNetwork ? pod.node.netnsPath : netnsPath(pod.netns), cgroupns: pod.node.cgroupnsPath,
      hostPID: o.hostPID, privileged: o.privileged, mounts: pod.spec.mounts, hostsFile: pod.spec.hostsFile,
      hostname: pod.hostNetwork ? pod.node.name.split('.')[0] : o.name,
    });
  }

  private async reportStatus(pod: PodInternal, last?: ContainerTermination): Promise<void> {
    const current = await this.api.get('pods', pod.namespace, pod.name);
    current.status = runningPodStatus({
      podIP: pod.ip, hostIP: pod.node.ip, qosClass: pod.qos, startTime: pod.startTime, containerName: pod.spec.opts.containerName ?? 'app',
      current: { id: pod.container.id, startedAt: pod.startedAt }, restartCount: pod.restartCount, last,
    });
    await this.api.updateStatus('pods', current);
  }

  /**
   * What kubelet does when a container dies: a new container (new id, so a new
   * cri-containerd-<id>.scope) in the same pod cgroup and network namespace, and a
   * status with restartCount+1, the new containerID and the old one as lastState.
   * `signal` is what the old container gets first (SIGKILL: a crash; SIGTERM: a
   * stop, SIGKILL after `graceMs`).
   */
  async restartContainer(p: Pod, opts: { signal?: NodeJS.Signals; graceMs?: number } = {}): Promise<void> {
    const pod = p as PodInternal;
    if (pod.deleted) throw new Error(`pod ${pod.name} is deleted`);
    const old = pod.container;
    const finishedAt = await stopContainer(old, opts.signal ?? 'SIGKILL', opts.graceMs ?? 10_000);
    const exitCode = await old.wait();
    pod.previousLogs.push({ id: old.id, ...old.logs() });
    const startedAt = pod.startedAt;
    await old.delete();
    pod.restartCount++;
    pod.container = await this.runContainer(pod);
    await this.reportStatus(pod, { id: old.id, exitCode, startedAt, finishedAt, ...(exitCode > 128 ? { signal: exitCode - 128 } : {}) });
  }

  /**
   * Removes the pod: its container stops (SIGTERM, SIGKILL after `graceMs`), the object
   * goes from the API server, then the network namespace and the pod cgroup.
   * `apiFirst`: delete the object before stopping the container (a forced deletion).
   */
  async deletePod(p: Pod, opts: { graceMs?: number; apiFirst?: boolean } = {}): Promise<void> {
    const pod = p as PodInternal;
    if (pod.deleted) return;
    pod.deleted = true;
    if (opts.apiFirst) await this.api.delete('pods', pod.namespace, pod.name);
    await stopContainer(pod.container, 'SIGTERM', opts.graceMs ?? 5000);
    await pod.container.delete();
    if (!opts.apiFirst) await this.api.delete('pods', pod.namespace, pod.name);
    pod.ownNetns?.destroy();
    const left = await removeCgroupTree(pod.cgroupRel);
    pod.node.pods.delete(pod);
    rmSync(pod.spec.workDir, { recursive: true, force: true });
    if (left.length) throw new Error(`pod ${pod.name}: cgroups left: ${left.join('; ')}`);
  }

  async addService(s: Omit<ServiceInput, 'namespace'> & { namespace?: string }): Promise<KObject> {
    const namespace = s.namespace ?? 'default';
    await this.ensureNamespace(namespace);
    return this.api.create('services', serviceObject({ ...s, namespace }));
  }

  /** An EndpointSlice for a Service; `pods` fill endpoints (address, node, targetRef). */
  async addEndpointSlice(e: Omit<EndpointSliceInput, 'namespace' | 'endpoints'> & { namespace?: string; endpoints?: EndpointSliceInput['endpoints']; pods?: { pod: Pod; ready?: boolean }[] }): Promise<KObject> {
    const namespace = e.namespace ?? 'default';
    const svc = await this.api.find('services', namespace, e.service);
    const endpoints = [...(e.endpoints ?? []), ...(e.pods ?? []).map(({ pod, ready }) => ({
      ip: pod.ip, ready: ready ?? true, nodeName: pod.node.name, pod: { name: pod.name, namespace: pod.namespace, uid: pod.uid },
    }))];
    return this.api.create('endpointslices', endpointSliceObject({ ...e, namespace, endpoints, serviceUid: e.serviceUid ?? (svc?.metadata?.uid as string | undefined) }));
  }

  /** Removes everything: containers, API server, namespaces, cgroups, runc state, files.
   *  Idempotent; collects errors and throws them together at the end. */
  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    process.removeListener('exit', this.exitHook);
    const errors: string[] = [];
    const attempt = async (what: string, fn: () => unknown): Promise<void> => {
      try { await fn(); } catch (e) { errors.push(`${what}: ${(e as Error).message}`); }
    };
    for (const node of this.nodes.values()) {
      for (const p of [...node.pods]) {
        const pod = p as PodInternal;
        await attempt(`container of ${pod.name}`, () => pod.container?.delete());
      }
    }
    if (this.apiProcess && this.apiProcess.exitCode === null) {
      this.apiProcess.kill('SIGTERM');
      if (!(await waitExit(this.apiProcess, 5000))) {
        errors.push('fake API server ignored SIGTERM for 5 s');
        this.apiProcess.kill('SIGKILL');
      }
    }
    await attempt('runc state', async () => {
      await runcDeleteAll(this.runcRoot);
      const left = await runcList(this.runcRoot);
      if (left.length) throw new Error(`containers left: ${left.map((c) => c.id).join(', ')}`);
    });
    for (const h of this.holders) {
      if (h.exitCode === null && h.signalCode === null) { h.kill('SIGKILL'); await waitExit(h, 5000); }
    }
    for (const ns of this.netnses.reverse()) await attempt(`netns ${ns.name}`, () => ns.destroy());
    await attempt('cgroups', async () => {
      const left = await removeCgroupTree(this.cgroupBase);
      if (left.length) throw new Error(left.join('; '));
    });
    await attempt('work dir', () => rmSync(this.workDir, { recursive: true, force: true }));
    if (errors.length) throw new Error(`cluster cleanup: ${errors.join(' | ')}`);
  }

  /** Last resort on process exit (a crashed test): synchronous, best effort. */
  private cleanupSync(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    try { this.apiProcess?.kill('SIGKILL'); } catch { /* gone */ }
    for (const h of this.holders) { try { h.kill('SIGKILL'); } catch { /* gone */ } }
    try { writeFileSync(join(cgroup2Root(), this.cgroupBase, 'cgroup.kill'), '1'); } catch { /* none */ }
    for (const ns of this.netnses.reverse()) { try { ns.destroy(); } catch { /* best effort */ } }
    // rmdir needs the processes gone and runc's state needs runc: neither fits a
    // synchronous exit handler. The work dir stays, named with our pid, so the next
    // run's sweepStaleClusters() finishes the job (runc state, cgroups, the dir).
  }
}

/** Sends `signal`, then SIGKILL after `graceMs` if it still runs; returns the finish time. */
async function stopContainer(c: Container, signal: NodeJS.Signals, graceMs: number): Promise<string> {
  if (!c.exited()) {
    await c.kill(signal);
    if (signal !== 'SIGKILL') {
      const done = await Promise.race([c.wait().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), graceMs))]);
      if (!done) await c.kill('SIGKILL');
    }
    await c.wait();
  }
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** kubelet's managed /etc/hosts: localhost lines, the pod's own name, hostAliases. For
 *  host-network pods the node's /etc/hosts plus the aliases. */
export function hostsFileContent(self: { ip: string; name: string } | undefined, aliases: { ip: string; hostnames: string[] }[]): string {
  let s: string;
  if (self) {
    s = ['# Kubernetes-managed hosts file.', '127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', 'fe00::0\tip6-localnet',
      'fe00::0\tip6-mcastprefix', 'fe00::1\tip6-allnodes', 'fe00::2\tip6-allrouters', `${self.ip}\t${self.name}`, ''].join('\n');
  } else {
    s = `# Kubernetes-managed hosts file (host network).\n${readFileSync('/etc/hosts', 'utf8')}`;
    if (!s.endsWith('\n')) s += '\n';
  }
  if (aliases.length) s += `\n# Entries added by HostAliases.\n${aliases.map((a) => `${a.ip}\t${a.hostnames.join('\t')}`).join('\n')}\n`;
  return s;
}

const pidAlive = (pid: number): boolean => {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
};

/**
 * Removes what clusters of crashed runs left behind (runs whose process is gone; live
 * runs, e.g. other engineers' in parallel, are left alone): their runc containers,
 * cgroup trees, work dirs, and network namespaces (wke-*-<pid>-<n>). Returns what it removed.
 */
export async function sweepStaleClusters(): Promise<string[]> {
  const removed: string[] = [];
  for (const entry of readdirSync(tmpdir())) {
    const m = /^weft-e2e-([0-9a-f]{8})-p(\d+)-/.exec(entry);
    if (!m || pidAlive(Number(m[2]))) continue;
    const dir = join(tmpdir(), entry);
    await runcDeleteAll(join(dir, 'runc')).catch(() => undefined);
    await removeCgroupTree(`weft-e2e-${m[1]}`).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    removed.push(dir, `cgroup weft-e2e-${m[1]}`);
  }
  const names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
  for (const name of names) {
    const m = /^wke-[a-z0-9]+-(\d+)-\d+$/.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    for (const pid of execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
      try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
    }
    try { execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' }); removed.push(`netns ${name}`); } catch { /* raced */ }
  }
  return removed;
}

/** A started cluster (LAN, control plane with the API server, outsider). With a test
 *  context, cleanup runs in t.after even when the test fails. */
export async function createCluster(t?: { after: (fn: () => Promise<void>) => void }, opts: ClusterOptions = {}): Promise<Cluster> {
  const c = new Cluster();
  t?.after(() => c.cleanup());
  try {
    await c.start(opts);
  } catch (e) {
    if (!t) await c.cleanup().catch(() => undefined);
    throw e;
  }
  return c;
}
