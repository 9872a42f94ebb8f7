// Entry point of one sample-application process (started by `weft demo` through
// `weft run`, so it runs in its workload's cgroup). Prints one "listening" line when it
// serves, which the orchestrator waits for.
import { parseConfig } from './config';
import { startCatalog } from './catalog';
import { startCache } from './cache';
import { startFrontend } from './frontend';
import { startLoadgen } from './loadgen';
import { startPayments } from './payments';

const cfg = parseConfig(process.argv[2]);
const starters = { frontend: startFrontend, catalog: startCatalog, payments: startPayments, cache: startCache, loadgen: startLoadgen };
starters[cfg.role](cfg).then(
  () => process.stdout.write(`${cfg.name} (${cfg.role}) listening${cfg.address ? ` on ${cfg.address}:${cfg.port}` : ''}\n`),
  (e: Error) => { process.stderr.write(`${cfg.name}: ${e.message}\n`); process.exit(1); },
);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(0));
