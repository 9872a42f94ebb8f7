// Bootstrap-token bindings (agent/control/token-bindings.ts: a bare token belongs to the
// first node that presents it) shared by the control API's replicas: one JSON map
// digest → node in the Secret weft-token-bindings, bound by compare-and-swap, so two
// replicas seeing two nodes present the same token at once agree on one winner.
// Digests only, never tokens; a Secret all the same, as the map says which node holds
// which credential.
import type { Logger } from '../../telemetry/logger';
import type { TokenBindings } from '../token-bindings';
import type { KubeStateApi } from './api';
import { SharedDocument, bindOnce } from './shared-document';

export const TOKEN_BINDINGS_SECRET = 'weft-token-bindings';

export class KubeTokenBindings implements TokenBindings {
  private readonly doc: SharedDocument<Record<string, string>>;
  private known = new Map<string, string>();

  constructor(api: KubeStateApi, log: Logger) {
    this.doc = new SharedDocument<Record<string, string>>(api, {
      resource: 'secrets', name: TOKEN_BINDINGS_SECRET, key: 'bindings.json', labels: { 'app.kubernetes.io/name': 'weft-control', 'app.kubernetes.io/part-of': 'weft' },
    }, log);
    this.doc.on('change', (d) => { this.known = new Map(Object.entries(d.value ?? {})); });
  }

  async bind(digestHex: string, node: string): Promise<string> {
    const bound = this.known.get(digestHex);
    // Bindings never change once made: a known one needs no round trip.
    if (bound !== undefined) return bound;
    return bindOnce(this.doc, digestHex, node);
  }

  entries(): ReadonlyMap<string, string> { return this.known; }
}
