// Self-managed PKI for the webhook: a CA and a serving certificate signed by it (RSA 2048,
// SHA-256), in PEM. The API server verifies the serving cert against the caBundle with
// Go's crypto/x509, which ignores the CN and wants SANs, a CA with keyCertSign, and a
// positive serial number.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';

export interface CertKeyPair {
  certPem: string;
  keyPem: string;
}

export interface CertInfo {
  notBefore: Date;
  notAfter: Date;
  isCA: boolean;
  dnsNames: string[];
  ipAddresses: string[];
  subjectCN?: string;
  issuerCN?: string;
}

const DAY_MS = 86_400_000;
/** Clocks in a cluster disagree a little; back-date notBefore so a fresh cert is valid everywhere. */
const BACKDATE_MS = 5 * 60_000;
const RENEW_AT_MOST_MS = 30 * DAY_MS;

function newKey(): { pub: forge.pki.PublicKey; priv: forge.pki.rsa.PrivateKey; keyPem: string } {
  // Node's native keygen: forge's pure-JS RSA generation takes seconds.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const priv = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const pub = forge.pki.setRsaPublicKey(priv.n, priv.e);
  return { pub, priv, keyPem };
}

function serial(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f; // positive: the high bit of a DER INTEGER is its sign
  b[0] |= 0x01; // and no leading zero byte to strip
  return b.toString('hex');
}

function validity(cert: forge.pki.Certificate, now: Date, days: number): void {
  cert.validity.notBefore = new Date(now.getTime() - BACKDATE_MS);
  cert.validity.notAfter = new Date(now.getTime() + days * DAY_MS);
}

/** A self-signed CA (default 10 years). */
export function issueCA(opts: { commonName?: string; validityDays?: number; now?: Date } = {}): CertKeyPair {
  const { pub, priv, keyPem } = newKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = pub;
  cert.serialNumber = serial();
  validity(cert, opts.now ?? new Date(), opts.validityDays ?? 3650);
  const name = [{ name: 'commonName', value: opts.commonName ?? 'idempo-webhook-ca' }, { name: 'organizationName', value: 'idempo' }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(priv, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}

// Present in node-forge, missing from its type definitions.
const bytesFromIP = (ip: string): string | null => (forge.util as unknown as { bytesFromIP(ip: string): string | null }).bytesFromIP(ip);

/** A serving certificate for `dnsNames` and `ipAddresses`, signed by `ca`. */
export function issueServing(ca: CertKeyPair, dnsNames: string[], ipAddresses: string[] = [], validityDays = 365, now = new Date()): CertKeyPair {
  if (dnsNames.length === 0 && ipAddresses.length === 0) throw new Error('issueServing: need at least one DNS name or IP address');
  const bad = ipAddresses.find((ip) => isIP(ip) === 0 || bytesFromIP(ip) === null);
  if (bad !== undefined) throw new Error(`issueServing: not an IP address: ${bad}`);
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem) as forge.pki.rsa.PrivateKey;
  const { pub, keyPem } = newKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = pub;
  cert.serialNumber = serial();
  validity(cert, now, validityDays);
  cert.setSubject([{ name: 'commonName', value: dnsNames[0] ?? ipAddresses[0] }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [...dnsNames.map((value) => ({ type: 2, value })), ...ipAddresses.map((ip) => ({ type: 7, ip }))] },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}

function cn(attrs: forge.pki.CertificateField[]): string | undefined {
  const v = attrs.find((a) => a.name === 'commonName')?.value;
  return typeof v === 'string' ? v : undefined;
}

export function certInfo(certPem: string): CertInfo {
  const cert = forge.pki.certificateFromPem(certPem);
  const san = cert.getExtension('subjectAltName') as { altNames?: { type: number; value?: string; ip?: string }[] } | null;
  const bc = cert.getExtension('basicConstraints') as { cA?: boolean } | null;
  return {
    notBefore: cert.validity.notBefore,
    notAfter: cert.validity.notAfter,
    isCA: !!bc?.cA,
    dnsNames: (san?.altNames ?? []).filter((n) => n.type === 2).map((n) => n.value ?? ''),
    ipAddresses: (san?.altNames ?? []).filter((n) => n.type === 7).map((n) => n.ip ?? ''),
    subjectCN: cn(cert.subject.attributes),
    issuerCN: cn(cert.issuer.attributes),
  };
}

/**
 * True when the certificate should be replaced at `now`: unreadable, not yet valid, or
 * expiring within `beforeMs` (default: a third of its lifetime, at most 30 days).
 */
export function needsRenewal(certPem: string, now: Date = new Date(), beforeMs?: number): boolean {
  let info: CertInfo;
  try {
    info = certInfo(certPem);
  } catch {
    return true;
  }
  const lifetime = info.notAfter.getTime() - info.notBefore.getTime();
  const before = beforeMs ?? Math.min(RENEW_AT_MOST_MS, lifetime / 3);
  return now.getTime() < info.notBefore.getTime() || info.notAfter.getTime() - now.getTime() <= before;
}

/** The certificate names every requested DNS name and IP and was signed by `caPem`'s key. */
export function coversAndChains(certPem: string, caPem: string, dnsNames: string[], ipAddresses: string[]): boolean {
  try {
    const info = certInfo(certPem);
    const norm = (ip: string) => forge.util.bytesToHex(bytesFromIP(ip) ?? '');
    const ips = new Set(info.ipAddresses.map(norm));
    if (!dnsNames.every((d) => info.dnsNames.includes(d)) || !ipAddresses.every((ip) => ips.has(norm(ip)))) return false;
    return forge.pki.certificateFromPem(caPem).verify(forge.pki.certificateFromPem(certPem));
  } catch {
    return false;
  }
}
