// `weft run`: start a local process as a mesh workload. The node's agent creates the
// workload's cgroup (where the kernel hooks apply) and registers the workload with the
// control API; this command then starts the process *inside* that cgroup before it can
// open a single socket, forwards signals, and deregisters when the process exits.
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import type { Command } from './command';
import { parseFlags } from './command';
import { AdminClient, DEFAULT_ADMIN } from '../admin/client';
import { invalidArg } from '../lib/errors';
import { validateWorkloadAddress } from '../node/workloads';
import { readTokenFile } from '../lib/token-file';
import { ADMIN_TOKEN_FILE } from '../admin/server';
import { join } from 'node:path';

const help = `Usage: weft run --workload NAME [--namespace NS] [--service-account SA]
                [--label k=v ...] [--address IP] [--admin HOST:PORT]
                [--admin-token-file FILE | --state-dir DIR | --node NODE] -- CMD [ARGS...]

Starts CMD as the mesh workload NAME: the agent of this network namespace creates its
cgroup and registers it, CMD runs inside that cgroup (so the kernel datapath applies to
every socket it opens), and the workload is deregistered when CMD exits.

Flags:
  --workload NAME          workload name (required)
  --namespace NS           namespace (default "default")
  --service-account SA     service account, i.e. the SPIFFE identity (default: NAME)
  --label k=v              label used by Service selectors (repeatable)
  --address IP             the workload's own address (IPv4 or IPv6), e.g. its pod IP when
                           it runs in its own network namespace: Services select it at this
                           address and, under mTLS STRICT, other workloads of the node may
                           connect to it from it (default: the node's address)
  --admin HOST:PORT        the agent's admin address (default ${DEFAULT_ADMIN}); from a pod's
                           own network namespace, the agent's admin address on the node
  --admin-token-file FILE  the agent's admin token (its STATE_DIR/admin-token): every
                           registration needs it, from loopback too (default: the token in
                           --state-dir, else in /var/lib/weft/NODE for --node or $WEFT_NODE)
  --state-dir DIR          the agent's --state-dir, to find its admin token
  --node NODE              the agent's node name (default $WEFT_NODE), to find its admin
                           token in /var/lib/weft/NODE

Examples:
  weft run --workload catalog-v1 --namespace shop --label app=catalog --label version=v1 -- node server.js
  ip netns exec pod-a weft run --workload catalog-v1 --label app=catalog \\
      --admin 10.244.1.1:15020 --admin-token-file /var/lib/weft/node-1/admin-token \\
      --address 10.244.1.11 -- node server.js`;

interface Flags {
  workload?: string; namespace?: string; 'service-account'?: string; label?: string[]; admin?: string; 'admin-token-file'?: string; address?: string;
  'state-dir'?: string; node?: string;
}

/** Which admin token file to read: the flag, else the agent's state dir (given or
 *  derived from the node name, as `weft agent` derives it). Registration always needs it. */
export function adminTokenPath(values: Pick<Flags, 'admin-token-file' | 'state-dir' | 'node'>, env: NodeJS.ProcessEnv = process.env): { file: string; flag: string } {
  if (values['admin-token-file'] !== undefined) return { file: values['admin-token-file'], flag: '--admin-token-file' };
  if (values['state-dir'] !== undefined) return { file: join(values['state-dir'], ADMIN_TOKEN_FILE), flag: '--state-dir' };
  const node = values.node ?? env.WEFT_NODE;
  if (node) return { file: join('/var/lib/weft', node, ADMIN_TOKEN_FILE), flag: values.node !== undefined ? '--node' : '$WEFT_NODE' };
  throw invalidArg(`registering a workload needs the agent's admin token: pass --admin-token-file FILE (the agent's STATE_DIR/${ADMIN_TOKEN_FILE}), --state-dir DIR, or --node NODE / $WEFT_NODE for /var/lib/weft/NODE/${ADMIN_TOKEN_FILE}`);
}

export interface RegisteredWorkload { cgroupPath: string; cgroupId: string; spiffeId: string }

function parseLabels(list: string[] = []): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const l of list) {
    const i = l.indexOf('=');
    if (i <= 0) throw invalidArg(`--label: expected k=v, got '${l}'`);
    labels[l.slice(0, i)] = l.slice(i + 1);
  }
  return labels;
}

export const command: Command = {
  name: 'run',
  summary: 'start a local process as a mesh workload',
  help,
  async run(argv) {
    const dash = argv.indexOf('--');
    const { values, help: wantHelp } = parseFlags<Flags>(dash < 0 ? argv : argv.slice(0, dash), {
      workload: { type: 'string' }, namespace: { type: 'string' }, 'service-account': { type: 'string' },
      label: { type: 'string', multiple: true }, admin: { type: 'string' }, 'admin-token-file': { type: 'string' }, address: { type: 'string' },
      'state-dir': { type: 'string' }, node: { type: 'string' },
    });
    if (wantHelp) { process.stdout.write(help + '\n'); return 0; }
    const cmd = dash < 0 ? [] : argv.slice(dash + 1);
    if (!values.workload) throw invalidArg('--workload is required');
    if (!cmd.length) throw invalidArg('missing the command to run after --');
    const address = values.address === undefined ? undefined : validateWorkloadAddress(values.address, '--address');
    const tokenFile = adminTokenPath(values);
    const token = readTokenFile(tokenFile.file, tokenFile.flag);
    const admin = new AdminClient(values.admin ?? DEFAULT_ADMIN, 5000, token);
    const id = { name: values.workload, namespace: values.namespace ?? 'default' };
    const reg = await admin.request<RegisteredWorkload>('POST', '/v1/workloads', {
      ...id, serviceAccount: values['service-account'] ?? values.workload, labels: parseLabels(values.label),
      ...(address !== undefined ? { address } : {}),
    });
    // The shell joins the cgroup and then execs CMD, so CMD never runs outside it.
    const child = spawn('/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', reg.cgroupPath, ...cmd], { stdio: 'inherit' });
    const forward = (sig: NodeJS.Signals) => () => { child.kill(sig); };
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    const handlers = signals.map((s) => { const h = forward(s); process.on(s, h); return [s, h] as const; });
    const code = await new Promise<number>((resolve) => {
      child.on('error', (e) => { process.stderr.write(`weft run: cannot start ${cmd[0]}: ${e.message}\n`); resolve(127); });
      child.on('exit', (c, sig) => resolve(c ?? (sig ? 128 + (osConstants.signals[sig]) : 1)));
    });
    for (const [s, h] of handlers) process.off(s, h);
    await admin.request('DELETE', `/v1/workloads?namespace=${encodeURIComponent(id.namespace)}&name=${encodeURIComponent(id.name)}`)
      .catch((e: Error) => process.stderr.write(`weft run: deregistering ${id.namespace}/${id.name}: ${e.message}\n`));
    return code;
  },
};
