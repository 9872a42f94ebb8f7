// Which node each bare bootstrap token is bound to. A token-file line without a node
// name ("TOKEN") is accepted for the first node that presents it and for that node only
// from then on, so a token copied from one node cannot bootstrap another. The binding is
// keyed by the token's SHA-256 digest (the store never holds a token) and must outlive
// a restart of the control API: FileTokenBindings keeps it in the state dir, written
// atomically before the first call it authenticates is answered.
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../sync/atomic-file';
import { WeftError } from '../lib/errors';

export interface TokenBindings {
  /** The node the token with this digest is bound to; binds it to `node` when it is not
   *  bound yet. Concurrent first uses by two nodes: exactly one wins. */
  bind(digestHex: string, node: string): Promise<string>;
  /** Bound digests and their nodes (for status and tests). */
  entries(): ReadonlyMap<string, string>;
}

/** Bindings for one process's lifetime (tests, and `weft control` without a state dir). */
export class MemoryTokenBindings implements TokenBindings {
  protected readonly byDigest = new Map<string, string>();

  bind(digestHex: string, node: string): Promise<string> {
    const bound = this.byDigest.get(digestHex);
    if (bound !== undefined) return Promise.resolve(bound);
    this.byDigest.set(digestHex, node);
    return Promise.resolve(node);
  }

  entries(): ReadonlyMap<string, string> { return this.byDigest; }
}

interface BindingsFile { version: 1; bindings: Record<string, { node: string; at: string }> }

/** Bindings persisted in a JSON file (STATE_DIR/token-bindings.json). Writes are
 *  serialised; a binding counts only once it is on disk. */
export class FileTokenBindings implements TokenBindings {
  private readonly byDigest = new Map<string, { node: string; at: string }>();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly path: string) {
    let text: string | undefined;
    try { text = readFileSync(path, 'utf8'); } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new WeftError('WEFT_ERR_INVALID_ARG', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
    }
    if (text === undefined) return;
    let doc: BindingsFile;
    try { doc = JSON.parse(text) as BindingsFile; } catch (e) {
      throw new WeftError('WEFT_ERR_INVALID_ARG', `${path}: not valid JSON (${(e as Error).message}); restore it from a backup — deleting it unbinds every bare bootstrap token`, { cause: e });
    }
    if (doc?.version !== 1 || typeof doc.bindings !== 'object' || doc.bindings === null) throw new WeftError('WEFT_ERR_INVALID_ARG', `${path}: expected {"version":1,"bindings":{...}}`);
    for (const [digest, b] of Object.entries(doc.bindings)) {
      if (/^[0-9a-f]{64}$/.test(digest) && typeof b?.node === 'string') this.byDigest.set(digest, { node: b.node, at: String(b.at ?? '') });
    }
  }

  bind(digestHex: string, node: string): Promise<string> {
    const run = this.chain.then(async () => {
      const bound = this.byDigest.get(digestHex);
      if (bound) return bound.node;
      const next = new Map(this.byDigest).set(digestHex, { node, at: new Date().toISOString() });
      const doc: BindingsFile = { version: 1, bindings: Object.fromEntries(next) };
      await writeFileAtomic(this.path, `${JSON.stringify(doc, null, 2)}\n`, 0o600);
      this.byDigest.set(digestHex, { node, at: next.get(digestHex)!.at });
      return node;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  entries(): ReadonlyMap<string, string> {
    return new Map([...this.byDigest].map(([d, b]) => [d, b.node]));
  }
}
