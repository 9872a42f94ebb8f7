// `weft tap`: follow the requests the local agent proxies, live, with filters.
import type { Command } from './command';
import { parseFlags } from './command';
import { DEFAULT_ADMIN, adminTokenFrom } from '../admin/client';
import { WeftError } from '../lib/errors';
import type { AccessRecord } from '../proxy/routing/access-log';

const help = `Usage: weft tap [--authority S] [--path PREFIX] [--method M] [--min-status N]
                [--json] [--count N] [--admin HOST:PORT] [--admin-token-file FILE]

Prints every request the local agent's L7 proxy completes, as it happens (Ctrl-C to
stop). Filters combine (all must match).

Flags:
  --authority S      Host/:authority contains S (a service name or VIP)
  --path PREFIX      request path starts with PREFIX
  --method M         HTTP method
  --min-status N     only responses with status >= N (e.g. 500 for errors)
  --count N          exit after N requests
  --json             one JSON object per request
  --admin HOST:PORT  the agent's admin address (default ${DEFAULT_ADMIN})
  --admin-token-file FILE  the agent's admin token, needed when --admin is not on loopback`;

interface Flags { authority?: string; path?: string; method?: string; 'min-status'?: string; count?: string; json?: boolean; admin?: string; 'admin-token-file'?: string }

function line(r: AccessRecord): string {
  const grpc = r.grpcStatus >= 0 ? ` grpc-status=${r.grpcStatus}` : '';
  const flags = r.flags ? ` [${r.flags}]` : '';
  return `${r.method} ${r.authority}${r.path} → ${r.status}${grpc} ${r.durationMs.toFixed(2)}ms route=${r.route || '-'} upstream=${r.upstream || '-'} attempts=${r.attempts}${flags}`;
}

export const command: Command = {
  name: 'tap',
  summary: 'follow live requests through the local agent, with filters',
  help,
  async run(argv) {
    const { values: v, help: wantHelp } = parseFlags<Flags>(argv, {
      authority: { type: 'string' }, path: { type: 'string' }, method: { type: 'string' }, 'min-status': { type: 'string' },
      count: { type: 'string' }, json: { type: 'boolean' }, admin: { type: 'string' }, 'admin-token-file': { type: 'string' },
    });
    if (wantHelp) { process.stdout.write(help + '\n'); return 0; }
    const limit = v.count === undefined ? Infinity : Number(v.count);
    if (!(limit > 0)) throw new WeftError('WEFT_ERR_INVALID_ARG', '--count must be a positive number');
    const q = new URLSearchParams();
    if (v.authority) q.set('authority', v.authority);
    if (v.path) q.set('path', v.path);
    if (v.method) q.set('method', v.method);
    if (v['min-status']) q.set('minStatus', v['min-status']);
    const admin = v.admin ?? DEFAULT_ADMIN;
    const ac = new AbortController();
    process.once('SIGINT', () => ac.abort());
    let res: Response;
    try {
      const token = adminTokenFrom(v['admin-token-file']);
      res = await fetch(`http://${admin}/v1/tap?${q}`, { signal: ac.signal, ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}) });
    } catch (e) {
      throw new WeftError('WEFT_ERR_UNAVAILABLE', `cannot reach the weft agent at ${admin}`, { cause: e });
    }
    if (!res.ok || !res.body) throw new WeftError('WEFT_ERR_INVALID_ARG', `agent refused the tap: ${(await res.text()).trim()}`);
    let seen = 0, buf = '';
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const msg = JSON.parse(buf.slice(0, nl)) as AccessRecord & { tap?: string; dropped?: number };
          buf = buf.slice(nl + 1);
          if (msg.tap) { process.stderr.write(`tapping ${admin} (Ctrl-C to stop)\n`); continue; }
          if (msg.dropped) { process.stderr.write(`… ${msg.dropped} requests dropped (tap too slow)\n`); continue; }
          process.stdout.write((v.json ? JSON.stringify(msg) : line(msg)) + '\n');
          if (++seen >= limit) { ac.abort(); return 0; }
        }
      }
    } catch (e) {
      if (!ac.signal.aborted) throw e;
    }
    return 0;
  },
};
