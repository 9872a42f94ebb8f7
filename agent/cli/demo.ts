// `weft demo`: the whole mesh on one machine, in network namespaces it creates and
// removes (agent/demo/run.ts does the work). --cleanup removes what a crashed run left.
import { join, resolve } from 'node:path';
import type { Command } from './command';
import { parseFlags } from './command';
import { invalidArg } from '../lib/errors';
import { packageRoot } from '../lib/paths';

const help = `Usage: weft demo [--policies DIR] [--nodes N] [--duration SECONDS] [--rps N] [--no-tty]
       weft demo --cleanup

Builds a small mesh on this machine (as root) and shows it live: a fabric network
namespace with the control API serving DIR, one namespace and one 'weft agent' per
simulated node (node-1..N, the node names the policies use), the sample shop application
started with 'weft run' for every policy Workload (frontend, catalog v1/v2, payments,
cache) and a traffic driver (loadgen) that browses the frontend and also tries to call
payments, which the AuthorizationPolicy refuses.

The view shows, every second: requests/s, success rate and p99 per service, which
identities talk over mTLS, refusals, the kernel's fast-path and sockmap counters, and
the snapshot version each agent serves. Edit a file in DIR while it runs (e.g. the
catalog canary weights in routes.yaml) and the picture changes within a second.
Ctrl-C stops everything and removes all it created.

Flags:
  --policies DIR       policies to serve (default: the package's policies/)
  --nodes N            simulated nodes (default 3)
  --duration SECONDS   stop by itself after this much traffic (default: run until Ctrl-C)
  --rps N              loadgen's request rate to the frontend (default 50)
  --logs DIR           keep every process's log in DIR (default: removed at the end)
  --no-tty             one plain summary line per second instead of a redrawn screen
                       (also when stdout is not a terminal)
  --cleanup            remove what a crashed demo left behind (namespaces, processes in
                       them, node-N BPF pins and cgroups, temp dirs), then exit`;

interface Flags { logs?: string; policies?: string; nodes?: string; duration?: string; rps?: string; 'no-tty'?: boolean; cleanup?: boolean }

function positiveNumber(v: string | undefined, flag: string, fallback: number | undefined): number | undefined {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw invalidArg(`${flag}: expected a positive number, got '${v}'`);
  return n;
}

export const command: Command = {
  name: 'demo',
  summary: 'run the whole mesh on this machine in network namespaces, with a live view',
  help,
  async run(argv) {
    const { values: v, help: wantHelp } = parseFlags<Flags>(argv, {
      policies: { type: 'string' }, nodes: { type: 'string' }, duration: { type: 'string' }, rps: { type: 'string' },
      logs: { type: 'string' }, 'no-tty': { type: 'boolean' }, cleanup: { type: 'boolean' },
    });
    if (wantHelp) { process.stdout.write(help + '\n'); return 0; }
    // `weft demo | tee demo.log` and Ctrl-C: tee is gone before the demo has cleaned up,
    // and a write to the closed pipe (EPIPE) must not end the demo (an 'error' event
    // without a listener would). What cannot be shown is dropped; cleanup goes on.
    const broken = new Set<NodeJS.WriteStream>();
    for (const s of [process.stdout, process.stderr]) s.on('error', () => { broken.add(s); });
    const say = (line: string) => { if (!broken.has(process.stderr)) process.stderr.write(`weft demo: ${line}\n`); };
    // Heavy modules load after the flag checks: `weft --help` stays instant.
    if (v.cleanup) {
      const { findLeftovers, removeLeftovers } = require('../demo/leftovers') as typeof import('../demo/leftovers');
      const left = findLeftovers();
      if (left.running.length) say(`demo still running (pid ${left.running.join(', ')}): not touching its namespaces`);
      const lines = removeLeftovers(left);
      for (const l of lines) say(l);
      if (!lines.length) say('nothing to remove');
      return lines.some((l) => l.startsWith('cannot')) ? 1 : 0;
    }
    const nodes = positiveNumber(v.nodes, '--nodes', 3)!;
    if (!Number.isInteger(nodes)) throw invalidArg('--nodes: expected a whole number');
    const { runDemo } = require('../demo/run') as typeof import('../demo/run');
    const duration = positiveNumber(v.duration, '--duration', undefined);
    return runDemo({
      policies: resolve(v.policies ?? join(packageRoot(), 'policies')),
      nodes,
      ...(duration === undefined ? {} : { duration }),
      rps: positiveNumber(v.rps, '--rps', 50)!,
      ...(v.logs ? { logDir: resolve(v.logs) } : {}),
      tty: !v['no-tty'] && process.stdout.isTTY === true,
      say,
    });
  },
};
