// `weft control`: the control API process. Composition only: parse flags, build the
// policy source, token check, CA and server, run until SIGINT/SIGTERM, shut down cleanly.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { hostname } from 'node:os';
import type { Command } from './command';
import { parseFlags, parseHostPort } from './command';
import { invalidArg } from '../lib/errors';
import { durationMs } from '../policy/duration';
import { componentLogger } from '../telemetry/logger';
import { writeFileAtomic } from '../sync/atomic-file';

const help = `Usage: weft control --policies DIR|GIT_URL [FLAGS]

Serves policy snapshots to node agents over gRPC (package weft.control.v1, see
agent/control/proto/control.proto) and signs their workload certificates.

Policies come from a directory (watched; edits are picked up within ~100 ms) or a git
remote (cloned into the state dir, fetched every --poll-interval, pinned to --branch; the
served version is the commit hash). A change that fails validation is rejected whole:
the last good snapshot keeps serving, and the problems (file:line:col: message) go to
the log, to /metrics (weft_control_policy_rejections_total,
weft_control_last_reload_success) and to 'weft status'.

Flags:
  --policies DIR|GIT_URL   policy source (required)
  --listen HOST:PORT       gRPC address (default 127.0.0.1:15010). TLS 1.3; the serving
                           certificate is issued by the mesh CA for the control API's
                           SPIFFE ID (spiffe://TD/ns/weft-system/sa/control), which agents
                           check instead of a host name, and renewed at half-life
  --ca-bundle-out FILE     write the CA trust bundle (PEM) here, for agents'
                           --control-ca (default STATE_DIR/ca-bundle.pem; rewritten on
                           every serving-certificate renewal)
  --insecure               plaintext gRPC, no serving certificate (loopback demos only;
                           agents then need --control-insecure)
  --state-dir DIR          CA keys, git clone, registered workloads
                           (default /var/lib/weft/control)
  --token-file FILE        node bootstrap tokens, one per line: 'NODE TOKEN' (that node
                           only; 'weft token create --node NODE' appends one) or 'TOKEN'
                           (bound to the first node that presents it, recorded in
                           STATE_DIR/token-bindings.json, refused for any other node).
                           Re-read when it changes. Default: STATE_DIR/bootstrap-token,
                           created with one random bare token if missing; with
                           --kubernetes the default is no token file (agents present
                           their ServiceAccount token). Agents holding their node
                           certificate authenticate with it instead (TLS client
                           certificate); an unauthenticated caller can read nothing
  --branch NAME            git branch to follow (default main)
  --poll-interval DUR      git fetch / directory rescan interval (default 5s)
  --admin HOST:PORT        /metrics, /healthz, /readyz (default 127.0.0.1:15011; 'off' to disable)
  --kubernetes             also discover Services, EndpointSlices and Pods from the
                           Kubernetes API (in-cluster account, $KUBECONFIG or ~/.kube/config)
  --kubeconfig FILE        kubeconfig for --kubernetes and --state-store kubernetes
  --state-store dir|kubernetes
                           where the durable state lives (default dir: --state-dir,
                           one replica). 'kubernetes' runs as one of several replicas
                           behind one Service: the CA roots and keys in the Secret
                           weft-control-ca (created once by the replica holding the
                           Lease weft-control), leader election on that Lease; every
                           replica serves sync, signing and Explain. A staged root
                           rotation is requested with
                           kubectl annotate secret weft-control-ca weft.dev/rotate-root=24h
                           and carried out by the Lease holder. --state-dir then holds
                           only caches (git clone, CA bundle copy): an emptyDir will do.
                           Replicas compile only what all of them see: workloads and
                           node addresses come from the Kubernetes API (weft run
                           registration is refused; agents' reported addresses ignored)
  --state-namespace NS     namespace of the Lease and Secret (default: $POD_NAMESPACE,
                           the service account's namespace, else weft-system)
  --replica-id ID          this replica's Lease holder identity (default: $POD_NAME,
                           else the host name)
  --lease-duration DUR     leader Lease duration (default 15s; the leader renews every
                           duration/7 and gives up after 2/3 of it without a renewal)
  --agent-service-account NS/NAME
                           with --kubernetes: the agents' ServiceAccount. An agent may
                           present a token of it bound to its Pod (projected volume,
                           audience --token-audience); the control API checks it with a
                           TokenReview and that the Pod runs on the node the agent
                           claims (default weft-system/weft-agent)
  --token-audience AUD     audience of those tokens (default weft-control)
  -h, --help               this text

Examples:
  weft control --policies policies/ --state-dir .state/control
  weft control --policies https://git.example.com/platform/mesh-policies.git --branch prod
  weft control --policies /etc/weft/policies --kubernetes --state-store kubernetes --listen 0.0.0.0:15010
`;

interface Flags {
  policies?: string; listen?: string; 'state-dir'?: string; 'token-file'?: string;
  branch?: string; 'poll-interval'?: string; admin?: string; kubernetes?: boolean; kubeconfig?: string;
  insecure?: boolean; 'ca-bundle-out'?: string; 'agent-service-account'?: string; 'token-audience'?: string;
  'state-store'?: string; 'state-namespace'?: string; 'replica-id'?: string; 'lease-duration'?: string;
}

/** HOST:PORT where port 0 means "any free port" (tests, several instances on one host);
 *  the bound port is printed on startup. */
function listenAddress(s: string, flag: string): { host: string; port: number } {
  const any = /:0$/.test(s);
  const hp = parseHostPort(any ? s.replace(/:0$/, ':1') : s, flag);
  return any ? { ...hp, port: 0 } : hp;
}

async function tokenFile(flag: string | undefined, stateDir: string, kubernetes: boolean, say: (s: string) => void): Promise<string | undefined> {
  if (flag) return resolve(flag);
  if (kubernetes) return undefined;
  const path = join(stateDir, 'bootstrap-token');
  if (!existsSync(path)) {
    await writeFileAtomic(path, `# Bootstrap tokens: 'NODE TOKEN' per node (weft token create --node NODE), or a bare
# TOKEN that binds to the first node presenting it.
${randomBytes(24).toString('base64url')}\n`, 0o600);
    say(`created a node bootstrap token in ${path}: it binds to the first node that presents it; make one per node with 'weft token create --node NODE --token-file ${path}'`);
  }
  return path;
}

export const command: Command = {
  name: 'control',
  summary: 'run the control API: policies from a directory or git, snapshots to agents, CA',
  help,
  async run(argv) {
    const { values, help: wantHelp } = parseFlags<Flags>(argv, {
      policies: { type: 'string' }, listen: { type: 'string' }, 'state-dir': { type: 'string' }, 'token-file': { type: 'string' },
      branch: { type: 'string' }, 'poll-interval': { type: 'string' }, admin: { type: 'string' },
      kubernetes: { type: 'boolean' }, kubeconfig: { type: 'string' }, insecure: { type: 'boolean' }, 'ca-bundle-out': { type: 'string' },
      'agent-service-account': { type: 'string' }, 'token-audience': { type: 'string' },
      'state-store': { type: 'string' }, 'state-namespace': { type: 'string' }, 'replica-id': { type: 'string' }, 'lease-duration': { type: 'string' },
    });
    if (values.insecure && values['ca-bundle-out']) throw invalidArg('--ca-bundle-out needs TLS: drop --insecure');
    const stateStore = values['state-store'] ?? 'dir';
    if (stateStore !== 'dir' && stateStore !== 'kubernetes') throw invalidArg(`--state-store: expected 'dir' or 'kubernetes', got '${stateStore.slice(0, 40)}'`);
    const replicated = stateStore === 'kubernetes';
    if (values.kubeconfig && !values.kubernetes && !replicated) throw invalidArg('--kubeconfig only applies with --kubernetes or --state-store kubernetes');
    for (const f of ['state-namespace', 'replica-id', 'lease-duration'] as const) {
      if (values[f] !== undefined && !replicated) throw invalidArg(`--${f} only applies with --state-store kubernetes`);
    }
    let leaseMs = 15_000;
    if (values['lease-duration'] !== undefined) {
      try { leaseMs = durationMs(values['lease-duration']); } catch { throw invalidArg(`--lease-duration: '${values['lease-duration'].slice(0, 40)}' is not a duration like 15s`); }
      if (leaseMs < 2000 || leaseMs > 300_000) throw invalidArg('--lease-duration: between 2s and 5m');
    }
    if ((values['agent-service-account'] || values['token-audience']) && !values.kubernetes) throw invalidArg('--agent-service-account and --token-audience only apply with --kubernetes');
    // Replicas share no disk: the default token file (made in the state dir) would differ.
    if (replicated && !values['token-file'] && !values.kubernetes) throw invalidArg('--state-store kubernetes needs --token-file or --kubernetes (ServiceAccount tokens): every replica must accept the same node credentials');
    const replicaId = values['replica-id'] ?? process.env.POD_NAME ?? hostname();
    if (replicated && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/.test(replicaId)) throw invalidArg(`--replica-id: '${replicaId.slice(0, 40)}' is not a name`);
    if (wantHelp) { process.stdout.write(help); return 0; }
    if (!values.policies) throw invalidArg('--policies is required');
    const { parseServiceAccount, DEFAULT_AGENT_SERVICE_ACCOUNT, DEFAULT_TOKEN_AUDIENCE } = require('../control/token-review') as typeof import('../control/token-review');
    const agentAccount = parseServiceAccount(values['agent-service-account'] ?? DEFAULT_AGENT_SERVICE_ACCOUNT);
    if (!agentAccount) throw invalidArg(`--agent-service-account: '${values['agent-service-account']}' is not NAMESPACE/NAME`);
    const audience = values['token-audience'] ?? DEFAULT_TOKEN_AUDIENCE;
    if (!/^[\x21-\x7e]{1,253}$/.test(audience)) throw invalidArg('--token-audience: 1 to 253 visible ASCII characters');
    const listen = listenAddress(values.listen ?? '127.0.0.1:15010', '--listen');
    const admin = values.admin === 'off' ? undefined : listenAddress(values.admin ?? '127.0.0.1:15011', '--admin');
    let pollMs: number;
    try { pollMs = durationMs(values['poll-interval'] ?? '5s'); } catch { throw invalidArg(`--poll-interval: '${values['poll-interval']}' is not a duration like 5s or 500ms`); }
    if (pollMs < 100) throw invalidArg('--poll-interval: at least 100ms');
    const stateDir = resolve(values['state-dir'] ?? '/var/lib/weft/control');
    const say = (s: string) => process.stderr.write(`weft control: ${s}\n`);

    // Heavy modules (gRPC, policy engine, CA) load after the flag checks: `weft --help`
    // loads this file for its summary and must stay instant. (require, not import():
    // see main.ts.)
    const { ControlServer } = require('../control/server') as typeof import('../control/server');
    const { TokenAuthenticator } = require('../control/auth') as typeof import('../control/auth');
    const { policyCompiler } = require('../control/policy-adapter') as typeof import('../control/policy-adapter');
    const { DirectorySource } = require('../control/sources/directory') as typeof import('../control/sources/directory');
    const { GitSource } = require('../control/sources/git') as typeof import('../control/sources/git');
    const { isGitUrl } = require('../control/sources/source') as typeof import('../control/sources/source');
    const { startControlAdmin } = require('../control/admin') as typeof import('../control/admin');
    const { CertificateAuthority } = require('../identity/ca') as typeof import('../identity/ca');
    const { DEFAULT_MESH } = require('../policy/model') as typeof import('../policy/model');
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const log = componentLogger('control');
    // Replicated: durable state in the Kubernetes API (kube/), leader election first so a
    // leading replica can create the CA the moment the first snapshot names the trust domain.
    let replicas: import('../control/kube/replicas').Replicas | undefined;
    if (replicated) {
      const { Replicas } = require('../control/kube/replicas') as typeof import('../control/kube/replicas');
      const { defaultStateNamespace } = require('../control/kube/api') as typeof import('../control/kube/api');
      replicas = await Replicas.start({
        namespace: values['state-namespace'] ?? defaultStateNamespace(), identity: replicaId, leaseDurationMs: leaseMs, log,
        ...(values.kubeconfig ? { kubeconfig: resolve(values.kubeconfig) } : {}),
      });
      say(`replicated: state in namespace ${replicas.api.namespace} (Lease ${replicas.elector.leaseName}, Secret weft-control-ca), replica ${replicaId}`);
    }
    const { FileTokenBindings } = require('../control/token-bindings') as typeof import('../control/token-bindings');
    const authOpts: import('../control/auth').AuthenticatorOptions = {
      // Bare tokens' first-use bindings: shared by the replicas in a Secret, else a file.
      bindings: replicas
        ? new (require('../control/kube/token-bindings') as typeof import('../control/kube/token-bindings')).SharedTokenBindings(replicas.api, log)
        : new FileTokenBindings(join(stateDir, 'token-bindings.json')),
      onReloadError: (e) => log.error({ err: e.message }, 'token file changed but does not parse; the previous tokens stay in force'),
    };
    if (values.kubernetes) {
      const { ServiceAccountTokenReviewer, kubernetesReviewApi } = require('../control/token-review') as typeof import('../control/token-review');
      authOpts.reviewer = new ServiceAccountTokenReviewer({ api: await kubernetesReviewApi(values.kubeconfig ? resolve(values.kubeconfig) : undefined), serviceAccount: agentAccount, audience });
      say(`agents may authenticate with a token of ServiceAccount ${agentAccount.namespace}/${agentAccount.name} (audience ${audience}) bound to a Pod on their node`);
    }
    const tokens = await tokenFile(values['token-file'], stateDir, values.kubernetes === true, say);
    const auth = tokens ? TokenAuthenticator.fromFile(tokens, authOpts) : new TokenAuthenticator(undefined, 'token file', authOpts);
    if (values.branch && !isGitUrl(values.policies)) throw invalidArg('--branch only applies to a git URL');
    const files = isGitUrl(values.policies)
      ? new GitSource(values.policies, stateDir, log, { branch: values.branch ?? 'main', pollMs, progress: say })
      : new DirectorySource(values.policies, log, { rescanMs: pollMs });
    let source: import('../control/sources/source').PolicySource = files;
    let discovered: (() => { file: string; text: string }[]) | undefined;
    if (values.kubernetes) {
      const { KubernetesDiscovery } = require('../discovery/kubernetes') as typeof import('../discovery/kubernetes');
      const { SourceWithDiscovery } = require('../control/sources/with-discovery') as typeof import('../control/sources/with-discovery');
      say('connecting to the Kubernetes API (first full list of Services, EndpointSlices, Pods)…');
      const withK8s = new SourceWithDiscovery(files, new KubernetesDiscovery(values.kubeconfig ? { kubeconfig: resolve(values.kubeconfig) } : {}));
      discovered = () => withK8s.documents();
      source = withK8s;
    }

    const server = new ControlServer({
      source, compiler: policyCompiler(discovered), auth, host: listen.host, port: listen.port, stateDir, logger: log, replicated,
      createSigner: (trustDomain: string) => (replicas ? replicas.ca(trustDomain, () => server.trustBundleChanged()) : CertificateAuthority.loadOrCreate(stateDir, { trustDomain })),
      ...(values.insecure ? {} : {
        tls: { defaultTrustDomain: DEFAULT_MESH.trustDomain, defaultTtlSeconds: DEFAULT_MESH.certTtlMs / 1000, bundleOut: resolve(values['ca-bundle-out'] ?? join(stateDir, 'ca-bundle.pem')) },
      }),
    });
    await server.start();
    const adminSrv = admin ? await startControlAdmin(server, admin.host, admin.port) : undefined;
    const version = server.store.snapshot()?.version;
    const rejected = server.store.lastRejection();
    if (!values.insecure) say(`TLS with CA bundle ${resolve(values['ca-bundle-out'] ?? join(stateDir, 'ca-bundle.pem'))} (give it to agents with --control-ca)`);
    say(`listening on ${listen.host}:${server.port}${adminSrv ? `, admin on ${admin!.host}:${adminSrv.port}` : ''}; ` +
      (version ? `serving ${version}` : `no valid snapshot yet (${rejected?.diagnostics.length ?? 0} problems, see the log)`));

    await new Promise<void>((done) => {
      const stop = (sig: string) => { say(`${sig}: shutting down`); done(); };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
    adminSrv?.server.close();
    await server.stop();
    // Last: the Lease is released once this replica no longer serves.
    await replicas?.stop();
    return 0;
  },
};

