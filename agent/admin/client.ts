// What local CLIs (`weft run`, `weft status`, `weft explain`, `weft tap`) use to talk to
// the agent of their own network namespace over its admin port.
import { WeftError } from '../lib/errors';
import { readTokenFile } from '../lib/token-file';

export const DEFAULT_ADMIN = '127.0.0.1:15020';

/** The token of `--admin-token-file FILE` (undefined without the flag): an admin port off
 *  loopback answers reads too only with it. */
export function adminTokenFrom(file: string | undefined): string | undefined {
  return file === undefined ? undefined : readTokenFile(file, '--admin-token-file');
}

export class AdminClient {
  constructor(private readonly address: string = DEFAULT_ADMIN, private readonly timeoutMs = 5000, private readonly token?: string) {}

  get base(): string { return `http://${this.address}`; }

  async request<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      if ((e as Error).name === 'TimeoutError') throw new WeftError('WEFT_ERR_TIMEOUT', `the weft agent at ${this.address} did not answer ${method} ${path} within ${this.timeoutMs} ms`, { cause: e });
      throw new WeftError('WEFT_ERR_UNAVAILABLE', `cannot reach the weft agent at ${this.address} (is 'weft agent' running in this network namespace?)`, { cause: e });
    }
    const text = await res.text();
    let parsed: unknown;
    try { parsed = text ? JSON.parse(text) : {}; } catch { parsed = { error: text.trim() }; }
    if (!res.ok) {
      const err = parsed as { error?: string; code?: string };
      const code = (err.code ?? 'WEFT_ERR_UNAVAILABLE') as WeftError['code'];
      throw new WeftError(code, `agent at ${this.address}: ${err.error ?? `HTTP ${res.status}`}`);
    }
    return parsed as T;
  }
}
