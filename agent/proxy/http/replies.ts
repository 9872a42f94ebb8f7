// Locally generated responses (errors, rate limits, faults, denials). Built once per
// (status, keep-alive) and reused: a 429 storm must not allocate per reply.
const REASONS: Record<number, string> = {
  400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout',
  413: 'Content Too Large', 414: 'URI Too Long', 417: 'Expectation Failed', 429: 'Too Many Requests',
  431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 501: 'Not Implemented',
  502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout', 505: 'HTTP Version Not Supported',
};

export function reasonPhrase(status: number): string { return REASONS[status] ?? 'Unknown'; }

const cache = new Map<number, Buffer>();

/** A complete response with a short text body naming the cause; `close` adds Connection: close. */
export function localReply(status: number, close: boolean, detail?: string): Buffer {
  const key = status * 2 + (close ? 1 : 0);
  if (detail === undefined) { const hit = cache.get(key); if (hit) return hit; }
  const body = `${detail ?? reasonPhrase(status).toLowerCase()}\n`;
  const b = Buffer.from(
    `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n` +
    `server: weft\r\n${close ? 'connection: close\r\n' : ''}\r\n${body}`, 'latin1');
  if (detail === undefined) cache.set(key, b);
  return b;
}
