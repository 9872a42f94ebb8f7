// Runs a piece of the policy code in a worker thread with a deadline and a heap cap, so
// a test (or the fuzzer) can observe a hang or a memory blow-up as a result instead of
// being frozen by it: the loader and the matcher are synchronous, and a timer in the
// thread that called them would never fire.
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';

export const ROOT = join(__dirname, '..', '..');

export type Isolated<T> =
  | { ok: true; value: T; ms: number }
  | { ok: false; reason: 'timeout' | 'error' | 'memory'; message: string; ms: number };

/**
 * Evaluates `body` (CommonJS source: the body of an async function of `input`, with
 * `require` resolving from the repository root, TypeScript via tsx) in a fresh worker.
 * Resolves with its return value (structured-cloned) and how long it ran.
 */
export function isolate<T>(body: string, input: unknown, opts: { timeoutMs: number; heapMb?: number }): Promise<Isolated<T>> {
  const src = `
    const { parentPort, workerData } = require('node:worker_threads');
    require('tsx/cjs');
    const { createRequire } = require('node:module');
    const req = createRequire(${JSON.stringify(join(ROOT, 'package.json'))});
    const run = async (input, require) => { ${body} };
    const t0 = process.hrtime.bigint();
    run(workerData, req).then(
      (value) => parentPort.postMessage({ ok: true, value, ms: Number(process.hrtime.bigint() - t0) / 1e6 }),
      (e) => parentPort.postMessage({ ok: false, reason: 'error', message: String(e && e.stack || e), ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
  `;
  const started = Date.now();
  return new Promise((resolve) => {
    const w = new Worker(src, { eval: true, workerData: input, resourceLimits: { maxOldGenerationSizeMb: opts.heapMb ?? 512 }, stdout: true, stderr: true });
    let done = false;
    const finish = (r: Isolated<T>) => { if (done) return; done = true; clearTimeout(timer); void w.terminate(); resolve(r); };
    const timer = setTimeout(() => finish({ ok: false, reason: 'timeout', message: `no answer within ${opts.timeoutMs} ms`, ms: Date.now() - started }), opts.timeoutMs);
    w.on('message', (m: Isolated<T>) => finish(m));
    w.on('error', (e: NodeJS.ErrnoException) => finish({ ok: false, reason: e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'memory' : 'error', message: String(e.stack ?? e), ms: Date.now() - started }));
    w.on('exit', (code) => finish({ ok: false, reason: 'error', message: `worker exited with ${code}`, ms: Date.now() - started }));
  });
}

/** Ten levels of nine aliases each: 9^10 ≈ 3.5e9 strings once expanded, 700 bytes. */
export function billionLaughs(): string {
  const lines = ['apiVersion: weft.dev/v1alpha1', 'kind: Service', 'metadata: {name: lol}', 'x0: &a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]'];
  for (let i = 1; i < 10; i++) lines.push(`x${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(',')}]`);
  lines.push('spec: *a9', '');
  return lines.join('\n');
}
