// Whether the node's datapath is still there, for /readyz: `weft agent --cleanup` (or an
// operator's rm under /sys/fs/bpf) under a running agent detaches and unpins its links,
// after which the VIPs stop working although the process is fine. A pinned link is the
// attachment (it detaches when its pin and the last fd go), so each program the agent
// attached must still have its pin, and that link must still be attached to a cgroup.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as native from 'weft-native';
import { nodeLayout } from '../datapath/layout';
import { describeError } from '../lib/errors';

/** Reasons the datapath is not serving (empty: it is). */
export function datapathProblems(node: string, attached: readonly { program: string }[]): string[] {
  let linksDir: string;
  try { linksDir = nodeLayout(node).linksDir; } catch (e) { return [`datapath: ${describeError(e)}`]; }
  const missing: string[] = [], detached: string[] = [];
  for (const { program } of attached) {
    const pin = join(linksDir, program);
    if (!existsSync(pin)) { missing.push(program); continue; }
    try {
      const link = native.BpfLink.openPinned(pin);
      try { if (link.cgroupId === 0n) detached.push(program); } finally { link.close(); }
    } catch {
      missing.push(program);
    }
  }
  const out: string[] = [];
  if (!attached.length) out.push('datapath: no programs attached');
  if (missing.length) out.push(`datapath gone: ${missing.length} of ${attached.length} pinned links missing under ${linksDir} (${missing.join(', ')}); was 'weft agent --cleanup' run? restart the agent`);
  if (detached.length) out.push(`datapath detached: ${detached.join(', ')}`);
  return out;
}
