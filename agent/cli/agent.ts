// `weft agent`: the node agent, or with --cleanup the uninstaller of everything an agent
// created on this node.
import type { Command } from './command';
import { parseFlags, parseHostPort } from './command';
import { invalidArg } from '../lib/errors';
import { createRootLogger } from '../telemetry/logger';
import { usableCores } from '../node/cpus';
import { validateNodeName } from '../datapath/layout';

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
       weft agent --cleanup --node NAME

Runs the weft node agent: loads the eBPF datapath (or adopts the one a previous agent
process left pinned, without a gap in traffic), syncs policy snapshots from the control
API, and serves the outbound (15001), inbound mTLS (15008) and admin (15020) listeners.

Flags:
  --control HOST:PORT     control API address (required)
                          (a name may resolve to several replicas), or IP:PORT,IP:PORT,...
                          one per control API replica: a random one is used, the next
                          when it fails; after a replica goes away reconnects wait 0-2 s
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
  --cleanup               remove every program, link, pin and cgroup of --node, then exit

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
Use --cleanup to uninstall.`;


interface Flags {
  control?: string; node?: string; 'token-file'?: string; 'state-dir'?: string; admin?: string;
  outbound?: string; inbound?: string; 'node-address'?: string; 'log-level'?: string; cleanup?: boolean;
  'access-log-sample'?: string; workers?: string; 'control-ca'?: string; 'control-insecure'?: boolean;
  kubernetes?: boolean; kubeconfig?: string; 'cgroup-root'?: string; 'exclude-namespaces'?: string; 'pod-uid'?: string; 'dataplane-default'?: string;
}

export const command: Command = {
  name: 'agent',
  summary: 'run the node agent (or --cleanup to uninstall it from a node)',
  help,
  async run(argv) {
    const { values: v, help: wantHelp } = parseFlags<Flags>(argv, {
      control: { type: 'string' }, node: { type: 'string' }, 'token-file': { type: 'string' }, 'state-dir': { type: 'string' },
      admin: { type: 'string' }, outbound: { type: 'string' }, inbound: { type: 'string' }, 'node-address': { type: 'string' },
      'log-level': { type: 'string' }, cleanup: { type: 'boolean' }, 'access-log-sample': { type: 'string' },
      workers: { type: 'string' }, 'control-ca': { type: 'string' }, 'control-insecure': { type: 'boolean' },
      kubernetes: { type: 'boolean' }, kubeconfig: { type: 'string' }, 'cgroup-root': { type: 'string' },
      'exclude-namespaces': { type: 'string' }, 'pod-uid': { type: 'string' }, 'dataplane-default': { type: 'string' },
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
    createRootLogger({ level: (v['log-level'] ?? process.env.WEFT_LOG_LEVEL ?? 'info') as 'info', base: { node: v.node } });

    // The datapath module is loaded only now: --help must work where BPF cannot.
    const { Datapath } = require('../datapath/datapath') as typeof import('../datapath/datapath');
    if (v.cleanup) {
      const report = Datapath.cleanup(v.node);
      process.stdout.write(`${JSON.stringify(report, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x), 2)}\n`);
      return 0;
    }
    if (!v.control) throw invalidArg('--control is required');
    // One address, or one per control API replica (the sync client checks they are IPs).
    for (const a of v.control.split(',')) parseHostPort(a.trim(), '--control');
    if (!v['control-ca'] === !v['control-insecure']) throw invalidArg('give exactly one of --control-ca FILE (TLS) and --control-insecure (plaintext)');
    const outbound = parseHostPort(v.outbound ?? '127.0.0.1:15001', '--outbound');
    const inbound = parseHostPort(v.inbound ?? '0.0.0.0:15008', '--inbound');
    const admin = parseHostPort(v.admin ?? '127.0.0.1:15020', '--admin');
    const { WORKER_ENV, Supervisor, inheritedListeners, workerIdentity } = require('../node/supervisor') as typeof import('../node/supervisor');
    const kubernetes = v.kubernetes ? kubernetesMode(v) : undefined;
    if (!v.kubernetes) for (const f of ['kubeconfig', 'cgroup-root', 'exclude-namespaces', 'pod-uid', 'dataplane-default'] as const) if (v[f] !== undefined) throw invalidArg(`--${f} needs --kubernetes`);

    if (process.env[WORKER_ENV] !== '1') {
      // Files the primary needs are checked before anything is loaded or attached, so a
      // mistake in them is a clear error, not a datapath left behind.
      const { readTokenFile } = require('../lib/token-file') as typeof import('../lib/token-file');
      readTokenFile(v['token-file'] ?? '/etc/weft/token', '--token-file');
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

    const { WorkerLink } = require('../node/worker-link') as typeof import('../node/worker-link');
    const link = WorkerLink.ofProcess();
    // The supervisor says when to drain; if it dies, drain too (a new agent will take over).
    const drainAsked = new Promise<number>((resolve) => {
      link?.once('drain', resolve);
      void waitForStopSignal().then(() => resolve(30_000));
    });
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
        });
      }
    } catch (e) {
      // The supervisor's IPC channel would keep this process alive: let it go, so the
      // supervisor sees the exit at once instead of waiting for readiness.
      if (process.connected) process.disconnect();
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

function waitForStopSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = () => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
