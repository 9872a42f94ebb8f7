// frontend: the shop's web tier. A product page asks catalog (through its VIP, so the
// mesh's canary split and header pinning decide which version answers) and the cache
// (plain TCP, balanced in the kernel); a checkout charges through payments (gRPC, which
// only the frontend's identity may call). Failures of a dependency become 502s with the
// reason, so they show up in the caller's numbers instead of being hidden here.
import { Agent, createServer, request, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { AppConfig } from './config';
import { hostPort } from './config';
import { charge, paymentsClient } from './payments-api';

interface CatalogAnswer { version: string; workload: string }

export function startFrontend(cfg: AppConfig): Promise<void> {
  const catalog = hostPort(cfg.services.catalog);
  const cache = hostPort(cfg.services.cache);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const payments = paymentsClient(cfg.services.payments);

  const askCatalog = (id: string, headers: IncomingHttpHeaders) => new Promise<CatalogAnswer>((resolve, reject) => {
    const canary = headers['x-canary'];
    const req = request({ host: catalog.host, port: catalog.port, path: `/product/${id}`, agent, timeout: 3000, headers: canary ? { 'x-canary': canary } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`catalog answered ${res.statusCode}: ${body.slice(0, 120)}`));
        try { resolve(JSON.parse(body) as CatalogAnswer); } catch { reject(new Error('catalog sent invalid JSON')); }
      });
    });
    req.on('timeout', () => req.destroy(new Error('catalog timed out')));
    req.on('error', reject);
    req.end();
  });

  const askCache = (key: string) => new Promise<string>((resolve, reject) => {
    const s = connect({ host: cache.host, port: cache.port });
    let buf = '';
    s.setTimeout(2000, () => s.destroy(new Error('cache timed out')));
    s.on('connect', () => s.write(`GET ${key}\n`));
    s.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      if (buf.includes('\n')) { s.end(); resolve(buf.split('\n')[0]!.replace(/^VALUE /, '')); }
    });
    s.on('error', reject);
  });

  const reply = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  };

  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    if (url.startsWith('/checkout')) {
      charge(payments, `order-${Date.now()}`, 2000).then((r) => (r.code === 0
        ? reply(res, 200, { frontend: cfg.name, payment: r.reply?.payment, by: r.reply?.by })
        : reply(res, 502, { frontend: cfg.name, error: `payments: gRPC status ${r.code} ${r.details ?? ''}`.trim(), grpcStatus: r.code })));
      return;
    }
    const id = /^\/product\/(\d+)/.exec(url)?.[1] ?? '1';
    Promise.all([askCatalog(id, req.headers), askCache(`price:${id}`)]).then(
      ([c, price]) => reply(res, 200, { frontend: cfg.name, catalog: { version: c.version, workload: c.workload }, price }),
      (e: Error) => reply(res, 502, { frontend: cfg.name, error: e.message }),
    );
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) => server.listen(cfg.port!, cfg.address!, resolve));
}
