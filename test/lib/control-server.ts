// Shared by the control/sync unit tests: a real control server on loopback, fed by a tiny
// stand-in for agent/policy so the tests exercise the transport, the ACK/NACK state
// machine and the sources without depending on the policy language. A tree is every `*.txt` file under the root; a line `error: MSG` is a
// validation error reported as `file:line:1: MSG`; a registered workload named
// `conflict` fails compilation. The version is a hash of the content (or the revision).
// MeshConfig spec.registrations: lines `grant: NODE NS[,NS...] [SA,...]`; without any,
// DEFAULT_GRANTS (node-1 and node-2 may register the namespaces these tests use).
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { TestContext } from 'node:test';
import pino from 'pino';
import { ControlServer, type ControlServerOptions } from '../../agent/control/server';
import { TokenAuthenticator } from '../../agent/control/auth';
import { DirectorySource } from '../../agent/control/sources/directory';
import { join, relative } from 'node:path';
import { WeftError } from '../../agent/lib/errors';
import type { RegistrationGrant, Snapshot, WorkloadRegistration } from '../../agent/policy/snapshot';
import type { PolicyCompiler } from '../../agent/control/policy-compiler';
import { CertificateAuthority } from '../../agent/identity/ca';

export const fakeMesh = { trustDomain: 'test.local', mtls: 'STRICT' as const, certTtlMs: 3_600_000, failMode: 'closed' as const, vipRange: '10.96.0.0/16' };

const LONGEST_NODE = `${'a'.repeat(62)}.${'b'.repeat(62)}.${'c'.repeat(62)}.${'d'.repeat(64)}`;
export const DEFAULT_GRANTS: RegistrationGrant[] = ['node-1', 'node-2', 'ip-10-0-1-2.ec2.internal', LONGEST_NODE].map((node) => ({ node, namespaces: ['shop', 'ci', 'x', 'default', 'weft-system'] }));

function grants(text: string): RegistrationGrant[] {
  const out: RegistrationGrant[] = [];
  for (const m of text.matchAll(/^grant: (\S+) (\S+)(?: (\S+))?$/gm)) {
    out.push({ node: m[1]!, namespaces: m[2]!.split(','), ...(m[3] ? { serviceAccounts: m[3].split(',') } : {}) });
  }
  return out.length ? out : DEFAULT_GRANTS;
}

export function fakeCompiler(): PolicyCompiler<string> {
  return {
    async load({ root }) {
      const diagnostics: string[] = [];
      let text = '';
      for (const f of readdirSync(root, { recursive: true }).map(String).filter((f) => f.endsWith('.txt')).sort()) {
        const body = readFileSync(join(root, f), 'utf8');
        body.split('\n').forEach((l, i) => { if (l.startsWith('error: ')) diagnostics.push(`${relative(root, join(root, f))}:${i + 1}:1: ${l.slice(7)}`); });
        text += `${f}\0${body}\0`;
      }
      return { objects: text, diagnostics };
    },
    compile(objects, registered: WorkloadRegistration[], { version }) {
      if (registered.some((w) => w.name === 'conflict')) throw new WeftError('WEFT_ERR_INVALID_POLICY', 'conflict', { details: { diagnostics: ['<registered>:1:1: workload conflict clashes'] } });
      const v = version ?? createHash('sha256').update(objects).update(JSON.stringify(registered)).digest('hex').slice(0, 16);
      const snap: Snapshot = {
        version: v, createdAt: new Date().toISOString(), mesh: { ...fakeMesh, registrations: grants(objects) }, services: [], routes: [], trafficPolicies: [], authorizationPolicies: [], nodes: [],
        workloads: registered.map((w) => ({
          key: `${w.namespace}/${w.name}`, name: w.name, namespace: w.namespace, node: w.node, address: w.address,
          serviceAccount: w.serviceAccount ?? 'default', identity: `spiffe://test.local/ns/${w.namespace}/sa/${w.serviceAccount ?? 'default'}`,
          labels: w.labels ?? {}, weight: w.weight ?? 1, source: 'registered' as const, services: [],
        })),
      };
      return snap;
    },
  };
}

// ------------------------------------------------------------------ server harness

/** node-1's bootstrap token (a 'node-1 TOKEN' line); other nodes use tokenFor(node). */
export const TOKEN = 'shared-bootstrap-token-0123456789';
export const NODE1_TOKEN = 'node1-only-token-abcdefghijklmnop';
/** The bootstrap token of one of the harness's nodes (node-1…node-9, node-00…node-09,
 *  an EKS name and a 253-character name): tokens are per node, as in the docs. */
export function tokenFor(node: string): string {
  return node === 'node-1' ? TOKEN : `tok-${createHash('sha256').update(node).digest('hex').slice(0, 40)}`;
}
const HARNESS_NODES = [
  ...Array.from({ length: 9 }, (_, i) => `node-${i + 1}`), ...Array.from({ length: 10 }, (_, i) => `node-0${i}`),
  'ip-10-0-1-2.ec2.internal', LONGEST_NODE,
];
const HARNESS_TOKENS = `node-1 ${NODE1_TOKEN}\n${HARNESS_NODES.map((n) => `${n} ${tokenFor(n)}`).join('\n')}\n`;
export const silent = pino({ level: 'silent' });

export interface Harness {
  server: ControlServer;
  policies: string;
  stateDir: string;
  address: string;
  write(file: string, body: string): void;
  /** With `tls`: the mesh CA and the bundle file the server wrote (PEM). */
  ca?: CertificateAuthority;
  bundleFile?: string;
}

/** A real control server on 127.0.0.1:0 over a temp policies dir, stopped in t.after.
 *  The stand-in compiler unless `compiler` is given (e.g. the real policyCompiler()). */
export async function startControl(t: TestContext, opts: { port?: number; policies?: string; stateDir?: string; files?: Record<string, string>; createSigner?: ControlServerOptions['createSigner']; compiler?: PolicyCompiler; tls?: boolean; auth?: TokenAuthenticator } = {}): Promise<Harness> {
  const policies = opts.policies ?? mkdtempSync(join(tmpdir(), 'wt-ctl-pol-'));
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'wt-ctl-state-'));
  const write = (file: string, body: string) => writeFileSync(join(policies, file), body);
  for (const [f, b] of Object.entries(opts.files ?? (opts.policies ? {} : { 'a.txt': 'one\n' }))) write(f, b);
  // TLS needs the mesh CA: the real one, in the state dir, unless the test brings its own.
  let ca: CertificateAuthority | undefined;
  const createSigner = opts.createSigner ?? (opts.tls ? async (trustDomain: string) => (ca = await CertificateAuthority.loadOrCreate(stateDir, { trustDomain })) : undefined);
  const bundleFile = opts.tls ? join(stateDir, 'ca-bundle.pem') : undefined;
  const server = new ControlServer({
    source: new DirectorySource(policies, silent, { debounceMs: 20, rescanMs: 60_000 }),
    compiler: opts.compiler ?? fakeCompiler() as PolicyCompiler,
    auth: opts.auth ?? new TokenAuthenticator(HARNESS_TOKENS),
    host: '127.0.0.1', port: opts.port ?? 0, stateDir, logger: silent, ...(createSigner ? { createSigner } : {}),
    ...(bundleFile ? { tls: { defaultTrustDomain: fakeMesh.trustDomain, bundleOut: bundleFile } } : {}),
  });
  await server.start();
  t.after(async () => {
    await server.stop();
    if (!opts.policies) rmSync(policies, { recursive: true, force: true });
    if (!opts.stateDir) rmSync(stateDir, { recursive: true, force: true });
  });
  return { server, policies, stateDir, address: `127.0.0.1:${server.port}`, write, ...(ca ? { ca } : {}), ...(bundleFile ? { bundleFile } : {}) };
}
