// The shape of a `weft` subcommand and the shared flag parser. Each subcommand lives in
// its own file in this folder and exports `command`; main.ts only dispatches.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { describeError, invalidArg } from '../lib/errors';

export interface Command {
  name: string;
  /** One line for `weft --help`. */
  summary: string;
  /** Full text for `weft NAME --help`: usage line, flags, examples. */
  help: string;
  run(argv: string[]): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed<T> {
  values: T;
  positionals: string[];
  /** Set when --help/-h was given: the caller prints `help` and exits 0. */
  help: boolean;
}

/**
 * Strict flag parsing with `--help` built in. Unknown flags and missing values become
 * WEFT_ERR_INVALID_ARG errors whose message names the flag, so every command reports
 * bad input the same way.
 */
export function parseFlags<T = Record<string, string | boolean | string[] | undefined>>(
  argv: string[], options: Options, allowPositionals = false,
): Parsed<T> {
  try {
    const r = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
    const { help, ...values } = r.values as Record<string, unknown>;
    return { values: values as T, positionals: r.positionals, help: help === true };
  } catch (e) {
    throw invalidArg(describeError(e).replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
}

export { parseHostPort } from '../lib/listen';
