import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './procs.js';

/**
 * A real S3 endpoint on loopback over TLS for the backup tests: s3rver (npm; serves the S3 REST
 * API from a directory; pgBackRest's stanza-create, archive-push/get, backup, expire and
 * restore all work against it), with a CA and a server certificate for localhost made with
 * openssl. s3rver 3.7.1 lists "folders" wrongly when the objects under one are two or more
 * levels deeper (pgBackRest's expire then deletes nothing): its listing is wrapped to fold a
 * full listing into prefixes. It checks access key ids, not signatures.
 */
export interface S3Server {
  port: number;
  bucket: string;
  ca: string;
  dir: string;
  accessKey: string;
  secretKey: string;
  close(): Promise<void>;
}

interface Listed {
  objects: { key: string }[];
  commonPrefixes: string[];
  isTruncated: boolean;
}
type ListFn = (bucket: string, o?: { delimiter?: string; prefix?: string; maxKeys?: number }) => Promise<Listed>;

export async function startS3(bucket = 'pgcharm'): Promise<S3Server> {
  const dir = mkdtempSync(join(tmpdir(), 'pgcharm-s3-'));
  const sh = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  sh(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=pgcharm test CA']);
  sh(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  sh(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'san.ext']);
  const require = createRequire(import.meta.url);
  const FilesystemStore = require('s3rver/lib/stores/filesystem') as { prototype: { listObjects: ListFn } };
  const original = FilesystemStore.prototype.listObjects;
  if (!(original as { pgcharmPatched?: boolean }).pgcharmPatched) {
    const folded: ListFn = async function (this: unknown, b, o = {}) {
      const { delimiter = '', prefix = '', maxKeys = Infinity } = o;
      if (!delimiter) return original.call(this, b, o);
      const all = await original.call(this, b, { ...o, delimiter: '', maxKeys: Infinity });
      const prefixes = new Set<string>();
      const objects: { key: string }[] = [];
      for (const x of all.objects) {
        const i = x.key.slice(prefix.length).indexOf(delimiter);
        if (i !== -1) prefixes.add(x.key.slice(0, prefix.length + i + 1));
        else if (objects.length < maxKeys) objects.push(x);
      }
      return { objects, commonPrefixes: [...prefixes].sort(), isTruncated: false };
    };
    (folded as { pgcharmPatched?: boolean }).pgcharmPatched = true;
    FilesystemStore.prototype.listObjects = folded;
  }
  const { DUMMY_ACCOUNT } = require('s3rver/lib/models/account') as { DUMMY_ACCOUNT: { createKeyPair(id: string, secret: string): void } };
  const accessKey = 'pgcharmtestkey';
  const secretKey = 'pgcharmtestsecret0123456789';
  DUMMY_ACCOUNT.createKeyPair(accessKey, secretKey);
  const S3rver = require('s3rver') as new (o: Record<string, unknown>) => { run(): Promise<unknown>; close(): Promise<void> };
  const port = await freePort();
  const server = new S3rver({ address: '127.0.0.1', port, silent: true, key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.crt')), directory: join(dir, 'data'), configureBuckets: [{ name: bucket }] });
  await server.run();
  return {
    port,
    bucket,
    ca: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    dir: join(dir, 'data'),
    accessKey,
    secretKey,
    async close() {
      await server.close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
