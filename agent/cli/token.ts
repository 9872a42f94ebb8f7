// `weft token`: per-node bootstrap tokens for the control API's token file. Composition
// only: the file format and its checks live in agent/control/auth.ts.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from './command';
import { parseFlags } from './command';
import { invalidArg } from '../lib/errors';
import { isDnsSubdomain } from '../lib/names';
import { writeFileAtomic } from '../sync/atomic-file';

const DEFAULT_FILE = '/var/lib/weft/control/bootstrap-token';

const help = `Usage: weft token create --node NODE [--token-file FILE] [--out FILE] [--rotate]
       weft token list [--token-file FILE]

Per-node bootstrap tokens. An agent presents its token to the control API until it holds
its node certificate; a token is accepted only for the node it was made for, so a token
read on one node cannot bootstrap another. The control API re-reads the file when it
changes: no restart. (On Kubernetes, agents use their ServiceAccount token instead; see
deploy/README.md.)

  create   make a random token for NODE, append 'NODE TOKEN' to the control API's token
           file (created 0600 if missing) and write the token alone to --out (0600; the
           agent's --token-file) or, without --out, print it on stdout
  list     the nodes that have a token line, and bare tokens (bound to the first node
           that presents them, see STATE_DIR/token-bindings.json)

Flags:
  --node NODE          the node's name (as the agent's --node)
  --token-file FILE    the control API's token file (default ${DEFAULT_FILE})
  --out FILE           write the new token here instead of stdout
  --rotate             replace NODE's existing token (the old one stops working within
                       a second; agents holding a node certificate are unaffected)
  -h, --help           this text

Examples:
  weft token create --node node-2 --out /tmp/node-2.token   # then copy to node-2:/etc/weft/token
  weft token list
`;

interface Flags { node?: string; 'token-file'?: string; out?: string; rotate?: boolean }

interface Line { raw: string; node?: string }

function readLines(file: string): Line[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((l, i, all) => l !== '' || i < all.length - 1).map((raw) => {
    const fields = raw.replace(/#.*/, '').trim().split(/\s+/).filter(Boolean);
    return fields.length === 2 ? { raw, node: fields[0] } : { raw };
  });
}

export const command: Command = {
  name: 'token',
  summary: 'make and list per-node bootstrap tokens for the control API',
  help,
  async run(argv) {
    const { values, positionals, help: wantHelp } = parseFlags<Flags>(argv, {
      node: { type: 'string' }, 'token-file': { type: 'string' }, out: { type: 'string' }, rotate: { type: 'boolean' },
    }, true);
    if (wantHelp) { process.stdout.write(help); return 0; }
    const [verb, ...extra] = positionals;
    if (extra.length) throw invalidArg(`unexpected argument '${extra[0]}'`);
    const file = resolve(values['token-file'] ?? DEFAULT_FILE);
    if (verb === 'list') {
      if (values.node || values.out || values.rotate) throw invalidArg('list takes only --token-file');
      if (!existsSync(file)) throw invalidArg(`--token-file: ${file} does not exist`);
      const lines = readLines(file).filter((l) => l.raw.replace(/#.*/, '').trim());
      for (const l of lines) process.stdout.write(l.node ? `${l.node}\n` : '(bare token: binds to the first node that presents it)\n');
      return 0;
    }
    if (verb !== 'create') throw invalidArg(verb ? `unknown action '${verb}' (create or list)` : 'an action is required: create or list');
    const node = values.node;
    if (!node) throw invalidArg('--node is required');
    if (!isDnsSubdomain(node)) throw invalidArg(`--node: '${node}' is not a node name (DNS subdomain)`);
    const lines = readLines(file);
    const existing = lines.filter((l) => l.node === node);
    if (existing.length && !values.rotate) throw invalidArg(`${file} already has a token for ${node} (--rotate replaces it)`);
    const token = randomBytes(24).toString('base64url');
    const kept = lines.filter((l) => l.node !== node).map((l) => l.raw);
    if (values.out) await writeFileAtomic(resolve(values.out), `${token}\n`, 0o600);
    await writeFileAtomic(file, `${[...kept, `${node} ${token}`].join('\n')}\n`, 0o600);
    if (values.out) process.stderr.write(`weft token: ${existing.length ? 'rotated' : 'added'} the token of ${node} in ${file}; the agent's copy is ${resolve(values.out)}\n`);
    else process.stdout.write(`${token}\n`);
    return 0;
  },
};
