import { X509Certificate } from 'node:crypto';

/**
 * A certificate authority per deployment and the certificates it signs, made by the openssl
 * command where the keys are used: in the workload container, through the sidecar (Debian's
 * postgresql-common depends on it; the local controller already needs it for its API server).
 * ECDSA P-256: a key takes well under a millisecond, where an RSA key took 50-300 ms of CPU while
 * the standbys were cloning. The agent itself only reads certificates (Node's X509Certificate):
 * an X.509 library in the agent cost ~7 MB of RSS for the life of the process, and its
 * JavaScript RSA held the event loop ~0.9 s per signature (a primary's lease renewal waited).
 */

export interface KeyPair {
  /** PEM. */
  cert: string;
  /** PEM (PKCS#8). */
  key: string;
}

/**
 * `sh -c` script: a self-signed CA (10 years) in directory $1, subject CN=$2; prints the key
 * then the certificate (PEM) and leaves nothing behind.
 */
export const CA_SCRIPT = `set -e
umask 077
cd "$1"
trap 'rm -f ca-new.cnf ca-new.key ca-new.crt ca-new.err' EXIT
printf '%s\\n' '[req]' 'distinguished_name = dn' 'x509_extensions = ext' 'prompt = no' '[dn]' "CN = $2" '[ext]' 'basicConstraints = critical,CA:TRUE' 'keyUsage = critical,keyCertSign,cRLSign' 'subjectKeyIdentifier = hash' > ca-new.cnf
openssl req -x509 -config ca-new.cnf -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 -keyout ca-new.key -out ca-new.crt 2>ca-new.err || { cat ca-new.err >&2; exit 1; }
cat ca-new.key ca-new.crt
`;

/**
 * \`sh -c\` script: in directory $1, which holds ca.crt and the CA's key as .ca.key (removed
 * here whatever happens), a key and a certificate $2.key / $2.crt for usage $3 (server|client),
 * subject CN=$4, DNS names $5 (comma-separated, may be empty), serial $6 (hex), 1 year; each
 * written beside and renamed into place, the key first.
 */
export const LEAF_SCRIPT = `set -e
umask 077
cd "$1"
trap 'rm -f .ca.key "$2.cnf" "$2.csr" "$2.key.new" "$2.crt.new" "$2.err"' EXIT
{
  printf '%s\\n' '[req]' 'distinguished_name = dn' 'prompt = no' '[dn]' "CN = $4" '[ext]' 'basicConstraints = critical,CA:FALSE' 'keyUsage = critical,digitalSignature,keyEncipherment' "extendedKeyUsage = $3Auth" 'subjectKeyIdentifier = hash' 'authorityKeyIdentifier = keyid'
  if [ -n "$5" ]; then printf 'subjectAltName = %s\\n' "$(printf '%s' "$5" | sed 's/[^,][^,]*/DNS:&/g')"; fi
} > "$2.cnf"
openssl req -new -config "$2.cnf" -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$2.key.new" -out "$2.csr" 2>"$2.err" || { cat "$2.err" >&2; exit 1; }
openssl x509 -req -in "$2.csr" -CA ca.crt -CAkey .ca.key -set_serial "0x$6" -days 365 -extfile "$2.cnf" -extensions ext -out "$2.crt.new" 2>"$2.err" || { cat "$2.err" >&2; exit 1; }
mv "$2.key.new" "$2.key"
mv "$2.crt.new" "$2.crt"
`;

/** The PEM blocks of a text: the CA script's output is the key, then the certificate. */
export function pemBlocks(text: string): string[] {
  return [...text.matchAll(/-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----\n?/g)].map((m) => (m[0].endsWith('\n') ? m[0] : `${m[0]}\n`));
}

const DAY_MS = 86_400_000;

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
