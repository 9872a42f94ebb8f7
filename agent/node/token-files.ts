// The files an agent reads its credentials from: the admin token it creates for its
// admin port, and the control API's CA bundle.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN_TOKEN_FILE } from '../admin/server';
import { describeError, invalidArg } from '../lib/errors';
import { readTokenFile } from '../lib/token-file';

/**
 * The token an admin port on a non-loopback address requires for changes (workload
 * registration): STATE_DIR/admin-token, created (0600) on first use and kept across
 * restarts, so `weft run --admin-token-file` works against every agent process.
 */
export function adminToken(stateDir: string): string {
  const file = join(stateDir, ADMIN_TOKEN_FILE);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  try { writeFileSync(file, `${randomBytes(24).toString('hex')}\n`, { mode: 0o600, flag: 'wx' }); } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  return readTokenFile(file, 'the admin token (remove an empty file and the agent writes a new one)');
}

/** The control API's CA bundle (`--control-ca`): PEM with at least one certificate. */
export function readPemFile(file: string): string {
  let pem: string;
  try { pem = readFileSync(file, 'utf8'); } catch (e) {
    throw invalidArg(`cannot read the control API CA bundle ${file}: ${describeError(e)}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw invalidArg(`${file}: no PEM certificate (expected the control API's CA bundle)`);
  return pem;
}
