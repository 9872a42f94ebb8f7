// A throw-away CA and a TLS serving certificate signed by it, like the kube-apiserver's
// (kubeadm's "kubernetes" CA and apiserver certificate): the serving certificate names
// the listen IPs and DNS names in its SANs so clients verify it against the CA alone.
import { generateSigningKey, privateKeyToPem, randomSerial, signingParams, x509 } from '../../agent/identity/pki';

export interface ServingCertificates {
  caPem: string;
  certPem: string;
  keyPem: string;
}

const BACKDATE_MS = 60_000;

export async function createServingCertificates(opts: { ipAddresses: string[]; dnsNames: string[]; days?: number }): Promise<ServingCertificates> {
  const now = Date.now();
  const notAfter = new Date(now + (opts.days ?? 7) * 86_400_000);
  const caKey = await generateSigningKey('ecdsa-p256');
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: 'CN=kubernetes',
    notBefore: new Date(now - BACKDATE_MS),
    notAfter,
    keys: { privateKey: caKey.privateKey, publicKey: caKey.publicKey },
    signingAlgorithm: signingParams(caKey.algorithm),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(caKey.publicKey),
    ],
  });
  const key = await generateSigningKey('ecdsa-p256');
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: 'CN=kube-apiserver',
    issuer: ca.subjectName,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter,
    publicKey: key.publicKey,
    signingKey: caKey.privateKey,
    signingAlgorithm: signingParams(caKey.algorithm),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...opts.dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...opts.ipAddresses.map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caKey.publicKey),
    ],
  });
  return { caPem: ca.toString('pem') + '\n', certPem: cert.toString('pem') + '\n', keyPem: await privateKeyToPem(key.privateKey) };
}
