// The control API's admin listener (loopback by default): /metrics for Prometheus,
// /healthz (the process serves), /readyz (it has a snapshot to serve), /v1/reload (the
// last policy reload with its diagnostics and every node's snapshot: reload-status.ts). Kept apart from
// the gRPC port so scraping needs no token and probes never touch agent streams.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WeftError } from '../lib/errors';
import type { ControlServer } from './server';
import { reloadStatus } from './reload-status';

export async function startControlAdmin(control: ControlServer, host: string, port: number): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') { res.writeHead(405).end(); return; }
    if (path === '/metrics') {
      control.metrics.registry.metrics().then((body) => {
        res.writeHead(200, { 'content-type': control.metrics.registry.contentType }).end(body);
      }, (e: Error) => res.writeHead(500).end(e.message));
    } else if (path === '/v1/reload') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(reloadStatus(control.status('')))}\n`);
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const v = control.store.snapshot()?.version;
      res.writeHead(v ? 200 : 503, { 'content-type': 'text/plain' }).end(v ? `serving ${v}\n` : 'no valid snapshot yet\n');
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new WeftError('WEFT_ERR_UNAVAILABLE', `--admin: cannot listen on ${host}:${port}: ${e.message}`, { cause: e })));
    server.listen(port, host, resolve);
  });
  return { server, port: (server.address() as AddressInfo).port };
}
