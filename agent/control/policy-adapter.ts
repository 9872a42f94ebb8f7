// agent/policy behind the control API's PolicyCompiler interface. The adaptation is small
// but deliberate: diagnostics become `file:line:col: message` strings (what logs, metrics
// and Status carry), and for git trees file names are made relative to the repository,
// because the checkout's location inside the state dir means nothing to the user who
// pushed the commit.
import { relative } from 'node:path';
import { ParsedFileCache, compile, formatDiagnostic, loadPolicyDir, type Diagnostic, type PolicyLoadResult } from '../policy';
import { WeftError, isWeftError } from '../lib/errors';
import type { PolicyCompiler } from './policy-compiler';
import type { PolicyTree } from './snapshot-store';

function formatter(tree: PolicyTree): (d: Diagnostic) => string {
  return (d) => formatDiagnostic(tree.revision ? { ...d, file: relative(tree.root, d.file) } : d);
}

/** `discovered`: documents from a discovery source (Kubernetes), merged into every load. */
export function policyCompiler(discovered: () => { file: string; text: string }[] = () => []): PolicyCompiler<{ set: PolicyLoadResult; tree: PolicyTree }> {
  // Parses survive between reloads: an edit re-parses only the files it touched.
  const parsed = new ParsedFileCache();
  return {
    async load(tree) {
      const r = loadPolicyDir([tree.root], discovered(), parsed);
      return { objects: { set: r, tree }, diagnostics: r.diagnostics.map(formatter(tree)) };
    },
    compile({ set, tree }, registered, opts) {
      try {
        return compile(set, registered, opts);
      } catch (e) {
        if (!isWeftError(e, 'WEFT_ERR_INVALID_POLICY')) throw e;
        const ds = (e.details?.diagnostics ?? []) as Diagnostic[];
        throw new WeftError('WEFT_ERR_INVALID_POLICY', e.message, { cause: e, details: { diagnostics: ds.map(formatter(tree)) } });
      }
    },
  };
}
