import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';

/**
 * The server's TLS identity. kubectl (client-go's clientcmd) only sends a kubeconfig's
 * credentials over TLS, so the API server speaks https even on loopback. The certificate is
 * self-signed (it is its own CA, handed to clients in the kubeconfig), made once by the
 * `openssl` binary and kept in the store directory, so kubeconfigs stay valid across restarts.
 * It names 127.0.0.1, ::1, localhost and the listen address.
 */

export interface TlsIdentity {
  cert: string;
  key: string;
}

const run = promisify(execFile);
const CERT = 'tls.crt';
const KEY = 'tls.key';

/** Whether the kept certificate still serves: key matches (a crash may split a renewal), valid, names the host. */
function usable(pem: string, keyPem: string, host: string): boolean {
  try {
    const c = new X509Certificate(pem);
    if (!c.checkPrivateKey(createPrivateKey(keyPem))) return false;
    if (Date.parse(c.validTo) < Date.now() + 30 * 86_400_000) return false; // renew a month early
    return isIP(host) ? c.checkIP(host) !== undefined : c.checkHost(host) !== undefined;
  } catch {
    return false;
  }
}

export async function loadOrCreateTls(dir: string, host: string, log: Logger): Promise<TlsIdentity> {
  const certFile = path.join(dir, CERT);
  const keyFile = path.join(dir, KEY);
  try {
    const cert = fs.readFileSync(certFile, 'utf8');
    const key = fs.readFileSync(keyFile, 'utf8');
    if (usable(cert, key, host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host)) return { cert, key };
  } catch {
    /* none yet */
  }
  const sans = new Set(['IP:127.0.0.1', 'IP:0:0:0:0:0:0:0:1', 'DNS:localhost']);
  if (host !== '0.0.0.0' && host !== '::') sans.add(isIP(host) ? `IP:${host}` : `DNS:${host}`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgcharm-tls-'));
  try {
    const cfg = path.join(tmp, 'openssl.cnf');
    fs.writeFileSync(
      cfg,
      [
        '[req]',
        'distinguished_name = dn',
        'x509_extensions = ext',
        'prompt = no',
        '[dn]',
        'CN = pgcharm-apiserver',
        '[ext]',
        `subjectAltName = ${[...sans].join(',')}`,
        'basicConstraints = critical,CA:TRUE',
        'keyUsage = critical,digitalSignature,keyCertSign',
        'extendedKeyUsage = serverAuth',
        'subjectKeyIdentifier = hash',
        '',
      ].join('\n'),
    );
    const key = path.join(tmp, KEY);
    const cert = path.join(tmp, CERT);
    try {
      await run('openssl', ['req', '-x509', '-config', cfg, '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '3650', '-keyout', key, '-out', cert]);
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stderr?: string };
      if (err.code === 'ENOENT') throw new Error('the API server needs the openssl command to make its TLS certificate: apt-get install -y openssl');
      throw new Error(`openssl could not make the API server's certificate: ${err.stderr?.trim() || err.message}`);
    }
    const identity = { cert: fs.readFileSync(cert, 'utf8'), key: fs.readFileSync(key, 'utf8') };
    // Key first: a crash in between leaves a key without its cert, which is simply made again.
    for (const [file, text] of [
      [keyFile, identity.key],
      [certFile, identity.cert],
    ] as const) {
      fs.writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
      fs.renameSync(`${file}.tmp`, file);
    }
    log.info({ sans: [...sans] }, 'made a self-signed TLS certificate for the API server');
    return identity;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
