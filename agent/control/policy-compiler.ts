// The control API's narrow view of the policy engine (agent/policy): load a policy tree,
// compile it with the registered workloads into a versioned Snapshot. (Per-node views are
// cut from the Snapshot by agent/policy/view-resources.ts, the same for every compiler.)
// The server depends on this interface only, so the transport, sources and state machine
// do not change when the policy engine does; `realPolicyCompiler` adapts agent/policy.
import type { NodeReport, Snapshot, WorkloadRegistration } from '../policy/snapshot';
import type { PolicyTreeFiles } from '../policy/tree-files';

/** What a source reports: the checked-out tree and, for git, the commit it is at. */
export interface PolicyTree {
  root: string;
  revision?: string;
  /** The tree's files as the source keeps them up to date (a watched directory): the
   *  compiler reads these instead of walking and reading `root`. */
  files?: PolicyTreeFiles;
}

export interface LoadResult<O> {
  objects: O;
  /** One `file:line:col: message` per problem; non-empty means the tree is rejected. */
  diagnostics: string[];
}

export interface PolicyCompiler<O = unknown> {
  /** Loads and validates the tree (a git tree's diagnostics name repository paths). */
  load(tree: PolicyTree): Promise<LoadResult<O>>;
  /** Throws WeftError WEFT_ERR_INVALID_POLICY (details.diagnostics: string[]) when the
   *  objects plus registrations do not form a valid snapshot. `previous` keeps
   *  allocated VIPs stable across versions; `nodes` are the addresses agents reported. */
  compile(objects: O, registered: WorkloadRegistration[], opts: { version?: string; previous?: Snapshot; nodes?: NodeReport[] }): Snapshot;
}
