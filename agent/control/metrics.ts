// Control API metrics on their own prom-client registry (not the global one), so several
// servers in one process (tests) do not collide and /metrics shows only control series.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ControlMetrics {
  readonly registry = new Registry();
  readonly rejections = new Counter({ name: 'weft_control_policy_rejections_total', help: 'Policy changes rejected by validation or compilation (the last good snapshot kept serving).', registers: [this.registry] });
  readonly snapshotVersion = new Gauge({ name: 'weft_policy_snapshot_version', help: 'The snapshot version being served (value 1 on the series of the current version).', labelNames: ['version'], registers: [this.registry] });
  readonly lastReloadSuccess = new Gauge({ name: 'weft_control_last_reload_success', help: '1 if the last policy reload was accepted, 0 if it was rejected.', registers: [this.registry] });
  readonly compileSeconds = new Histogram({ name: 'weft_control_compile_duration_seconds', help: 'Time to load, validate and compile the policy tree.', buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [this.registry] });
  readonly connectedAgents = new Gauge({ name: 'weft_control_connected_agents', help: 'Agents with an open Sync stream.', registers: [this.registry] });
  readonly pushes = new Counter({ name: 'weft_control_pushes_total', help: 'Snapshots sent to agents.', registers: [this.registry] });
  readonly deltaResources = new Counter({ name: 'weft_control_delta_resources_total', help: 'View resources sent in delta pushes (changed or new for that agent).', registers: [this.registry] });
  readonly pushBytes = new Counter({ name: 'weft_control_push_bytes_total', help: 'View payload bytes sent to agents (whole views and delta resources).', registers: [this.registry] });
  readonly acks = new Counter({ name: 'weft_control_acks_total', help: 'Snapshots acknowledged by agents.', registers: [this.registry] });
  readonly nacks = new Counter({ name: 'weft_control_nacks_total', help: 'Snapshots rejected by agents.', registers: [this.registry] });
  readonly slowAgentsDropped = new Counter({ name: 'weft_control_slow_agents_dropped_total', help: 'Sync streams ended because the agent left a push unanswered too long while newer versions waited (it reconnects and resyncs).', registers: [this.registry] });
  readonly digestMismatches = new Counter({ name: 'weft_control_sync_digest_mismatches_total', help: 'Delta Sync hellos whose resource digest is not this replica\'s view of the node (the agent is asked to list its resources).', registers: [this.registry] });
  readonly leader = new Gauge({ name: 'weft_control_leader', help: '1 while this replica holds the control API Lease (replicated mode), else 0.', registers: [this.registry] });

  constructor() {
    // Process metrics (RSS, heap, external memory, event-loop lag) for the control process.
    collectDefaultMetrics({ register: this.registry });
  }

  setVersion(version: string): void {
    this.snapshotVersion.reset();
    this.snapshotVersion.set({ version }, 1);
  }
}
