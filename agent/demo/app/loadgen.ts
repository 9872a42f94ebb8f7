// loadgen: the traffic driver, itself a mesh workload (identity .../sa/loadgen). It
// browses the frontend at a steady rate (through the frontend's VIP, across nodes),
// checks out now and then, and also tries to call payments directly — which the
// AuthorizationPolicy allows only to the frontend, so every such call must fail.
import { Agent, request } from 'node:http';
import { renameSync, writeFileSync } from 'node:fs';
import { status as grpcStatus } from '@grpc/grpc-js';
import type { AppConfig } from './config';
import { hostPort } from './config';
import { charge, paymentsClient } from './payments-api';
import { emptyCounts, type LoadgenStats, type OutcomeCounts } from '../loadgen-stats';

const MAX_IN_FLIGHT = 256;

export function startLoadgen(cfg: AppConfig): Promise<void> {
  const rps = cfg.rps ?? 50;
  const frontend = hostPort(cfg.services.frontend);
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const payments = paymentsClient(cfg.services.payments);
  const stats: LoadgenStats = { at: Date.now(), rps, browse: emptyCounts(), catalogVersions: {}, checkout: emptyCounts(), paymentsDirect: emptyCounts() };
  let inFlight = 0;

  const count = (c: OutcomeCounts, ok: boolean, outcome: string) => {
    if (ok) c.ok++; else c.failed++;
    c.outcomes[outcome] = (c.outcomes[outcome] ?? 0) + 1;
  };

  const get = (path: string, c: OutcomeCounts, onBody?: (body: string) => void) => {
    c.sent++;
    inFlight++;
    const req = request({ host: frontend.host, port: frontend.port, path, agent, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => {
        inFlight--;
        const ok = res.statusCode === 200;
        count(c, ok, String(res.statusCode));
        if (ok) onBody?.(body);
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) => { inFlight--; count(c, false, e.code ?? 'ERROR'); });
    req.end();
  };

  const browse = (n: number) => get(`/product/${n % 100}`, stats.browse, (body) => {
    try {
      const v = (JSON.parse(body) as { catalog?: { version?: string } }).catalog?.version ?? 'unknown';
      stats.catalogVersions[v] = (stats.catalogVersions[v] ?? 0) + 1;
    } catch { /* counted as ok: the frontend answered 200 */ }
  });

  const tryPayments = () => {
    stats.paymentsDirect.sent++;
    void charge(payments, `loadgen-${Date.now()}`, 2000).then((r) => {
      // Success here would be a hole in the mesh: count it as a failure of the demo's
      // expectation ("ok" means the mesh refused loadgen).
      count(stats.paymentsDirect, r.code !== 0, grpcStatus[r.code] ?? String(r.code));
    });
  };

  // A steady rate: each tick sends what is due since the start, so timer jitter does
  // not change the average, and a stalled mesh is not hammered (in-flight cap).
  const start = Date.now();
  let sent = 0;
  setInterval(() => {
    const due = Math.floor(((Date.now() - start) / 1000) * rps);
    for (; sent < due && inFlight < MAX_IN_FLIGHT; sent++) {
      if (sent % 10 === 9) get('/checkout', stats.checkout); else browse(sent);
      if (sent % Math.max(1, Math.round(rps / 2)) === 0) tryPayments();
    }
    sent = Math.max(sent, due); // what the cap skipped is dropped, not bunched up later
  }, 10);

  const tmp = `${cfg.statsFile!}.tmp`;
  setInterval(() => {
    stats.at = Date.now();
    writeFileSync(tmp, JSON.stringify(stats));
    renameSync(tmp, cfg.statsFile!);
  }, 250);
  return Promise.resolve();
}
