import { Agent } from 'node:https';
import { PassThrough, type Readable } from 'node:stream';
import type { S3Repo } from './backup.js';
import type { S3Credentials } from './secrets.js';

/**
 * Logical dumps in the S3 repository, beside pgBackRest's stanza: `<s3-path>/dumps/<db>/...`.
 * pgBackRest moves only its own files (its repo-put is for internal use only), so dumps go
 * through the AWS SDK (@aws-sdk/client-s3, lib-storage's multipart Upload: a stream of any
 * length in memory bounded by parts): pg_dump's output streams from the workload through the
 * sidecar to the bucket, and back into pg_restore. Loaded only when a dump touches S3.
 */

export interface DumpObject {
  key: string;
  bytes: number;
}

/** The object key of a dump file under the repository's prefix. */
export const dumpKey = (repo: S3Repo, db: string, file: string): string => `${repo.path.replace(/^\/+|\/+$/g, '')}/dumps/${db}/${file}`.replace(/^\/+/, '');

export class S3Dumps {
  private constructor(
    private readonly repo: S3Repo,
    // The SDK's client, typed loosely so its 20 MB of types load only here (lazy import).
    private readonly client: import('@aws-sdk/client-s3').S3Client,
    private readonly sdk: typeof import('@aws-sdk/client-s3'),
  ) {}

  static async open(repo: S3Repo, keys: S3Credentials): Promise<S3Dumps> {
    const [sdk, { NodeHttpHandler }] = await Promise.all([import('@aws-sdk/client-s3'), import('@smithy/node-http-handler')]);
    const client = new sdk.S3Client({
      endpoint: `https://${repo.host}:${repo.port}`,
      region: repo.region,
      forcePathStyle: repo.uriStyle === 'path',
      credentials: { accessKeyId: keys['access-key'], secretAccessKey: keys['secret-key'] },
      // Checksums only where S3 requires them: S3-compatible servers refuse the newer ones.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
      requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ keepAlive: true, ...(repo.ca ? { ca: repo.ca } : {}) }), connectionTimeout: 10_000, requestTimeout: 300_000 }),
    });
    return new S3Dumps(repo, client, sdk);
  }

  where(key: string): string {
    return `s3://${this.repo.bucket}/${key}`;
  }

  /**
   * Uploads what `produce` writes into the stream it is given; the object appears only once
   * `produce` resolved (a multipart upload is completed last, and aborted on failure), so a
   * reader never sees half a dump.
   */
  async put(key: string, produce: (out: PassThrough) => Promise<void>): Promise<number> {
    const { Upload } = await import('@aws-sdk/lib-storage');
    const body = new PassThrough();
    let bytes = 0;
    body.on('data', (c: Buffer) => (bytes += c.length));
    const upload = new Upload({ client: this.client, params: { Bucket: this.repo.bucket, Key: key, Body: body, ContentType: 'application/octet-stream' }, queueSize: 2, partSize: 16 * 2 ** 20, leavePartsOnError: false });
    const done = upload.done();
    try {
      await produce(body);
      body.end();
    } catch (e) {
      body.destroy(e instanceof Error ? e : new Error(String(e)));
      await upload.abort().catch(() => undefined);
      await done.catch(() => undefined);
      throw e;
    }
    await done;
    return bytes;
  }

  /** A server-side copy (the "latest" dump). */
  async copy(from: string, to: string): Promise<void> {
    await this.client.send(new this.sdk.CopyObjectCommand({ Bucket: this.repo.bucket, Key: to, CopySource: `${this.repo.bucket}/${from.split('/').map(encodeURIComponent).join('/')}` }));
  }

  /** The object's size, undefined when there is none. */
  async size(key: string): Promise<number | undefined> {
    try {
      return (await this.client.send(new this.sdk.HeadObjectCommand({ Bucket: this.repo.bucket, Key: key }))).ContentLength ?? 0;
    } catch (e) {
      if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
      throw e;
    }
  }

  async get(key: string): Promise<Readable> {
    const r = await this.client.send(new this.sdk.GetObjectCommand({ Bucket: this.repo.bucket, Key: key }));
    return r.Body as Readable;
  }

  close(): void {
    this.client.destroy();
  }
}
