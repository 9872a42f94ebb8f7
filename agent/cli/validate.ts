// `weft validate PATH...`: checks policy files the way the control API will (same loader,
// same checks) so a pre-commit hook or CI job catches every problem before it ships.
import type { Command } from './command';
import { parseFlags } from './command';
import { invalidArg } from '../lib/errors';
import { formatDiagnostic, loadPolicyDir } from '../policy';

const help = `Usage: weft validate [--format text|json] PATH...

Checks policy files (PATH may be a file or a directory, searched recursively for *.yaml
and *.yml): YAML syntax, the schema of every kind, and the policy set as a whole
(unknown references, duplicate names, VIP and port clashes, impossible weights, bad
CIDRs, regexes and principals, shadowed and conflicting routes). Regexes are RE2 syntax
(no backreferences or lookaround); header modifier values may not hold CR, LF, NUL or
other control characters. Files over 1 MiB or 5000 documents, trees over 32 MiB or
50 000 documents, and documents over 100 000 values once YAML aliases are expanded
are refused, like every other problem, as FILE:LINE:COL: MESSAGE.

Prints every problem as FILE:LINE:COL: MESSAGE, sorted, and exits 1; exits 0 with a
one-line summary when the set is clean.

Flags:
  --format text|json   json prints {ok, objects, files, diagnostics:[{file,line,col,message}]}
  -h, --help           this text

Example:
  weft validate policies/
`;

export const command: Command = {
  name: 'validate',
  summary: 'check policy files and print every problem as file:line:col: message',
  help,
  async run(argv) {
    const { values, positionals, help: wantHelp } = parseFlags<{ format?: string }>(argv, { format: { type: 'string' } }, true);
    if (wantHelp) { process.stdout.write(help); return 0; }
    const format = values.format ?? 'text';
    if (format !== 'text' && format !== 'json') throw invalidArg(`--format: expected text or json, got '${format}'`);
    if (!positionals.length) throw invalidArg('expected at least one PATH');
    const out = validateReport(positionals, format);
    process.stdout.write(out.stdout);
    process.stderr.write(out.stderr);
    return out.code;
  },
};

/** The whole of `weft validate` except the writing, so tests can compare exact output. */
export function validateReport(paths: string[], format: 'text' | 'json'): { code: number; stdout: string; stderr: string } {
  const r = loadPolicyDir(paths);
  const ok = r.diagnostics.length === 0;
  const code = ok ? 0 : 1;
  if (format === 'json') {
    return { code, stdout: JSON.stringify({ ok, objects: r.objects.length, files: r.files.length, diagnostics: r.diagnostics }) + '\n', stderr: '' };
  }
  if (ok) return { code, stdout: `${r.objects.length} objects in ${r.files.length} files OK\n`, stderr: '' };
  const n = r.diagnostics.length;
  return {
    code,
    stdout: r.diagnostics.map((d) => formatDiagnostic(d) + '\n').join(''),
    stderr: `${n} problem${n === 1 ? '' : 's'} (${r.files.length} file${r.files.length === 1 ? '' : 's'} checked)\n`,
  };
}
