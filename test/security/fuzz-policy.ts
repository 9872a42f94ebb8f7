// Seeded mutation fuzzer for the policy loader (`npm run fuzz:policy`).
//
// Seeds: policies/ (the example mesh), test/unit/fixtures/policy/ (the broken-policy
// corpus) and test/security/corpus/policy/ (attack shapes: alias bombs, recursive
// aliases, backtracking regexes, header injection, deep nesting). Each round takes a
// seed, applies 1-8 mutations (bytes, lines, YAML structure, splices from other seeds,
// tokens that have broken YAML loaders before) and loads the result the way `weft
// validate` and the control API do; a clean load is compiled and cut into a node view
// and the proxy's route tables too. Properties checked for every input:
//   - the loader returns diagnostics and never throws (a clean set's compile may only
//     throw WEFT_ERR_INVALID_POLICY);
//   - it answers within FUZZ_INPUT_MS (default 10 s; a 400 KB broken file takes ~0.35 s on the main thread, 1-3 s in the capped worker on 2 busy cores), in a worker thread whose heap is
//     capped at FUZZ_HEAP_MB (default 160 MB, the V8 heap cap the control API is deployed with): a hang or a heap blow-up is a failure;
//   - every diagnostic is located: the input's file name, 1 <= line <= lines + 1,
//     1 <= col, a non-empty message of at most 1000 characters; at most 1000 of them.
// Failing inputs are written to FUZZ_OUT (default: a temp dir) and the run exits 1.
//
// Environment: FUZZ_SECONDS (default 30), FUZZ_SEED (default: time-based, printed, so a
// failing run can be replayed), FUZZ_INPUT_MS, FUZZ_HEAP_MB, FUZZ_OUT.
import { Worker } from 'node:worker_threads';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { mulberry32 } from '../lib/rng';

const ROOT = join(__dirname, '..', '..');
const SECONDS = Number(process.env.FUZZ_SECONDS ?? 30);
const INPUT_MS = Number(process.env.FUZZ_INPUT_MS ?? 10000);
const HEAP_MB = Number(process.env.FUZZ_HEAP_MB ?? 160);
const SEED = Number(process.env.FUZZ_SEED ?? (Date.now() % 2 ** 31));

// ------------------------------------------------------------------ deterministic PRNG

const rand = mulberry32(SEED);
const int = (n: number) => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

// ------------------------------------------------------------------ seeds

function yamlFiles(dir: string): string[] {
  let out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(yamlFiles(p));
    else if (/\.ya?ml$/.test(name)) out.push(p);
  }
  return out;
}

export function seedCorpus(): { name: string; text: string }[] {
  const dirs = ['policies', 'test/unit/fixtures/policy', 'test/security/corpus/policy'];
  return dirs.flatMap((d) => yamlFiles(join(ROOT, d))).map((p) => ({ name: p.slice(ROOT.length + 1), text: readFileSync(p, 'utf8') }));
}

// ------------------------------------------------------------------ mutations

const TOKENS = [
  '&a ', '*a', '&b [*a, *a, *a, *a]', '<<: *a', '!!binary ', '!!str ', '!custom ', '? ', '---\n', '...\n', '%YAML 1.2\n---\n',
  '\t', '\0', '\r', '\r\n', '\u2028', '\uFEFF', '\u010A', '"', "'", '\\', '{', '}', '[', ']', ',', ': ', '- ', '#', '|\n  ', '>-\n  ',
  '~', 'null', 'true', '0x1F', '1e999', '-0', '.inf', '.nan', '065536', '"\\x00"', '"\\r\\nx-injected: 1"', '"\\u010a"',
  '(a+)+$', '(?<=a)b', '(a)\\1', 'x{1000}{1000}', '[[:alpha:]]', '\\p{Greek}', '(?i)', '*', '.*.*.*.*.*=.*',
  'RegularExpression', 'PathPrefix', 'Exact', 'HTTPRoute', 'GRPCRoute', 'Service', 'Workload', 'MeshConfig', 'AuthorizationPolicy', 'TrafficPolicy',
  'spiffe://', '10.96.0.1', '0.0.0.0/0', '::1', '1ns', '99999h', 'content-length', 'transfer-encoding', 'host',
];

function randomText(): string {
  const kind = int(4);
  if (kind === 0) return pick(TOKENS);
  if (kind === 1) return String.fromCharCode(int(0x80));
  if (kind === 2) return String.fromCharCode(int(0x10000));
  return pick(TOKENS).repeat(1 + int(64));
}

function bigText(): string {
  switch (int(4)) {
    case 0: { // an alias bomb of random depth and width
      const w = 2 + int(9), d = 2 + int(12);
      const lines = [`b0: &b0 [${Array(w).fill('x').join(',')}]`];
      for (let i = 1; i < d; i++) lines.push(`b${i}: &b${i} [${Array(w).fill(`*b${i - 1}`).join(',')}]`);
      return `${lines.join('\n')}\n`;
    }
    case 1: { const n = 1 + int(20_000); return '['.repeat(n) + ']'.repeat(int(2) ? n : int(n)); }
    case 2: return `{${Array.from({ length: int(30_000) }, (_, i) => `k${i % (1 + int(50_000))}: ${i}`).join(', ')}}`;
    default: return `"${'a'.repeat(int(300_000))}!"`;
  }
}

function mutate(text: string, others: readonly { text: string }[]): string {
  let s = text;
  const rounds = 1 + int(8);
  for (let r = 0; r < rounds; r++) {
    const at = int(s.length + 1);
    const lines = s.split('\n');
    switch (int(12)) {
      case 0: s = s.slice(0, at) + randomText() + s.slice(at); break; // insert
      case 1: { const n = 1 + int(32); s = s.slice(0, at) + s.slice(at + n); break; } // delete
      case 2: { const n = 1 + int(64); s = s.slice(0, at) + s.slice(at, at + n).repeat(2 + int(8)) + s.slice(at + n); break; } // repeat a range
      case 3: if (s.length) { const i = int(s.length); s = s.slice(0, i) + String.fromCharCode(s.charCodeAt(i) ^ (1 << int(7))) + s.slice(i + 1); } break; // bit flip
      case 4: { const o = pick(others).text; const a = int(o.length), b = a + int(400); s = s.slice(0, at) + o.slice(a, b) + s.slice(at); break; } // splice
      case 5: { const i = int(lines.length); lines.splice(i, 0, lines[int(lines.length)] ?? ''); s = lines.join('\n'); break; } // duplicate a line
      case 6: { const i = int(lines.length), j = int(lines.length); [lines[i], lines[j]] = [lines[j]!, lines[i]!]; s = lines.join('\n'); break; } // swap lines
      case 7: { const i = int(lines.length); lines[i] = ' '.repeat(int(12)) + (lines[i] ?? '').trimStart(); s = lines.join('\n'); break; } // re-indent
      case 8: { // anchor a value and alias it elsewhere
        const i = int(lines.length), j = int(lines.length);
        lines[i] = (lines[i] ?? '').replace(/: /, ': &z ');
        lines[j] = (lines[j] ?? '').replace(/: .*$/, ': *z');
        s = lines.join('\n');
        break;
      }
      case 9: { // replace a scalar value with a token
        const i = int(lines.length);
        lines[i] = (lines[i] ?? '').replace(/: [^,}\]]*/, `: ${randomText()}`);
        s = lines.join('\n');
        break;
      }
      case 10: if (int(8) === 0) s = s.slice(0, at) + bigText() + s.slice(at); break; // something large, now and then
      default: s = `${s}\n---\n${pick(others).text}`; // another document
    }
  }
  return s;
}

// ------------------------------------------------------------------ the target, in a worker

const TARGET = `
  const { parentPort } = require('node:worker_threads');
  require('tsx/cjs');
  const { loadPolicyTexts, compile, forNode } = require(${JSON.stringify(join(ROOT, 'agent/policy'))});
  const { L7Directory } = require(${JSON.stringify(join(ROOT, 'agent/proxy/routing/directory'))});
  parentPort.on('message', ({ id, file, text }) => {
    const problems = [];
    let diagnostics = 0;
    try {
      const r = loadPolicyTexts([{ file, text }]);
      diagnostics = r.diagnostics.length;
      const lines = text.split('\\n').length;
      if (r.diagnostics.length > 1000) problems.push('more than 1000 diagnostics: ' + r.diagnostics.length);
      for (const d of r.diagnostics) {
        const where = JSON.stringify(d).slice(0, 300);
        if (d.file !== file) problems.push('diagnostic for another file: ' + where);
        if (!Number.isInteger(d.line) || d.line < 1 || d.line > lines + 1) problems.push('line out of range: ' + where);
        if (!Number.isInteger(d.col) || d.col < 1) problems.push('col out of range: ' + where);
        if (typeof d.message !== 'string' || !d.message || d.message.length > 1000) problems.push('message empty or over 1000 characters: ' + where);
      }
      if (r.diagnostics.length === 0) {
        try {
          const snap = compile(r, []);
          const nodes = new Set(snap.workloads.map((w) => w.node));
          for (const n of nodes.size ? nodes : ["n1"]) { const d = new L7Directory(); try { d.apply(forNode(snap, n)); } finally { d.close(); } }
        } catch (e) {
          if (!(e && e.code === 'WEFT_ERR_INVALID_POLICY')) problems.push('compile threw: ' + String(e && e.stack || e).slice(0, 2000));
        }
      }
    } catch (e) {
      problems.push('loader threw: ' + String(e && e.stack || e).slice(0, 2000));
    }
    parentPort.postMessage({ id, problems, diagnostics });
  });
`;

class Target {
  private worker!: Worker;
  private pending: { id: number; resolve: (r: Outcome) => void; timer: NodeJS.Timeout } | null = null;
  private next = 0;

  constructor() { this.spawn(); }

  // stackSizeMb 1: the main thread's stack (V8's default, ~1 MB), where `weft validate`
  // and the control API run the loader; a worker's default 4 MB lets a deep recursion
  // allocate far more before it overflows than production ever would.
  private spawn(): void {
    this.worker = new Worker(TARGET, { eval: true, resourceLimits: { maxOldGenerationSizeMb: HEAP_MB, maxYoungGenerationSizeMb: 64, stackSizeMb: 1 }, stdout: true, stderr: true });
    this.worker.on('message', (m: { id: number; problems: string[]; diagnostics: number }) => {
      const p = this.pending;
      if (!p || p.id !== m.id) return;
      this.settle({ kind: m.problems.length ? 'property' : 'ok', problems: m.problems, diagnostics: m.diagnostics });
    });
    this.worker.on('error', (e: NodeJS.ErrnoException) => {
      this.settle({ kind: e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'memory' : 'crash', problems: [String(e.stack ?? e).slice(0, 2000)], diagnostics: 0 }, true);
    });
    this.worker.on('exit', () => this.settle({ kind: 'crash', problems: ['worker exited'], diagnostics: 0 }, true));
  }

  private settle(o: Outcome, dead = false): void {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    clearTimeout(p.timer);
    if (dead || o.kind === 'timeout') { const w = this.worker; w.removeAllListeners(); void w.terminate(); this.spawn(); }
    p.resolve(o);
  }

  run(file: string, text: string): Promise<Outcome> {
    return new Promise((resolve) => {
      const id = ++this.next;
      const timer = setTimeout(() => this.settle({ kind: 'timeout', problems: [`no answer within ${INPUT_MS} ms`], diagnostics: 0 }), INPUT_MS);
      this.pending = { id, resolve, timer };
      this.worker.postMessage({ id, file, text });
    });
  }

  /** Waits for the worker to have loaded its modules, so the first input's time bound
   *  does not include compiling the TypeScript sources. */
  async ready(): Promise<void> {
    const r = await new Promise<Outcome>((resolve) => {
      const id = ++this.next;
      const timer = setTimeout(() => this.settle({ kind: 'timeout', problems: ['worker did not start'], diagnostics: 0 }), Math.max(INPUT_MS, 30_000));
      this.pending = { id, resolve, timer };
      this.worker.postMessage({ id, file: 'warmup.yaml', text: 'kind: Service\n' });
    });
    if (r.kind !== 'ok') throw new Error(`fuzz target did not start: ${r.problems.join('; ')}`);
  }

  close(): Promise<number> { this.worker.removeAllListeners(); return this.worker.terminate(); }
}

interface Outcome { kind: 'ok' | 'property' | 'timeout' | 'memory' | 'crash'; problems: string[]; diagnostics: number }

// ------------------------------------------------------------------ main loop

async function main(): Promise<number> {
  const seeds = seedCorpus();
  const out = process.env.FUZZ_OUT ?? mkdtempSync(join(tmpdir(), 'weft-fuzz-policy-'));
  mkdirSync(out, { recursive: true });
  process.stdout.write(`fuzz:policy seed=${SEED} seconds=${SECONDS} per-input=${INPUT_MS}ms heap=${HEAP_MB}MB seeds=${seeds.length} failures→${out}\n`);
  const target = new Target();
  await target.ready();
  const failures = new Map<string, { kind: string; problem: string; file: string }>();
  const started = Date.now();
  let execs = 0, clean = 0, slowest = 0;
  const record = async (name: string, text: string, o: Outcome, ms: number) => {
    execs++;
    slowest = Math.max(slowest, ms);
    if (o.kind === 'ok') { if (o.diagnostics === 0) clean++; return; }
    // One report per kind of failure and first line of the problem: a bug found a
    // thousand times is still one bug.
    const key = `${o.kind}:${(o.problems[0] ?? '').split('\n')[0]!.replace(/\d+/g, 'N').slice(0, 120)}`;
    if (failures.has(key)) return;
    const file = join(out, `${o.kind}-${createHash('sha256').update(text).digest('hex').slice(0, 12)}.yaml`);
    writeFileSync(file, text);
    failures.set(key, { kind: o.kind, problem: o.problems.join('\n').slice(0, 1000), file });
    process.stdout.write(`FAIL ${o.kind} (${ms} ms) from ${name}: ${o.problems[0]?.slice(0, 300)}\n  input: ${file}\n`);
  };
  // Every seed once as is, then mutants until the budget is spent.
  for (const s of seeds) {
    const t0 = Date.now();
    await record(s.name, s.text, await target.run(s.name, s.text), Date.now() - t0);
  }
  while (Date.now() - started < SECONDS * 1000) {
    const s = pick(seeds);
    const text = mutate(s.text, seeds);
    const t0 = Date.now();
    await record(`mutant of ${s.name}`, text, await target.run('fuzz.yaml', text), Date.now() - t0);
  }
  await target.close();
  const secs = (Date.now() - started) / 1000;
  process.stdout.write(`fuzz:policy ${execs} inputs in ${secs.toFixed(1)} s (${(execs / secs).toFixed(0)}/s), ${clean} clean, slowest ${slowest} ms, ${failures.size} failure${failures.size === 1 ? '' : 's'} (seed ${SEED})\n`);
  return failures.size ? 1 : 0;
}

if (require.main === module) {
  main().then((code) => { process.exitCode = code; }, (e) => { process.stderr.write(`${(e as Error).stack ?? e}\n`); process.exitCode = 2; });
}
