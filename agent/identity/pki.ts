// Key and certificate plumbing shared by the CA (control API) and the identity manager
// (agents).
//
// Why @peculiar/x509 and not node-forge: forge can parse and build certificates but it
// signs and verifies only with RSA, and weft's SVIDs are ECDSA P-256 (TLS handshakes with
// ECDSA are roughly an order of magnitude cheaper for the server than RSA-2048, see
// perf-baselines.md: 41.8k ECDSA signs/s vs 2.95k RSA signs/s). @peculiar/x509 builds
// and verifies X.509 certificates and PKCS#10 CSRs on top of WebCrypto, so every
// signature is made by Node's own OpenSSL through `crypto.webcrypto` (no JS bignum
// crypto), and it handles ECDSA, RSA and the extension types SPIFFE needs (URI SANs).
// Where the TLS stack needs a KeyObject or X509Certificate (handshakes, peer checks) we
// use node:crypto directly on the same PEM bytes.
// @peculiar/x509 resolves its algorithm providers through tsyringe, which needs the
// Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import { webcrypto, createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { WeftError } from '../lib/errors';

// The DOM WebCrypto types are not in this project's lib; node's webcrypto namespace has them.
export type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type Algorithm = webcrypto.Algorithm;
type EcdsaParams = webcrypto.EcdsaParams;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };

/** Mesh TLS is 1.3 only (1-RTT handshakes, no renegotiation, encrypted certificates). */
export const TLS13 = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const;

export type KeyAlgorithm = 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048';

interface AlgorithmPair { generate: webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams; sign: EcdsaParams | Algorithm; import: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams }

const ALGORITHMS: Record<KeyAlgorithm, AlgorithmPair> = {
  'ecdsa-p256': {
    generate: { name: 'ECDSA', namedCurve: 'P-256' },
    sign: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams,
    import: { name: 'ECDSA', namedCurve: 'P-256' },
  },
  'ecdsa-p384': {
    generate: { name: 'ECDSA', namedCurve: 'P-384' },
    sign: { name: 'ECDSA', hash: 'SHA-384' } as EcdsaParams,
    import: { name: 'ECDSA', namedCurve: 'P-384' },
  },
  'rsa-2048': {
    generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
    import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
  },
};

export function isKeyAlgorithm(s: string): s is KeyAlgorithm {
  return Object.prototype.hasOwnProperty.call(ALGORITHMS, s);
}

export interface SigningKey {
  algorithm: KeyAlgorithm;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

/** A fresh key pair. The private key is extractable only so it can be handed to the
 *  local TLS stack as PEM; callers never serialise it anywhere else. */
export async function generateSigningKey(algorithm: KeyAlgorithm = 'ecdsa-p256'): Promise<SigningKey> {
  const pair = await webcrypto.subtle.generateKey(ALGORITHMS[algorithm].generate, true, ['sign', 'verify']) as CryptoKeyPair;
  return { algorithm, privateKey: pair.privateKey, publicKey: pair.publicKey };
}

export function signingParams(algorithm: KeyAlgorithm): EcdsaParams | Algorithm {
  return ALGORITHMS[algorithm].sign;
}

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key) as ArrayBuffer);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** Which of the supported algorithms a node:crypto key is; throws for anything else. */
export function keyAlgorithmOf(key: KeyObject): KeyAlgorithm {
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec' && d.namedCurve === 'prime256v1') return 'ecdsa-p256';
  if (key.asymmetricKeyType === 'ec' && d.namedCurve === 'secp384r1') return 'ecdsa-p384';
  if (key.asymmetricKeyType === 'rsa' && (d.modulusLength ?? 0) >= 2048) return 'rsa-2048';
  throw new WeftError('WEFT_ERR_IDENTITY',
    `unsupported key: ${key.asymmetricKeyType} ${d.namedCurve ?? d.modulusLength ?? ''} (ECDSA P-256/P-384 or RSA >= 2048 bits)`);
}

/** Imports a PEM private key (PKCS#8, SEC1 or PKCS#1) for signing. */
export async function importSigningKey(pem: string): Promise<SigningKey> {
  let key: KeyObject;
  try { key = createPrivateKey(pem); } catch (e) {
    throw new WeftError('WEFT_ERR_IDENTITY', 'cannot parse private key PEM', { cause: e });
  }
  const algorithm = keyAlgorithmOf(key);
  const params = ALGORITHMS[algorithm].import;
  const der = key.export({ format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  const privateKey = await webcrypto.subtle.importKey('pkcs8', der, params, true, ['sign']);
  const publicKey = await webcrypto.subtle.importKey('spki', spki, params, true, ['verify']);
  return { algorithm, privateKey, publicKey };
}

/** A positive 128-bit serial number, hex (RFC 5280: at most 20 octets, positive). */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f | 0x01;
  return b.toString('hex');
}

/** Splits a PEM bundle into its certificate blocks. */
export function splitPemCertificates(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((s) => `${s}\n`) ?? [];
}

/** A PKCS#10 CSR for one SPIFFE ID, signed with `key` (the proof of possession). */
export async function createCsr(key: SigningKey, spiffeId: string): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys: { privateKey: key.privateKey, publicKey: key.publicKey },
    signingAlgorithm: signingParams(key.algorithm),
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], true)],
  });
  return csr.toString('pem') + '\n';
}
