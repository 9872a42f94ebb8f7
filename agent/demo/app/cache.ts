// cache: a tiny line-protocol key/value server ("GET key" → "VALUE n"). Its Service is
// plain TCP with its backend on the frontend's node, so the kernel balances it at
// connect time and no userland proxy ever sees these bytes (the L4 fast path).
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import type { AppConfig } from './config';

export function startCache(cfg: AppConfig): Promise<void> {
  const server = createServer((sock) => {
    sock.on('error', () => sock.destroy());
    createInterface({ input: sock }).on('line', (line) => {
      const key = /^GET (\S+)$/.exec(line)?.[1];
      sock.write(key ? `VALUE ${(key.length * 317) % 9000 + 100}\n` : 'ERR expected GET key\n');
    });
  });
  return new Promise((resolve) => server.listen(cfg.port!, cfg.address!, resolve));
}
