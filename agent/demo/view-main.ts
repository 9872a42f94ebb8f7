// The live view process. It runs inside the fabric namespace (started by the demo with
// nsenter, its stdout inherited from `weft demo`), because that is where every agent's
// admin port is reachable: agents listen for admin on their node's fabric address, which
// keeps them off the host's network entirely, and the demo process itself stays in the
// host namespace where it can create and delete namespaces. Every second it scrapes each
// agent's /metrics, asks the control API for its last policy reload, reads the traffic
// driver's counters, and prints a frame.
import { readFileSync } from 'node:fs';
import { buildFrame, type AgentScrape, type Frame, type Observation } from './frame';
import { parsePromText } from './prom-text';
import { eventLines, plainLine, screen } from './render';
import type { LoadgenStats } from './loadgen-stats';
import type { ReloadStatus } from '../control/reload-status';

export interface ViewConfig {
  agents: { node: string; admin: string }[]; loadgenStats: string; tty: boolean;
  /** The control API's admin address: its last policy reload (GET /v1/reload). */
  controlAdmin?: string;
}

async function scrape(a: ViewConfig['agents'][number]): Promise<AgentScrape> {
  try {
    const res = await fetch(`http://${a.admin}/metrics`, { signal: AbortSignal.timeout(800) });
    if (!res.ok) return { node: a.node, samples: null, error: `HTTP ${res.status}` };
    return { node: a.node, samples: parsePromText(await res.text()) };
  } catch (e) {
    return { node: a.node, samples: null, error: (e as Error).cause ? String(((e as Error).cause as Error).message ?? (e as Error).cause) : (e as Error).message };
  }
}

async function reload(admin: string | undefined): Promise<Observation['reload']> {
  if (!admin) return null;
  try {
    const res = await fetch(`http://${admin}/v1/reload`, { signal: AbortSignal.timeout(800) });
    return res.ok ? (await res.json()) as ReloadStatus : null;
  } catch {
    return null;
  }
}

function readLoadgen(file: string): LoadgenStats | null {
  try { return JSON.parse(readFileSync(file, 'utf8')) as LoadgenStats; } catch { return null; }
}

async function main(cfg: ViewConfig): Promise<void> {
  const startedAt = Date.now();
  let prevObs: Observation | null = null;
  let prevFrame: Frame | null = null;
  const recent: string[] = [];
  for (;;) {
    const tickStart = Date.now();
    const [agents, rl] = await Promise.all([Promise.all(cfg.agents.map(scrape)), reload(cfg.controlAdmin)]);
    const obs: Observation = { at: Date.now(), agents, loadgen: readLoadgen(cfg.loadgenStats), reload: rl };
    const frame = buildFrame(prevObs, obs, startedAt);
    const events = eventLines(prevFrame, frame);
    if (prevObs) {
      if (cfg.tty) {
        recent.push(...events);
        process.stdout.write(screen(frame, recent, process.stdout.columns || 120));
      } else {
        for (const e of events) process.stdout.write(`${e}\n`);
        process.stdout.write(`${plainLine(frame)}\n`);
      }
    }
    // Events compare with the last *shown* frame, so the first one lists all there is.
    if (prevObs) prevFrame = frame;
    prevObs = obs;
    await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - tickStart))));
  }
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(0));
// Nobody reads the view any more (`weft demo | tee` after Ctrl-C): stop quietly; the demo
// goes on tearing down.
process.stdout.on('error', () => process.exit(0));
void main(JSON.parse(process.argv[2] ?? '{}') as ViewConfig);
