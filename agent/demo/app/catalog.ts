// catalog: answers product lookups with its own version and workload name, so the
// callers (and the live view) can see which side of the canary split served them.
import { createServer } from 'node:http';
import type { AppConfig } from './config';

export function startCatalog(cfg: AppConfig): Promise<void> {
  const server = createServer((req, res) => {
    const id = /^\/product\/(\d+)/.exec(req.url ?? '')?.[1] ?? '0';
    const body = JSON.stringify({ id, name: `product ${id}`, version: cfg.version ?? 'unknown', workload: cfg.name, route: req.headers['x-weft-route'] ?? null });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) => server.listen(cfg.port!, cfg.address!, resolve));
}
