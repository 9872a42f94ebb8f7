// The mesh certificate authority, run by `weft control`. It signs agents' CSRs into
// short-lived X.509 SVIDs (one URI SAN spiffe://<td>/ns/<ns>/sa/<sa>, not a CA, client and
// server auth) and publishes the trust bundle. Which identities a caller may ask for is
// decided by the control API (node registration) and passed in as `allowedSpiffeIds`; the
// CA enforces it on the CSR's content, so a node can never mint someone else's identity.
//
// State: <stateDir>/ca/roots.json (0600, directory 0700) holds every root still trusted,
// with its key. Rotation is staged so traffic never drops:
//   1. rotateRoot() adds the new root to the bundle at once, but the old root keeps
//      signing until `activateAfterSeconds` (default: the maximum SVID TTL, by which time
//      every agent has renewed at least once and so holds the new bundle);
//   2. then the new root signs; the old root stays in the bundle until every SVID it
//      signed has expired (activation + maximum TTL), and is then dropped.
// See pki.ts for why @peculiar/x509 (WebCrypto, ECDSA) rather than node-forge.
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WeftError, invalidArg } from '../lib/errors';
import { componentLogger } from '../telemetry/logger';
import {
  x509, generateSigningKey, importSigningKey, privateKeyToPem, randomSerial, signingParams,
  keyAlgorithmOf, type KeyAlgorithm, type SigningKey,
} from './pki';
import { parseSpiffeId, validateTrustDomain } from './spiffe';

const log = componentLogger('ca');

export interface CaOptions {
  trustDomain: string;
  /** User-provided root (both or neither). Adopted as the signing root if the state
   *  directory holds a different one; the previous roots stay trusted for one max TTL. */
  rootCertFile?: string;
  rootKeyFile?: string;
  /** Key algorithm of a generated root. SVID keys are chosen by the agents (the CSR). */
  keyAlgorithm?: KeyAlgorithm;
  /** SVID lifetime bounds; requested TTLs are clamped into [min, max]. */
  maxTtlSeconds?: number;
  minTtlSeconds?: number;
  /** Lifetime of a generated root. */
  rootTtlSeconds?: number;
  /** Time source (ms since epoch); tests move it. */
  clock?: () => number;
}

export interface SignOptions {
  /** The SPIFFE IDs this caller may obtain (its local workloads and its node identity). */
  allowedSpiffeIds: ReadonlySet<string>;
  ttlSeconds: number;
}

export interface SignedCertificate {
  /** Leaf first; the roots are not included (they are the trust bundle). */
  certChainPem: string[];
  expiresAt: Date;
  spiffeId: string;
}

export interface RotateOptions {
  rootCertFile?: string;
  rootKeyFile?: string;
  /** When the new root starts signing (default: maxTtlSeconds from now). 0 = now. */
  activateAfterSeconds?: number;
}

/** Where the roots (with their keys) are kept: a 0600 file in the state dir, or a
 *  Kubernetes Secret shared by the control API's replicas (agent/control/kube). */
export interface CaStore {
  readonly description: string;
  /** The stored roots, or undefined when none were ever stored. */
  load(): Promise<StoredRoot[] | undefined>;
  /** Replaces the stored roots. A shared store fails (WEFT_ERR_CONFLICT) when another
   *  writer stored roots since the last load; the caller reloads. */
  save(roots: StoredRoot[]): Promise<void>;
}

/** <stateDir>/ca/roots.json, written atomically (temp file + rename), 0600. */
export class FileCaStore implements CaStore {
  private constructor(private readonly file: string) {}

  static async inStateDir(stateDir: string): Promise<FileCaStore> {
    const dir = join(stateDir, 'ca');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    return new FileCaStore(join(dir, 'roots.json'));
  }

  get description(): string { return this.file; }

  async load(): Promise<StoredRoot[] | undefined> {
    let text: string;
    try { text = await readFile(this.file, 'utf8'); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new WeftError('WEFT_ERR_IDENTITY', `CA state ${this.file} is unreadable; refusing to replace it`, { cause: e });
    }
    return parseStoredRoots(text, this.file);
  }

  async save(roots: StoredRoot[]): Promise<void> {
    const tmp = `${this.file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(roots, null, 2), { mode: 0o600 });
    await chmod(tmp, 0o600);
    await rename(tmp, this.file);
  }
}

/** Checks the shape of stored roots (the content is never repeated in the error). */
export function parseStoredRoots(text: string, where: string): StoredRoot[] {
  let stored: unknown;
  try { stored = JSON.parse(text); } catch (e) {
    throw new WeftError('WEFT_ERR_IDENTITY', `CA state ${where} is unreadable; refusing to replace it`, { cause: e });
  }
  return checkStoredRoots(stored, where);
}

export function checkStoredRoots(stored: unknown, where: string): StoredRoot[] {
  if (!Array.isArray(stored) || !stored.every((r) => r && typeof r === 'object' && typeof r.certPem === 'string' && typeof r.keyPem === 'string' && typeof r.activeFrom === 'string')) {
    throw new WeftError('WEFT_ERR_IDENTITY', `CA state ${where} is not a list of roots; refusing to replace it`);
  }
  return stored as StoredRoot[];
}

export interface StoredRoot {
  certPem: string;
  keyPem: string;
  /** ISO time from which this root signs (the newest active one wins). */
  activeFrom: string;
  /** ISO time after which it is no longer trusted; absent while it is (or will be) the signer. */
  retireAt?: string;
}

interface LoadedRoot extends StoredRoot {
  cert: X509Certificate;
  /** The same certificate as @peculiar/x509 sees it, for issuer name and key id. */
  issuer: x509.X509Certificate;
  key: SigningKey;
}

/** Clock-skew allowance: SVIDs are valid from a little before they were signed. */
const BACKDATE_MS = 10_000;
const DEFAULTS = { maxTtlSeconds: 24 * 3600, minTtlSeconds: 2, rootTtlSeconds: 10 * 365 * 24 * 3600 };
const OID_SAN = '2.5.29.17';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';

function identityError(message: string, details?: Record<string, unknown>): WeftError {
  return new WeftError('WEFT_ERR_IDENTITY', message, details ? { details } : undefined);
}

export class CertificateAuthority {
  readonly trustDomain: string;
  private roots: LoadedRoot[];
  private readonly store: CaStore;
  private readonly opts: Required<Pick<CaOptions, 'maxTtlSeconds' | 'minTtlSeconds' | 'rootTtlSeconds' | 'keyAlgorithm'>>;
  private readonly clock: () => number;

  private constructor(store: CaStore, roots: LoadedRoot[], opts: CaOptions) {
    this.store = store;
    this.roots = roots;
    this.trustDomain = opts.trustDomain;
    this.clock = opts.clock ?? Date.now;
    this.opts = {
      maxTtlSeconds: opts.maxTtlSeconds ?? DEFAULTS.maxTtlSeconds,
      minTtlSeconds: opts.minTtlSeconds ?? DEFAULTS.minTtlSeconds,
      rootTtlSeconds: opts.rootTtlSeconds ?? DEFAULTS.rootTtlSeconds,
      keyAlgorithm: opts.keyAlgorithm ?? 'ecdsa-p256',
    };
  }

  /** Loads the CA state from `stateDir`, creating a root (or adopting the user's) when needed. */
  static async loadOrCreate(stateDir: string, opts: CaOptions): Promise<CertificateAuthority> {
    validateTrustDomain(opts.trustDomain);
    return CertificateAuthority.open(await FileCaStore.inStateDir(stateDir), opts);
  }

  /** Loads the CA from `store`. Without stored roots it generates one (or adopts the
   *  user's) and saves it, unless `create` is false: then it fails with NOT_FOUND (a
   *  replica that does not hold the Lease waits for the one that does). */
  static async open(store: CaStore, opts: CaOptions & { create?: boolean }): Promise<CertificateAuthority> {
    validateTrustDomain(opts.trustDomain);
    if ((opts.rootCertFile === undefined) !== (opts.rootKeyFile === undefined)) {
      throw invalidArg('rootCertFile and rootKeyFile must be given together');
    }
    const min = opts.minTtlSeconds ?? DEFAULTS.minTtlSeconds;
    const max = opts.maxTtlSeconds ?? DEFAULTS.maxTtlSeconds;
    if (!(min >= 1 && max >= min)) throw invalidArg(`invalid TTL bounds: min ${min}s, max ${max}s`);
    const stored = await store.load();
    if (!stored?.length && opts.create === false) throw new WeftError('WEFT_ERR_NOT_FOUND', `no CA roots in ${store.description} yet`);
    const ca = new CertificateAuthority(store, await Promise.all((stored ?? []).map(loadRoot)), opts);
    let changed = !stored;
    if (opts.rootCertFile && opts.rootKeyFile) {
      const certPem = await readFile(opts.rootCertFile, 'utf8');
      if (!ca.roots.some((r) => r.cert.fingerprint256 === new X509Certificate(certPem).fingerprint256)) {
        await ca.addRoot(await loadUserRoot(certPem, await readFile(opts.rootKeyFile, 'utf8')), 0);
        changed = true;
        log.warn({ rootCertFile: opts.rootCertFile }, 'adopted the user-provided root as signing root');
      }
    } else if (!ca.roots.length) {
      await ca.addRoot(await ca.generateRoot(), 0);
      changed = true;
      log.info({ trustDomain: opts.trustDomain, store: store.description }, 'generated a new root certificate');
    }
    if (changed || store instanceof FileCaStore) await ca.save();
    return ca;
  }

  /** Re-reads the store (another replica rotated the roots). True when the roots changed. */
  async reload(): Promise<boolean> {
    const stored = await this.store.load();
    if (!stored?.length) return false;
    const key = (rs: readonly StoredRoot[]) => rs.map((r) => `${r.certPem}|${r.activeFrom}|${r.retireAt ?? ''}`).join('\n');
    if (key(stored) === key(this.roots)) return false;
    this.roots = await Promise.all(stored.map(loadRoot));
    return true;
  }

  /** PEM roots currently trusted: during a rotation both the old and the new one. */
  trustBundle(): string[] {
    const now = this.clock();
    return this.roots.filter((r) => !r.retireAt || Date.parse(r.retireAt) > now).map((r) => r.certPem);
  }

  /** The root that signs right now: the newest whose activation time has passed. */
  private signer(): LoadedRoot {
    const now = this.clock();
    const active = this.roots.filter((r) => Date.parse(r.activeFrom) <= now && (!r.retireAt || Date.parse(r.retireAt) > now));
    const r = active.sort((a, b) => Date.parse(b.activeFrom) - Date.parse(a.activeFrom))[0];
    if (!r) throw new WeftError('WEFT_ERR_INTERNAL', 'the CA has no active root');
    return r;
  }

  /** Signs a PKCS#10 CSR after checking proof of possession, the requested identity and
   *  that it asks for nothing else. Throws WEFT_ERR_IDENTITY (bad CSR) or
   *  WEFT_ERR_PERMISSION (identity not allowed for this caller). */
  async signCsr(csrPem: string, opts: SignOptions): Promise<SignedCertificate> {
    let csr: x509.Pkcs10CertificateRequest;
    try { csr = new x509.Pkcs10CertificateRequest(csrPem); } catch (e) {
      throw new WeftError('WEFT_ERR_IDENTITY', 'malformed CSR', { cause: e });
    }
    let signatureOk = false;
    try { signatureOk = await csr.verify(); } catch { signatureOk = false; }
    if (!signatureOk) throw identityError('CSR signature does not verify (no proof of possession)');
    try {
      keyAlgorithmOf(createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' }));
    } catch (e) {
      throw new WeftError('WEFT_ERR_IDENTITY', `CSR key rejected: ${(e as Error).message}`, { cause: e });
    }
    const spiffeId = this.requestedIdentity(csr);
    if (!opts.allowedSpiffeIds.has(spiffeId)) {
      throw new WeftError('WEFT_ERR_PERMISSION', `identity ${spiffeId} is not allowed for this caller`, { details: { spiffeId } });
    }

    const root = this.signer();
    const now = this.clock();
    const ttl = Math.min(Math.max(Math.floor(opts.ttlSeconds), this.opts.minTtlSeconds), this.opts.maxTtlSeconds);
    const notAfter = new Date(Math.min(now + ttl * 1000, Date.parse(root.cert.validTo)));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      // An empty subject is what SPIFFE recommends for SVIDs; the SAN is then critical.
      subject: '',
      issuer: root.issuer.subjectName,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter,
      publicKey: csr.publicKey,
      signingKey: root.key.privateKey,
      signingAlgorithm: signingParams(root.key.algorithm),
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], true),
        await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(root.issuer.publicKey),
      ],
    });
    return { certChainPem: [cert.toString('pem') + '\n'], expiresAt: notAfter, spiffeId };
  }

  /** The one SPIFFE ID a CSR asks for; anything else in it (CA:true, cert signing, other
   *  SANs) is a reason to refuse, because signing it would mean ignoring the request. */
  private requestedIdentity(csr: x509.Pkcs10CertificateRequest): string {
    let uris: string[] = [];
    let sanCount = 0;
    for (const e of csr.extensions) {
      if (e.type === OID_BASIC_CONSTRAINTS && new x509.BasicConstraintsExtension(e.rawData).ca) {
        throw identityError('CSR requests a CA certificate');
      }
      if (e.type === OID_KEY_USAGE) {
        const u = new x509.KeyUsagesExtension(e.rawData).usages;
        if (u & (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)) throw identityError('CSR requests certificate-signing key usage');
      }
      if (e.type === OID_SAN) {
        const names = new x509.SubjectAlternativeNameExtension(e.rawData).names.items;
        sanCount += names.length;
        uris = uris.concat(names.filter((n) => n.type === 'url').map((n) => n.value));
      }
    }
    if (sanCount !== 1 || uris.length !== 1) {
      throw identityError(`CSR must request exactly one SAN, a SPIFFE URI (found ${sanCount} SANs, ${uris.length} URIs)`);
    }
    const id = uris[0]!;
    const parsed = parseSpiffeId(id);
    if (parsed.trustDomain !== this.trustDomain) {
      throw new WeftError('WEFT_ERR_PERMISSION', `CSR trust domain ${parsed.trustDomain} is not ${this.trustDomain}`, { details: { spiffeId: id } });
    }
    return id;
  }

  /** Stages a new root (generated, or the user's files). See the header for the phases. */
  async rotateRoot(opts: RotateOptions = {}): Promise<{ activeFrom: Date; oldRootsRetireAt: Date }> {
    if ((opts.rootCertFile === undefined) !== (opts.rootKeyFile === undefined)) {
      throw invalidArg('rootCertFile and rootKeyFile must be given together');
    }
    const root = opts.rootCertFile && opts.rootKeyFile
      ? await loadUserRoot(await readFile(opts.rootCertFile, 'utf8'), await readFile(opts.rootKeyFile, 'utf8'))
      : await this.generateRoot();
    const activate = opts.activateAfterSeconds ?? this.opts.maxTtlSeconds;
    if (!(activate >= 0)) throw invalidArg(`activateAfterSeconds must be >= 0, got ${activate}`);
    const before = this.roots;
    const r = await this.addRoot(root, activate);
    const next = this.roots;
    // All or nothing, stored first: until the store has the new roots this CA keeps
    // serving the old ones, and a store that refuses the write (another replica wrote
    // first) leaves it as it was.
    this.roots = before;
    await this.save(next);
    this.roots = next;
    log.info({ activeFrom: r.activeFrom, oldRootsRetireAt: r.retireOld }, 'root rotation staged');
    return { activeFrom: new Date(r.activeFrom), oldRootsRetireAt: new Date(r.retireOld) };
  }

  private async addRoot(root: { certPem: string; keyPem: string }, activateAfterSeconds: number): Promise<{ activeFrom: string; retireOld: string }> {
    const now = this.clock();
    const trusted = this.roots.filter((r) => !r.retireAt || Date.parse(r.retireAt) > now);
    // The first root has nothing to overlap with: it signs from the beginning of time, so
    // a CA whose clock is set back (tests, skew) still has a signer.
    const activeFrom = new Date(trusted.length ? now + activateAfterSeconds * 1000 : 0).toISOString();
    const retireOld = new Date(now + (activateAfterSeconds + this.opts.maxTtlSeconds) * 1000).toISOString();
    // Every root still trusted stops being the signer at activation and is trusted until
    // the last SVID it could have signed has expired.
    this.roots = trusted.map((r) => (r.retireAt && Date.parse(r.retireAt) < Date.parse(retireOld) ? r : { ...r, retireAt: retireOld }));
    this.roots.push(await loadRoot({ ...root, activeFrom }));
    return { activeFrom, retireOld };
  }

  private async generateRoot(): Promise<{ certPem: string; keyPem: string }> {
    const key = await generateSigningKey(this.opts.keyAlgorithm);
    const now = this.clock();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: `O=weft, CN=weft root ${this.trustDomain} ${new Date(now).toISOString()}`,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + this.opts.rootTtlSeconds * 1000),
      keys: { privateKey: key.privateKey, publicKey: key.publicKey },
      signingAlgorithm: signingParams(key.algorithm),
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${this.trustDomain}` }]),
        await x509.SubjectKeyIdentifierExtension.create(key.publicKey),
      ],
    });
    return { certPem: cert.toString('pem') + '\n', keyPem: await privateKeyToPem(key.privateKey) };
  }

  /** The store holds the root keys: a 0600 file, or a Secret. */
  private async save(roots: LoadedRoot[] = this.roots): Promise<void> {
    await this.store.save(roots.map(({ certPem, keyPem, activeFrom, retireAt }) => ({ certPem, keyPem, activeFrom, ...(retireAt ? { retireAt } : {}) })));
  }
}

async function loadRoot(s: StoredRoot): Promise<LoadedRoot> {
  const cert = new X509Certificate(s.certPem);
  return { ...s, cert, issuer: new x509.X509Certificate(s.certPem), key: await importSigningKey(s.keyPem) };
}

/** Checks a user-provided root: a CA certificate whose public key matches the key. */
async function loadUserRoot(certPem: string, keyPem: string): Promise<{ certPem: string; keyPem: string }> {
  let cert: X509Certificate;
  try { cert = new X509Certificate(certPem); } catch (e) {
    throw new WeftError('WEFT_ERR_IDENTITY', 'cannot parse the root certificate file', { cause: e });
  }
  if (!cert.ca) throw identityError('the root certificate is not a CA certificate (basicConstraints CA:TRUE)');
  await importSigningKey(keyPem);
  const spki = (k: ReturnType<typeof createPublicKey>) => k.export({ format: 'der', type: 'spki' }).toString('hex');
  if (spki(cert.publicKey) !== spki(createPublicKey(createPrivateKey(keyPem)))) {
    throw identityError('the root key does not match the root certificate');
  }
  if (Date.parse(cert.validTo) <= Date.now()) throw identityError(`the root certificate expired at ${cert.validTo}`);
  return { certPem: certPem.endsWith('\n') ? certPem : `${certPem}\n`, keyPem };
}
