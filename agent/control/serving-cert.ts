// TLS for the control API. The control API is the mesh CA, so it issues its own serving
// certificate: an SVID for spiffe://<td>/ns/weft-system/sa/control (the CA signs SPIFFE
// SVIDs only, one URI SAN). Agents check that identity instead of a host name, as SPIFFE
// peers do, so the certificate is valid whatever address or name agents dial.
//
// The certificate is renewed at half its lifetime with a fresh key; grpc-js re-keys the
// listening server through ServerCredentials' secure-context watcher (setSecureContext),
// so renewal drops no connection. Client certificates are requested, not required:
// agents bootstrap with a token and present their node SVID once they hold one. The CA
// bundle is the `ca` of the context, so Node marks a peer `authorized` only when its
// chain verifies against the mesh roots, and grpc-js hands that certificate to handlers
// through call.getAuthContext() (auth.ts).
import type { SecureContextOptions } from 'node:tls';
import { ServerCredentials } from '@grpc/grpc-js';
import { WeftError, describeError } from '../lib/errors';
import type { Logger } from '../telemetry/logger';
import { TLS13, createCsr, generateSigningKey, privateKeyToPem } from '../identity/pki';
import { NODE_NAMESPACE, formatSpiffeId } from '../identity/spiffe';
import type { CertificateSigner } from './certificates';

/** The service account of the control API's own identity (in the node namespace). */
export const CONTROL_SERVICE_ACCOUNT = 'control';

export function controlSpiffeId(trustDomain: string): string {
  return formatSpiffeId({ trustDomain, namespace: NODE_NAMESPACE, serviceAccount: CONTROL_SERVICE_ACCOUNT });
}

const RETRY_MS = 10_000;

/** ServerCredentials whose key, certificate and trusted roots can be replaced while the
 *  server listens (grpc-js watches them and calls setSecureContext). */
class RenewableServerCredentials extends ServerCredentials {
  constructor(initial: SecureContextOptions) {
    super({ requestCert: true, rejectUnauthorized: false, ...TLS13 }, initial);
  }

  replace(options: SecureContextOptions): void {
    this.updateSecureContextOptions(options);
  }

  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

export interface ServingIdentityOptions {
  signer: CertificateSigner & { readonly trustDomain: string };
  ttlSeconds: number;
  log: Logger;
  /** Called with the PEM trust bundle each time a new certificate is in place. */
  onBundle?: (bundlePem: string) => void;
}

export class ServingIdentity {
  private creds: RenewableServerCredentials | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private expiresAt = 0;

  constructor(private readonly opts: ServingIdentityOptions) {}

  get spiffeId(): string {
    return controlSpiffeId(this.opts.signer.trustDomain);
  }

  /** Issues the first certificate; throws WEFT_ERR_IDENTITY if the CA refuses. */
  async credentials(): Promise<ServerCredentials> {
    if (!this.creds) {
      this.creds = new RenewableServerCredentials(await this.issue());
      this.published();
    }
    return this.creds;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async issue(): Promise<SecureContextOptions> {
    const id = this.spiffeId;
    const key = await generateSigningKey('ecdsa-p256');
    let out;
    try {
      out = await this.opts.signer.signCsr(await createCsr(key, id), { allowedSpiffeIds: new Set([id]), ttlSeconds: this.opts.ttlSeconds });
    } catch (e) {
      throw new WeftError('WEFT_ERR_IDENTITY', `cannot issue the control API serving certificate: ${describeError(e)}`, { cause: e });
    }
    const expires = out.expiresAt instanceof Date ? out.expiresAt.getTime() : out.expiresAt * 1000;
    this.expiresAt = expires;
    const bundle = this.opts.signer.trustBundle().join('');
    this.schedule(Math.max(1000, (expires - Date.now()) / 2));
    this.opts.log.info({ spiffeId: id, expiresAt: new Date(expires).toISOString() }, 'control API serving certificate issued');
    return { key: await privateKeyToPem(key.privateKey), cert: out.certChainPem.join(''), ca: bundle, ...TLS13 };
  }

  private published(): void {
    this.opts.onBundle?.(this.opts.signer.trustBundle().join(''));
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => { void this.renew(); }, ms);
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    try {
      const next = await this.issue();
      if (this.stopped) return;
      this.creds?.replace(next);
      this.published();
    } catch (e) {
      const left = this.expiresAt - Date.now();
      this.opts.log.error({ err: describeError(e), expiresInMs: left }, 'serving certificate renewal failed; retrying');
      this.schedule(Math.min(RETRY_MS, Math.max(1000, left / 2)));
    }
  }
}
