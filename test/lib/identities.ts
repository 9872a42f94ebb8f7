// Certificates and peers for the in-process tunnel tests (unit and security suites): an
// identity manager holding signed certificates for a set of SPIFFE IDs, and an echo
// server that tags each connection (so a test sees which backend answered).
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import type { CertificateAuthority } from '../../agent/identity/ca';
import { IdentityManager } from '../../agent/identity/manager';

/** An IdentityManager of `trustDomain` with a certificate for each of `ids`, signed by `ca`. */
export async function signedManager(ca: CertificateAuthority, trustDomain: string, ids: string[]): Promise<IdentityManager> {
  const m = new IdentityManager({
    trustDomain,
    sign: async (csr) => ({ ...(await ca.signCsr(csr, { allowedSpiffeIds: new Set(ids), ttlSeconds: 300 })), trustBundle: ca.trustBundle() }),
  });
  for (const id of ids) assert.equal(await m.add(id), true);
  return m;
}

/** A server answering each connection with `tag`, then echoing what it reads; closed
 *  (connections included) by the test's after hook. */
export async function taggedEcho(t: { after: (fn: () => unknown) => void }, host: string, port: number, tag: string): Promise<Server> {
  const socks = new Set<Socket>();
  const s = createServer({ allowHalfOpen: true }, (c) => {
    socks.add(c); c.on('close', () => socks.delete(c)); c.on('error', () => {});
    c.write(tag); c.pipe(c);
  });
  await new Promise<void>((r, j) => { s.once('error', j); s.listen(port, host, () => r()); });
  t.after(() => new Promise<void>((r) => { for (const c of socks) c.destroy(); s.close(() => r()); }));
  return s;
}
