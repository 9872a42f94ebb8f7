// `weft` dispatcher: finds the subcommand, prints help, turns errors into exit codes.
// Subcommands are loaded lazily so `weft validate` does not pay for the gRPC or BPF code.
import type { Command } from './command';
import { describeError, isWeftError } from '../lib/errors';
import { packageVersion } from '../lib/paths';

// Lazy `require`, not `import()`: in CommonJS output TypeScript keeps import() as an ESM
// import, which then needs file extensions that differ between sources and dist/.
// Add a command as: `name: () => (require('./name') as { command: Command }).command,`
const commands: Record<string, () => Command> = {
  validate: () => (require('./validate') as { command: Command }).command,
  agent: () => (require('./agent') as { command: Command }).command,
  run: () => (require('./run') as { command: Command }).command,
  status: () => (require('./status') as { command: Command }).command,
  explain: () => (require('./explain') as { command: Command }).command,
  tap: () => (require('./tap') as { command: Command }).command,
  control: () => (require('./control') as { command: Command }).command,
  token: () => (require('./token') as { command: Command }).command,
  demo: () => (require('./demo') as { command: Command }).command,
};

async function usage(): Promise<string> {
  const lines = [
    'weft — sidecarless, eBPF-accelerated service mesh',
    '',
    'Usage: weft COMMAND [FLAGS]   (weft COMMAND --help for details)',
    '',
    'Commands:',
  ];
  for (const [n, load] of Object.entries(commands)) lines.push(`  ${n.padEnd(10)} ${load().summary}`);
  return lines.join('\n') + '\n';
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    (name ? process.stdout : process.stderr).write(await usage());
    return name ? 0 : 2;
  }
  if (name === '--version') {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  const load = commands[name];
  if (!load) {
    process.stderr.write(`weft: unknown command '${name}'\n\n${await usage()}`);
    return 2;
  }
  const cmd = load();
  try {
    return await cmd.run(rest);
  } catch (e) {
    process.stderr.write(`weft ${name}: ${describeError(e)}\n`);
    if (isWeftError(e, 'WEFT_ERR_INVALID_ARG')) {
      process.stderr.write(`Run 'weft ${name} --help' for usage.\n`);
      return 2;
    }
    return 1;
  }
}
