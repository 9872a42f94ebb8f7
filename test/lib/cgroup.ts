// cgroup v2 helpers for root tests: a throw-away cgroup, and an argv wrapper that puts
// a process into a cgroup before it runs anything, so even its first connect() is seen
// by the hooks attached there (combine with Netns.spawn/exec for "this process, in this
// cgroup, in this network namespace").
//
//   const cg = createTestCgroup('wt-lb');        // <cg2>/wt-lb-<pid>-<n>
//   await ns.exec(inCgroup(cg.path, ['node', '-e', script]));
//   cg.remove();                                  // in t.after
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as native from 'weft-native';

import { cgroup2Root } from '../../agent/datapath/layout';

let counter = 0;

export interface TestCgroup {
  readonly path: string;
  readonly id: bigint;
  pids(): number[];
  /** Moves leftover processes to the cgroup v2 root, then removes the cgroup. */
  remove(): void;
}

export function pidsIn(path: string): number[] {
  return readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
}

export function createTestCgroup(prefix: string, parent: string = cgroup2Root()): TestCgroup {
  const path = join(parent, `${prefix}-${process.pid}-${counter++}`);
  mkdirSync(path);
  return {
    path,
    id: native.cgroupId(path),
    pids: () => pidsIn(path),
    remove() {
      if (!existsSync(path)) return;
      for (const pid of pidsIn(path)) writeFileSync(join(cgroup2Root(), 'cgroup.procs'), String(pid));
      rmdirSync(path);
    },
  };
}

/** argv that joins `cgroupPath` (writing its own pid) and then execs `argv`. */
export function inCgroup(cgroupPath: string, argv: string[]): string[] {
  return ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroupPath, ...argv];
}
