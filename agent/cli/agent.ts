// `weft agent`: the node agent, or with --cleanup the uninstaller of everything an agent
// created on this node.
import type { Command } from './command';
import { parseFlags, parseHostPort } from './command';
import { invalidArg } from '../lib/errors';
import { createRootLogger } from '../telemetry/logger';
import { usableCores } from '../node/cpus';
import { validateNodeName } from '../datapath/layout';
import { CGROUP2_MOUNT } from '../node/host-mounts';

/** How long a worker that lost its supervisor (or got SIGTERM itself) drains. */
const ORPHAN_GRACE_MS = 2_000;

/** More workers than this buys nothing but memory: the kernel's accept spreading and
 *  the primary's per-change fan-out both grow with N. */
export const MAX_WORKERS = 64;

/** The default leaves one core to the node's workloads (the agent proxies their traffic,
 *  so starving them gains nothing) and stops at 8: each worker is a V8 heap (~120 MiB
 *  RSS under load), and a node that needs more sets --workers. Measured on a 2-core
 *  VM (README, bench:l7): two workers there spent 2.1-2.7x HAProxy's CPU per gRPC
 *  request against 1.7-1.9x for one, as the load and its origin shared the same cores. */
export const DEFAULT_MAX_WORKERS = 8;

export function defaultWorkers(cores = usableCores()): number {
  return Math.max(1, Math.min(DEFAULT_MAX_WORKERS, cores - 1));
}

const help = `Usage: weft agent --control HOST:PORT --node NAME [flags]
       weft agent --cleanup [--force] --node NAME

Runs the weft node agent: loads the eBPF datapath (or adopts the one a previous agent
process left pinned, without a gap in traffic), syncs policy snapshots from the control
API, and serves the outbound (15001), inbound mTLS (15008) and admin (15020) listeners.

Flags:
  --control HOST:PORT     control API address (required)
  --node NAME             node name; scopes cgroups and BPF pins (required)
  --token-file FILE       node bootstrap token (default /etc/weft/token), sent until the
                          agent holds its node certificate, which replaces it
  --control-ca FILE       CA bundle (PEM) the control API's TLS certificate must chain to:
                          what 'weft control' writes to STATE_DIR/ca-bundle.pem or
                          --ca-bundle-out (required unless --control-insecure)
  --control-insecure      plaintext to the control API (loopback demos only; the
                          control API must run with --insecure)
  --state-dir DIR         snapshot cache, workload registrations (default /var/lib/weft/NODE)
  --admin HOST:PORT       admin listener: /metrics /healthz /readyz /debug (default 127.0.0.1:15020);
                          on a non-loopback address, changes (workload registration) from
                          other hosts need the token in STATE_DIR/admin-token
  --outbound HOST:PORT    outbound capture listener, the kernel's redirect target (default 127.0.0.1:15001)
  --inbound HOST:PORT     inbound HBONE mTLS listener (default 0.0.0.0:15008)
  --node-address IP       this node's address, given to workloads started with 'weft run'
                          (default: the --outbound host)
  --log-level LEVEL       fatal|error|warn|info|debug|trace (default info, or $WEFT_LOG_LEVEL)
  --access-log-sample F   write this fraction (0..1) of proxied requests to the JSON
                          access log; 5xx are always logged once it is on (default 0: off)
  --workers N             worker processes that serve L7 and mTLS connections, 1 to ${MAX_WORKERS}
                          (default: usable CPU cores minus one, 1 to ${DEFAULT_MAX_WORKERS}; usable
                          = affinity mask capped by the cgroup CPU quota)
  --cleanup               remove every program, link, pin and cgroup of --node, then exit;
                          refuses (exit 1, naming the pid) while an agent of the node runs
                          or is starting
  --force                 with --cleanup: stop the node's running agent first: its
                          processes are frozen (SIGSTOP) so none re-creates anything, the
                          node is removed, then they are killed (connections through the
                          agent are cut; L4 traffic stops being balanced)

DNS (mesh names, without kube-dns):
  --dns on|off            answer NAME.NAMESPACE.svc.<cluster domain> (and NAME.NAMESPACE,
                          NAME.NAMESPACE.svc, bare NAME in the caller's namespace) with the
                          Service's VIP, forward every other name to the node's resolvers,
                          and capture workloads' DNS in the kernel: UDP and TCP to port 53
                          of any IPv4 resolver go to the agent (default: on, off with
                          --kubernetes, where kube-dns answers)
  --dns-listen HOST:PORT  the DNS listener, the kernel's redirect target (default: the
                          --outbound host, port 15053)
  --dns-upstream IP[:PORT][,…]  resolvers for names outside the mesh (default: the
                          nameservers of the node's /etc/resolv.conf)
  --cluster-domain NAME   the mesh names' domain (default: MeshConfig clusterDomain, else
                          cluster.local)

Kubernetes (the DaemonSet):
  --kubernetes            mesh the pods kubelet runs on this node: attach to kubelet's pod
                          cgroup tree, watch this node's Pods (and Namespaces) and take each
                          pod's identity from its namespace and service account; pods are
                          never registered by hand. The agent stays in its own pod's cgroup
  --kubeconfig FILE       Kubernetes API credentials (default: the in-cluster service
                          account, or $KUBECONFIG)
  --cgroup-root DIR       kubelet's pod cgroup tree (default: kubepods.slice or kubepods
                          found below the cgroup2 mount, also nested as in kind or k3s)
  --exclude-namespaces NS[,NS…]  namespaces whose pods are never meshed
                          (default kube-system,weft-system; '' for none)
  --pod-uid UID           the agent's own pod (default $POD_UID, from the downward API):
                          the kernel skips its cgroup
  --dataplane-default MODE  mesh (default): every pod is meshed unless it opts out;
                          none: only pods enrolled with weft.dev/dataplane-mode=mesh on
                          the pod or its namespace (opt-in, as Istio ambient)
Pods opt out with the label or annotation weft.dev/dataplane-mode=none, on the pod or on
its namespace. hostNetwork pods are never captured (their sockets are the node's).

The agent runs as a supervisor that holds the listening sockets and N worker processes
that all accept on them (the kernel spreads connections). The first worker, the
primary, also owns the BPF datapath, the control API connection, workload registration,
certificate signing and the admin port; it hands snapshots and certificates to the
others before a snapshot is acknowledged, and /metrics shows the node's totals over all
workers. SIGHUP replaces every worker without dropping a request (new workers start,
then the old ones drain); a crashed worker is replaced at once, and while the primary is
being replaced the other workers keep serving. SIGTERM/SIGINT drain and stop them all;
the pinned datapath stays, so L4 traffic keeps flowing until the next agent adopts it.
Use --cleanup to uninstall.

Start errors (no cgroup v2 or bpffs that can be mounted, a bad flag, an unreadable file)
end the agent with a non-zero exit and the reason. Without a cgroup v2 mount (e.g. under
'ip netns exec', which replaces /sys) the agent mounts one at ${CGROUP2_MOUNT}; without
bpffs it mounts it at /sys/fs/bpf; both are logged. Workers exit with their supervisor
(within ${ORPHAN_GRACE_MS / 1000}s of losing it), and /readyz fails when the node's pinned
programs are gone.`;


interface Flags {
  control?: string; node?: string; 'token-file'?: string; 'state-dir'?: string; admin?: string;
  outbound?: string; inbound?: string; 'node-address'?: string; 'log-level'?: string; cleanup?: boolean; force?: boolean;
  'access-log-sample'?: string; workers?: string; 'control-ca'?: string; 'control-insecure'?: boolean;
  kubernetes?: boolean; kubeconfig?: string; 'cgroup-root'?: string; 'exclude-namespaces'?: string; 'pod-uid'?: string; 'dataplane-default'?: string;
  dns?: string; 'dns-listen'?: string; 'dns-upstream'?: string; 'cluster-domain'?: string;
}

export const command: Command = {
  name: 'agent',
  summary: 'run the node agent (or --cleanup to uninstall it from a node)',
  help,
  async run(argv) {
    const { values: v, help: wantHelp } = parseFlags<Flags>(argv, {
      control: { type: 'string' }, node: { type: 'string' }, 'token-file': { type: 'string' }, 'state-dir': { type: 'string' },
      admin: { type: 'string' }, outbound: { type: 'string' }, inbound: { type: 'string' }, 'node-address': { type: 'string' },
      'log-level': { type: 'string' }, cleanup: { type: 'boolean' }, force: { type: 'boolean' }, 'access-log-sample': { type: 'string' },
      workers: { type: 'string' }, 'control-ca': { type: 'string' }, 'control-insecure': { type: 'boolean' },
      kubernetes: { type: 'boolean' }, kubeconfig: { type: 'string' }, 'cgroup-root': { type: 'string' },
      'exclude-namespaces': { type: 'string' }, 'pod-uid': { type: 'string' }, 'dataplane-default': { type: 'string' },
      dns: { type: 'string' }, 'dns-listen': { type: 'string' }, 'dns-upstream': { type: 'string' }, 'cluster-domain': { type: 'string' },
    });
    const sample = Number(v['access-log-sample'] ?? '0');
    if (!(sample >= 0 && sample <= 1)) throw invalidArg(`--access-log-sample: expected a fraction between 0 and 1, got '${v['access-log-sample']}'`);
    const workers = v.workers === undefined ? defaultWorkers() : Number(v.workers);
    if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) throw invalidArg(`--workers: expected a whole number from 1 to ${MAX_WORKERS}, got '${v.workers}'`);
    if (wantHelp) { process.stdout.write(help + '\n'); return 0; }
    if (!v.node) throw invalidArg('--node is required');
    // Kubernetes node names (DNS subdomains, e.g. ip-10-0-1-2.ec2.internal): refused here,
    // before anything is loaded or touched, when they are not one.
    try { validateNodeName(v.node); } catch (e) { throw invalidArg(`--node: ${(e as Error).message}`); }
    const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
    if (v['log-level'] && !levels.includes(v['log-level'])) throw invalidArg(`--log-level: expected one of ${levels.join('|')}`);
    if (v.force && !v.cleanup) throw invalidArg('--force needs --cleanup');
    createRootLogger({ level: (v['log-level'] ?? process.env.WEFT_LOG_LEVEL ?? 'info') as 'info', base: { node: v.node } });
    // cgroup2 and bpffs, mounted where missing (the supervisor does it for its workers:
    // they share its mount namespace), once the flags are known to be good. Failing that
    // is a start error.
    const ensureMounts = () => {
      if (process.env.WEFT_AGENT_WORKER === '1') return;
      const { ensureHostMounts } = require('../node/host-mounts') as typeof import('../node/host-mounts');
      const { componentLogger } = require('../telemetry/logger') as typeof import('../telemetry/logger');
      ensureHostMounts(componentLogger('mounts'));
    };

    // The datapath module is loaded only now: --help must work where BPF cannot.
    const { Datapath } = require('../datapath/datapath') as typeof import('../datapath/datapath');
    if (v.cleanup) {
      ensureMounts();
      const { cleanupNode } = require('../node/cleanup') as typeof import('../node/cleanup');
      const report = await cleanupNode(v.node, { force: v.force === true, cleanup: (n) => Datapath.cleanup(n), say: (l) => process.stderr.write(`weft agent: ${l}\n`) });
      process.stdout.write(`${JSON.stringify(report, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x), 2)}\n`);
      return 0;
    }
    if (!v.control) throw invalidArg('--control is required');
    parseHostPort(v.control, '--control');
    if (!v['control-ca'] === !v['control-insecure']) throw invalidArg('give exactly one of --control-ca FILE (TLS) and --control-insecure (plaintext)');
    const outbound = parseHostPort(v.outbound ?? '127.0.0.1:15001', '--outbound');
    const inbound = parseHostPort(v.inbound ?? '0.0.0.0:15008', '--inbound');
    const admin = parseHostPort(v.admin ?? '127.0.0.1:15020', '--admin');
    const { WORKER_ENV, Supervisor, inheritedListeners, workerIdentity } = require('../node/supervisor') as typeof import('../node/supervisor');
    const kubernetes = v.kubernetes ? kubernetesMode(v) : undefined;
    if (!v.kubernetes) for (const f of ['kubeconfig', 'cgroup-root', 'exclude-namespaces', 'pod-uid', 'dataplane-default'] as const) if (v[f] !== undefined) throw invalidArg(`--${f} needs --kubernetes`);
    const dns = dnsConfig(v, outbound);

    if (process.env[WORKER_ENV] !== '1') {
      // Files the primary needs are checked before anything is loaded or attached, so a
      // mistake in them is a clear error, not a datapath left behind.
      const { readTokenFile } = require('../lib/token-file') as typeof import('../lib/token-file');
      readTokenFile(v['token-file'] ?? '/etc/weft/token', '--token-file');
      if (v['control-ca']) {
        const { readFileSync } = require('node:fs') as typeof import('node:fs');
        try { readFileSync(v['control-ca']); } catch (e) {
          const { describeError } = require('../lib/errors') as typeof import('../lib/errors');
          throw invalidArg(`--control-ca: cannot read the control API CA bundle ${v['control-ca']}: ${describeError(e)}`);
        }
      }
      ensureMounts();
      // Announce this agent on the node (a concurrent --cleanup then refuses, or stops it
      // with --force); refused while a cleanup of the node runs.
      const { registerAgent } = require('../node/agent-lock') as typeof import('../node/agent-lock');
      const release = registerAgent(v.node);
      process.once('exit', release);
      // Supervisor: holds the listeners, runs the workers, replaces them on crash or SIGHUP.
      const sup = new Supervisor({
        args: argv, workers, handover: kubernetes !== undefined,
        listeners: [{ name: 'outbound', ...outbound }, { name: 'inbound', ...inbound }, { name: 'admin', ...admin }],
      });
      // Before start(): a SIGHUP while workers are still starting must not kill the
      // supervisor (the default action); it restarts them once they are up.
      const onHup = () => { void sup.restart(); };
      process.on('SIGHUP', onHup);
      await sup.start();
      await waitForStopSignal();
      process.off('SIGHUP', onHup);
      await sup.stop();
      return 0;
    }

    // The supervisor says when to drain. Without it (it died, even by SIGKILL: the IPC
    // channel closes, or this process is re-parented) or on a signal to this worker
    // itself, drain briefly and exit: an orphaned worker must not hold the node's sockets.
    let orphaned: (why: string) => void = () => {};
    let drainResolve: (graceMs: number) => void = () => {};
    const drainAsked = new Promise<number>((resolve) => {
      drainResolve = resolve;
      orphaned = (why) => {
        setTimeout(() => { process.stderr.write(`weft agent worker ${process.pid}: ${why}: exiting\n`); process.exit(1); }, ORPHAN_GRACE_MS + 3_000).unref();
        resolve(ORPHAN_GRACE_MS);
      };
      if (process.connected) process.once('disconnect', () => orphaned('supervisor gone'));
      const ppid = process.ppid;
      setInterval(() => { if (process.ppid !== ppid) orphaned('supervisor gone'); }, 500).unref();
      void waitForStopSignal().then(() => orphaned('signalled'));
    });
    const { WorkerLink } = require('../node/worker-link') as typeof import('../node/worker-link');
    const link = WorkerLink.ofProcess();
    link?.once('drain', (ms) => drainResolve(ms));
    const listenFds = inheritedListeners() ?? {};
    const me = workerIdentity();
    let agent: { drain(graceMs: number): Promise<void> };
    try {
      if (me.role === 'proxy' && link) {
        const { ProxyWorker } = require('../node/proxy-worker') as typeof import('../node/proxy-worker');
        agent = await ProxyWorker.start({ node: v.node, worker: me.worker, outbound, inbound, listenFds, accessLogSample: sample, link, kubernetes: kubernetes !== undefined });
      } else {
        const { NodeAgent } = require('../node/agent') as typeof import('../node/agent');
        agent = await NodeAgent.start({
          node: v.node,
          control: v.control,
          tokenFile: v['token-file'] ?? '/etc/weft/token',
          ...(v['control-ca'] ? { controlCa: v['control-ca'] } : {}),
          stateDir: v['state-dir'] ?? `/var/lib/weft/${v.node}`,
          admin,
          outbound,
          inbound,
          nodeAddress: v['node-address'] ?? outbound.host,
          listenFds,
          accessLogSample: sample,
          link,
          ...(kubernetes ? { kubernetes } : {}),
          ...(dns ? { dns } : {}),
        });
      }
    } catch (e) {
      // Tell the supervisor why (it exits with the reason), then let the IPC channel go
      // and make sure nothing else (a gRPC channel, a timer) keeps this process alive:
      // the supervisor must see the exit at once instead of waiting for readiness.
      const { describeError, isWeftError } = require('../lib/errors') as typeof import('../lib/errors');
      setTimeout(() => process.exit(isWeftError(e, 'WEFT_ERR_INVALID_ARG') ? 2 : 1), 1_000).unref();
      if (process.connected) {
        await new Promise<void>((r) => {
          const t = setTimeout(r, 500);
          process.send!({ type: 'fatal', reason: describeError(e) }, () => { clearTimeout(t); r(); });
        });
        if (process.connected) process.disconnect();
      }
      throw e;
    }
    link?.send({ type: 'ready' });
    await agent.drain(await drainAsked);
    if (process.connected) process.disconnect();
    return 0;
  },
};

function kubernetesMode(v: Flags): import('../node/agent').KubernetesMode {
  const { cgroup2Root, validateWorkloadName } = require('../datapath/layout') as typeof import('../datapath/layout');
  const { findKubepodsRoot } = require('../datapath/kubepods') as typeof import('../datapath/kubepods');
  const { requireCaptureRoot, DEFAULT_EXCLUDED_NAMESPACES } = require('../node/pods') as typeof import('../node/pods');
  const { existsSync, statSync } = require('node:fs') as typeof import('node:fs');
  const { resolve } = require('node:path') as typeof import('node:path');
  let captureRoot: string;
  if (v['cgroup-root'] !== undefined) {
    captureRoot = resolve(v['cgroup-root']);
    if (!existsSync(captureRoot) || !statSync(captureRoot).isDirectory()) throw invalidArg(`--cgroup-root: ${captureRoot} is not a directory`);
  } else {
    const cg2 = cgroup2Root();
    captureRoot = requireCaptureRoot(findKubepodsRoot(cg2), cg2);
  }
  const excluded = v['exclude-namespaces'] === undefined ? DEFAULT_EXCLUDED_NAMESPACES : v['exclude-namespaces'].split(',').map((x) => x.trim()).filter(Boolean);
  for (const ns of excluded) {
    try { validateWorkloadName('namespace', ns); } catch { throw invalidArg(`--exclude-namespaces: '${ns}' is not a namespace name`); }
  }
  const podUid = v['pod-uid'] ?? process.env.POD_UID;
  const { isKubernetesUid } = require('../discovery/pod-cgroup') as typeof import('../discovery/pod-cgroup');
  if (podUid !== undefined && !isKubernetesUid(podUid)) throw invalidArg(`--pod-uid: '${podUid}' is not a Kubernetes UID`);
  const mode = v['dataplane-default'] ?? 'mesh';
  if (mode !== 'mesh' && mode !== 'none') throw invalidArg(`--dataplane-default: expected mesh or none, got '${mode}'`);
  return { captureRoot, excludeNamespaces: excluded, dataplaneDefault: mode, ...(v.kubeconfig ? { kubeconfig: resolve(v.kubeconfig) } : {}), ...(podUid ? { podUid } : {}) };
}

/** --dns and its companions: on by default outside Kubernetes. Checked before anything
 *  is loaded, so a typo is a clear error. */
export function dnsConfig(v: Pick<Flags, 'dns' | 'dns-listen' | 'dns-upstream' | 'cluster-domain' | 'kubernetes'>, outbound: { host: string; port: number }): import('../dns/proxy').DnsConfig | undefined {
  const on = v.dns === undefined ? !v.kubernetes : v.dns === 'on' ? true : v.dns === 'off' ? false : undefined;
  if (on === undefined) throw invalidArg(`--dns: expected on or off, got '${v.dns}'`);
  if (!on) {
    for (const f of ['dns-listen', 'dns-upstream', 'cluster-domain'] as const) if (v[f] !== undefined) throw invalidArg(`--${f} needs --dns on`);
    return undefined;
  }
  const { DEFAULT_DNS_PORT } = require('../dns/server') as typeof import('../dns/server');
  const { parseUpstream } = require('../dns/upstream') as typeof import('../dns/upstream');
  const { validateClusterDomain } = require('../dns/table') as typeof import('../dns/table');
  const { isIPv4 } = require('node:net') as typeof import('node:net');
  const listen = v['dns-listen'] !== undefined ? parseHostPort(v['dns-listen'], '--dns-listen') : { host: outbound.host, port: DEFAULT_DNS_PORT };
  if (!isIPv4(listen.host) || listen.host === '0.0.0.0') {
    throw invalidArg(`--dns-listen: ${listen.host} is not a specific IPv4 address (the kernel sends workloads' queries there; default: the --outbound host)`);
  }
  let upstreams: import('../dns/upstream').Upstream[] | undefined;
  if (v['dns-upstream'] !== undefined) {
    try { upstreams = v['dns-upstream'].split(',').map((x) => x.trim()).filter(Boolean).map(parseUpstream); } catch (e) { throw invalidArg(`--dns-upstream: ${(e as Error).message}`); }
    if (!upstreams.length) throw invalidArg('--dns-upstream: expected at least one IP[:PORT]');
  }
  let clusterDomain: string | undefined;
  if (v['cluster-domain'] !== undefined) {
    try { clusterDomain = validateClusterDomain(v['cluster-domain']); } catch (e) { throw invalidArg(`--cluster-domain: ${(e as Error).message}`); }
  }
  return { listen, capture: true, ...(upstreams ? { upstreams } : {}), ...(clusterDomain ? { clusterDomain } : {}) };
}

function waitForStopSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = () => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
