// The datapath module's public surface: what the agent, `weft status` and
// `weft agent --cleanup` import.
export { Datapath, DEFAULT_ACCEL_BULK_MSG_BYTES, DEFAULT_ACCEL_MIN_BYTES, DEFAULT_REDIRECT, cgroupLevel } from './datapath';
export { findKubepodsRoot } from './kubepods';
export type { ApplySummary, AttachResult, DatapathOptions, Origin, RedirectTarget } from './datapath';
export type { DatapathBackend, DatapathService } from './services';
export { MAX_BACKENDS_PER_SERVICE, MAX_SLOTS_PER_SERVICE } from './services';
export type { CleanupReport, NodeInspection } from './teardown';
export type { Counters, CounterName, FailMode } from './codec';
export { cgroup2Root, nodeLayout, type NodeLayout } from './layout';
