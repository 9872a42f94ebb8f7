// One root pino logger per process; every component takes a child with
// `{component: '...'}`. Secrets are redacted by path; never bind untrusted objects
// (request headers, policy bodies) into bindings, log the fields you need instead.
import pino, { type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

const REDACT = ['token', '*.token', 'privateKey', '*.privateKey', 'key', '*.key', 'authorization', '*.authorization'];

let root: Logger | undefined;

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Where to write; defaults to stderr so stdout stays free for command output. */
  destination?: NodeJS.WritableStream | number;
  base?: Record<string, unknown>;
}

export function createRootLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? (process.env.WEFT_LOG_LEVEL as LevelWithSilent | undefined) ?? 'info';
  const dest = opts.destination ?? 2;
  root = pino(
    { level, base: opts.base ?? { pid: process.pid }, redact: { paths: REDACT, censor: '[redacted]' } },
    typeof dest === 'number' ? pino.destination({ fd: dest, sync: false }) : dest,
  );
  return root;
}

export function rootLogger(): Logger {
  return root ?? createRootLogger();
}

export function componentLogger(component: string, bindings: Record<string, string | number> = {}): Logger {
  return rootLogger().child({ component, ...bindings });
}
