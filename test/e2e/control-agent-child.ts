// A node agent reduced to its sync client, run as a child process by the control e2e
// test and the control benchmark: it applies each snapshot by writing it to
// STATE_DIR/applied.json (atomically, so the parent never reads half a file) and
// reports every event to the parent over IPC. Several agents may share one process
// (the benchmark runs 50 in a few processes): argv is a JSON list of agent configs.
import { join } from 'node:path';
import pino from 'pino';
import { SyncClient } from '../../agent/sync/client';
import { writeFileAtomic } from '../../agent/sync/atomic-file';

interface AgentConfig { address: string; node: string; token: string; controlCa: string; stateDir: string; writeApplied?: boolean; reconnectSpreadMs?: number; shuffleReplicas?: boolean }

const send = (m: object) => process.send?.(m);
const configs = JSON.parse(process.argv[2] as string) as AgentConfig[];
const clients = configs.map((cfg) => {
  const c = new SyncClient({
    ...cfg, logger: pino({ level: 'silent' }), backoff: { baseMs: 50, maxMs: 1000 },
    apply: async (view, info) => {
      if (cfg.writeApplied !== false) await writeFileAtomic(join(cfg.stateDir, 'applied.json'), JSON.stringify({ version: info.version, view }));
    },
  });
  c.on('applied', (info) => send({ type: 'applied', node: cfg.node, version: info.version, fromCache: info.fromCache, roots: info.trustBundle.length, at: Date.now() }));
  c.on('nack', (version, reason) => send({ type: 'nack', node: cfg.node, version, reason }));
  c.on('state', (s) => send({ type: 'state', node: cfg.node, connected: s.connected, version: s.version }));
  return c;
});

void Promise.all(clients.map((c) => c.start())).then(() => send({ type: 'started' }));
const stop = () => { void Promise.all(clients.map((c) => c.stop())).then(() => process.exit(0)); };
process.on('SIGTERM', stop);
process.on('disconnect', stop);
