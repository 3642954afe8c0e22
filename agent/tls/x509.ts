import { generateKeyPair, randomBytes, sign as nodeSign, X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';

/**
 * A certificate authority per deployment and the certificates it signs, without an openssl
 * binary (the agent's image has none): node-forge builds the X.509 structures (ASN.1 only);
 * Node's crypto makes the keys and the signatures, natively. forge's own RSA is JavaScript
 * big-integer arithmetic: in an agent without the optimizing compiler (--no-opt) one signature
 * held the event loop for about a second, and a primary's lease renewal waited behind it until
 * the fence stopped Postgres.
 */

export interface KeyPair {
  /** PEM. */
  cert: string;
  /** PEM (PKCS#1 RSA): what OpenSSL, pgBackRest and Postgres read. */
  key: string;
}

const DAY_MS = 86_400_000;

/** Off the event loop (a 2048-bit key takes ~200 ms; the agent renews its lease meanwhile). */
async function rsaKey(): Promise<{ pub: forge.pki.rsa.PublicKey; pem: string }> {
  const { privateKey, publicKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  return { pub: forge.pki.publicKeyFromPem(publicKey) as forge.pki.rsa.PublicKey, pem: privateKey };
}

/**
 * Signs `c` with the PEM key natively (SHA-256 with RSA): forge's sign() gets a digest that
 * only collects the to-be-signed bytes and a key whose sign() hands them to Node's crypto.
 */
function signNative(c: forge.pki.Certificate, keyPem: string): void {
  let tbs = '';
  const md = { algorithm: 'sha256', update: (bytes: string) => ((tbs += bytes), md) };
  const key = { sign: () => nodeSign('sha256', Buffer.from(tbs, 'binary'), keyPem).toString('binary') };
  // The two objects stand in for forge's digest and key types, which have many more members.
  c.sign(key as unknown as forge.pki.rsa.PrivateKey, md as unknown as forge.md.MessageDigest);
}

/** A positive random serial (the high bit clear: DER integers are signed). */
const serial = (): string => {
  const b = randomBytes(16);
  b[0]! &= 0x7f;
  return b.toString('hex');
};

function base(cn: string, days: number, pub: forge.pki.rsa.PublicKey): forge.pki.Certificate {
  const c = forge.pki.createCertificate();
  c.publicKey = pub;
  c.serialNumber = serial();
  // Backdated a little: a unit whose clock is behind the issuer's must accept it at once.
  c.validity.notBefore = new Date(Date.now() - 3_600_000);
  c.validity.notAfter = new Date(Date.now() + days * DAY_MS);
  c.setSubject([{ name: 'commonName', value: cn }]);
  return c;
}

/** A self-signed CA (10 years). */
export async function createCa(cn: string, days = 3650): Promise<KeyPair> {
  const k = await rsaKey();
  const c = base(cn, days, k.pub);
  c.setIssuer(c.subject.attributes);
  c.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  signNative(c, k.pem);
  return { cert: forge.pki.certificateToPem(c), key: k.pem };
}

export interface LeafRequest {
  cn: string;
  /** Subject alternative names: DNS names and IP addresses. */
  dns?: string[];
  ips?: string[];
  /** What the certificate is for (extended key usage). */
  usage: 'server' | 'client';
  days?: number;
}

/** A certificate signed by `ca` (1 year by default). */
export async function issue(ca: KeyPair, req: LeafRequest): Promise<KeyPair> {
  const k = await rsaKey();
  const caCert = forge.pki.certificateFromPem(ca.cert);
  const c = base(req.cn, req.days ?? 365, k.pub);
  c.setIssuer(caCert.subject.attributes);
  const alt = [...(req.dns ?? []).map((value) => ({ type: 2, value })), ...(req.ips ?? []).map((ip) => ({ type: 7, ip }))];
  c.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: req.usage === 'server', clientAuth: req.usage === 'client' },
    ...(alt.length ? [{ name: 'subjectAltName', altNames: alt }] : []),
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  signNative(c, ca.key);
  return { cert: forge.pki.certificateToPem(c), key: k.pem };
}

/**
 * Why `cert` cannot serve `want` any longer (not signed by `caPem`, a name missing, expiring
 * within `renewDays`, unreadable), or undefined when it still can.
 */
export function needsRenewal(cert: string, caPem: string, want: { dns?: string[]; cn?: string }, renewDays = 30, now = Date.now()): string | undefined {
  let c: X509Certificate;
  try {
    c = new X509Certificate(cert);
  } catch {
    return 'unreadable';
  }
  if (!c.verify(new X509Certificate(caPem).publicKey)) return 'not signed by the current CA';
  if (Date.parse(c.validTo) - now < renewDays * DAY_MS) return `expires ${new Date(c.validTo).toISOString()}`;
  const names = (c.subjectAltName ?? '').split(', ').filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4));
  const missing = (want.dns ?? []).filter((d) => !names.includes(d));
  if (missing.length) return `no name ${missing.join(', ')}`;
  if (want.cn && !c.subject.split('\n').includes(`CN=${want.cn}`)) return `subject is not CN=${want.cn}`;
  return undefined;
}
