// The agent's side of its control API connection as metrics, for the "control API
// unreachable" alert and the dashboard (the control API's own view is
// weft_control_connected_agents, which says nothing when the control API is the one down).
import { Gauge, type Registry } from 'prom-client';

export interface SyncView { state(): { connected: boolean; fatal?: boolean } }

export function registerSyncMetrics(registry: Registry, sync: SyncView): void {
  new Gauge({
    name: 'weft_agent_control_connected',
    help: 'Whether this agent has an open Sync stream to the control API (1) or not (0): it keeps serving its last snapshot meanwhile.',
    registers: [registry],
    collect() { this.set(sync.state().connected ? 1 : 0); },
  });
}
