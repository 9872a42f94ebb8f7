// agent/policy behind the control API's PolicyCompiler interface. The adaptation is small
// but deliberate: diagnostics become `file:line:col: message` strings (what logs, metrics
// and Status carry), and for git trees file names are made relative to the repository,
// because the checkout's location inside the state dir means nothing to the user who
// pushed the commit.
import { relative } from 'node:path';
import { formatDiagnostic, type Diagnostic, type PolicyLoadResult } from '../policy';
import { IncrementalPolicy } from '../policy/incremental';
import { WeftError, isWeftError } from '../lib/errors';
import type { PolicyCompiler } from './policy-compiler';
import type { PolicyTree } from './snapshot-store';

function formatter(tree: PolicyTree): (d: Diagnostic) => string {
  return (d) => formatDiagnostic(tree.revision ? { ...d, file: relative(tree.root, d.file) } : d);
}

/** `discovered`: documents from a discovery source (Kubernetes), merged into every load. */
export function policyCompiler(discovered: () => { file: string; text: string }[] = () => []): PolicyCompiler<{ set: PolicyLoadResult; tree: PolicyTree }> {
  // Parses, indexes and the last snapshot survive between reloads: an edit re-parses
  // only the files it touched, and a Workload change (endpoint churn) re-checks and
  // recompiles only what it touches (agent/policy/incremental.ts).
  const engine = new IncrementalPolicy();
  return {
    async load(tree) {
      const r = tree.files ? engine.loadTree(tree.files, discovered()) : engine.load([tree.root], discovered());
      return { objects: { set: r, tree }, diagnostics: r.diagnostics.map(formatter(tree)) };
    },
    compile({ set, tree }, registered, opts) {
      try {
        return engine.compile(set, registered, opts);
      } catch (e) {
        if (!isWeftError(e, 'WEFT_ERR_INVALID_POLICY')) throw e;
        const ds = (e.details?.diagnostics ?? []) as Diagnostic[];
        throw new WeftError('WEFT_ERR_INVALID_POLICY', e.message, { cause: e, details: { diagnostics: ds.map(formatter(tree)) } });
      }
    },
  };
}
