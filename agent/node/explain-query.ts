// GET /v1/explain's query (`weft explain`) as the control API's Explain request: the
// control API reasons over the full snapshot (a node only has its own view).
import type { ExplainRequest } from '../control/generated/weft/control/v1/ExplainRequest';
import { invalidArg } from '../lib/errors';
import { parseHostPort } from '../lib/listen';

export function parseExplainQuery(q: URLSearchParams): ExplainRequest {
  const from = q.get('from') ?? '';
  if (!from) throw invalidArg('from: the source workload (namespace/name) is required');
  const to = parseHostPort(q.get('to') ?? '', 'to');
  const headers: Record<string, string> = {};
  for (const h of q.getAll('header')) {
    const i = h.indexOf(':');
    if (i <= 0) throw invalidArg(`header: expected name:value, got '${h}'`);
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  return {
    from, host: to.host, port: to.port,
    path: q.get('path') ?? '', method: q.get('method') ?? '', headers,
  };
}
