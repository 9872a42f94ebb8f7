// Bare bootstrap tokens' first-use bindings shared by every control API replica
// (--state-store kubernetes): the map tokenDigest → node in the Secret
// weft-control-token-bindings, written with compare-and-swap (SharedDocument), so two
// replicas that see two nodes present the same fresh token at once bind it to one node.
// Digests only, never tokens; kept in a Secret all the same (whoever reads it learns
// which nodes bootstrapped with a bare token).
import type { Logger } from '../../telemetry/logger';
import type { TokenBindings } from '../token-bindings';
import type { KubeStateApi } from './api';
import { SharedDocument } from './shared-document';

type Bindings = Record<string, string>;

export class SharedTokenBindings implements TokenBindings {
  private readonly doc: SharedDocument<Bindings>;
  /** Bindings never change once made: what this replica learnt is kept. */
  private readonly known = new Map<string, string>();

  constructor(api: KubeStateApi, log: Logger) {
    this.doc = new SharedDocument<Bindings>(api, {
      resource: 'secrets', name: 'weft-control-token-bindings', key: 'bindings.json', labels: { 'app.kubernetes.io/part-of': 'weft' },
    }, log);
  }

  async bind(digestHex: string, node: string): Promise<string> {
    const known = this.known.get(digestHex);
    if (known !== undefined) return known;
    const stored = await this.doc.update((cur) => (cur?.[digestHex] !== undefined ? undefined : { value: { ...(cur ?? {}), [digestHex]: node } }));
    const bound = stored.value?.[digestHex];
    if (bound === undefined) throw new Error(`${this.doc.description}: the binding was not stored`);
    this.known.set(digestHex, bound);
    return bound;
  }

  entries(): ReadonlyMap<string, string> { return this.known; }
}
