// Where the installed tree's non-TypeScript assets live (BPF objects, .proto files,
// example policies). Code runs both from sources (tests, via tsx) and from dist/, so
// paths are resolved from the package root rather than from __dirname.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

let cached: string | undefined;

export function packageRoot(): string {
  if (cached) return cached;
  let dir = __dirname;
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj) && (JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'weft') return (cached = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the weft package root above ${__dirname}`);
    dir = up;
  }
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** Compiled BPF objects (bpf/Makefile output). */
export function bpfObjectPath(name: string): string {
  return join(packageRoot(), 'bpf', '.output', `${name}.bpf.o`);
}
