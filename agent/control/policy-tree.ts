// What a policy source hands the control API (sources/*) and the compiler loads.

/** What a source reports: the checked-out tree and, for git, the commit it is at. */
export interface PolicyTree {
  root: string;
  revision?: string;
}
