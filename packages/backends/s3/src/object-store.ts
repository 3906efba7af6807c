import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  type DeleteObjectsCommandOutput,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { type BodyStream, readBody } from './read-body.ts';
import { StoreError } from './retry.ts';

/** One object of a listing. */
export interface ListedObject {
  readonly key: string;
  readonly size: number;
}

/** An object read back in full. */
export interface StoredObject {
  readonly body: Uint8Array;
  readonly metadata: Readonly<Record<string, string>>;
  /** The object's ETag as the server sent it (quoted; for a single-part PUT the hex MD5 of the body). */
  readonly etag?: string;
}

export interface PutOptions {
  /** Base64 MD5 of the body, sent as Content-MD5: the server rejects a body that arrived damaged. */
  readonly contentMd5?: string;
  /** User metadata (x-amz-meta-*), lower-case keys. */
  readonly metadata?: Record<string, string>;
  /** Create only: fail with kind `precondition` when the key exists (If-None-Match: *). */
  readonly createOnly?: boolean;
  /** Replace only: fail with kind `precondition` unless the key exists with this ETag (If-Match). */
  readonly ifMatch?: string;
  readonly contentType?: string;
}

/**
 * The few object operations the backend needs, each ONE attempt (the retry loop is the caller's).
 * Every failure is a `StoreError` saying whether it is worth retrying. Keys are full keys.
 * All methods may run concurrently.
 */
export interface ObjectStore {
  /** Reads a whole object; `null` when it does not exist. */
  get(key: string, signal: AbortSignal): Promise<StoredObject | null>;
  /**
   * Bytes `[from, to)` of an object (fewer when it ends before `to`, none when it ends before
   * `from`), with the object's metadata and ETag; `null` when it does not exist. Absent: the store
   * reads whole objects only.
   */
  getRange?(key: string, from: number, to: number, signal: AbortSignal): Promise<StoredObject | null>;
  /** Metadata only; `null` when it does not exist. */
  head(
    key: string,
    signal: AbortSignal,
  ): Promise<{ size: number; metadata: Record<string, string>; etag?: string } | null>;
  /** Stores an object; resolves with its new ETag when the server sends one. */
  put(key: string, body: Uint8Array, options: PutOptions, signal: AbortSignal): Promise<{ etag?: string }>;
  /** Deletes a key; deleting a missing key succeeds. */
  delete(key: string, signal: AbortSignal): Promise<void>;
  /** Deletes up to 1000 keys in one request. */
  deleteMany(keys: readonly string[], signal: AbortSignal): Promise<void>;
  /** One page of a listing under `prefix`; `next` continues it. */
  listPage(
    prefix: string,
    continuation: string | undefined,
    signal: AbortSignal,
  ): Promise<{ objects: ListedObject[]; next: string | undefined }>;
  /** Releases sockets. */
  close(): void;
}

/** Network errors that waiting will not heal while opening (the endpoint is wrong or the server is down). */
const unreachableCodes = new Set(['ECONNREFUSED', 'ENOTFOUND']);
const transientCodes = new Set([
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);
const transientNames = new Set([
  'TimeoutError',
  'AbortError',
  'RequestTimeout',
  'RequestTimeoutException',
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestThrottled',
  'InternalError',
  'ServiceUnavailable',
  'BadDigest',
  'IncompleteBody',
]);

/** Turns whatever the SDK or the socket threw into a StoreError. Never includes credentials. */
export function classifyError(operation: string, key: string, error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const e = error as {
    name?: string;
    code?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number };
    $retryable?: unknown;
  };
  const status = e?.$metadata?.httpStatusCode;
  const name = e?.name ?? 'Error';
  const where = `${operation} ${key}`;
  const detail = status ? `HTTP ${status} ${name}` : `${name}${e?.code ? ` ${e.code}` : ''}`;
  const message = `S3 ${where} failed: ${detail}${e?.message && e.message !== name ? `: ${e.message}` : ''}`;
  if (name === 'CredentialsProviderError') {
    return new StoreError(
      `S3 ${where} failed: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)`,
      false,
      'denied',
      { cause: error },
    );
  }
  const code = e?.code ?? (e as { cause?: { code?: string } })?.cause?.code;
  if (code !== undefined && unreachableCodes.has(code) && status === undefined) {
    const advice =
      code === 'ENOTFOUND'
        ? 'the endpoint host name does not resolve: check ?endpoint= (local RGW: tools/s3/rgw env)'
        : 'nothing listens at the endpoint: is the S3 server running? (local RGW: tools/s3/rgw start)';
    return new StoreError(`S3 ${where} failed: ${code}: ${advice}`, true, 'unreachable', { cause: error });
  }
  if (name === 'NoSuchBucket')
    return new StoreError(
      `${message} (create the bucket first; the local RGW from tools/s3/rgw start has the bucket tcmu-test)`,
      false,
      'no-bucket',
      { cause: error },
    );
  if (status === 412 || name === 'PreconditionFailed' || name === 'ConditionalRequestConflict')
    return new StoreError(message, false, 'precondition', { cause: error });
  if (
    status === 403 ||
    name === 'AccessDenied' ||
    name === 'InvalidAccessKeyId' ||
    name === 'SignatureDoesNotMatch'
  )
    return new StoreError(
      `${message} (check the credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE; for the local RGW: eval "$(tools/s3/rgw env)")`,
      false,
      'denied',
      { cause: error },
    );
  if (name === 'QuotaExceeded' || name === 'EntityTooLarge' || status === 507)
    return new StoreError(message, false, 'no-space', { cause: error });
  if (
    (status !== undefined && (status >= 500 || status === 429 || status === 408)) ||
    transientNames.has(name) ||
    (e?.code !== undefined && transientCodes.has(e.code)) ||
    e?.$retryable
  ) {
    return new StoreError(message, true, 'transient', { cause: error });
  }
  // No HTTP status at all: a socket or parser failure on the way; worth another try.
  if (status === undefined && !(error instanceof TypeError))
    return new StoreError(message, true, 'transient', { cause: error });
  return new StoreError(message, false, 'other', { cause: error });
}

const statusOf = (error: unknown) =>
  (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;

/** A 404 that means "no such key", not a missing bucket (the SDK's errors and `S3ResponseError` alike). */
export function isNotFound(error: unknown): boolean {
  return statusOf(error) === 404 && (error as { name?: string })?.name !== 'NoSuchBucket';
}

/** The StoreError of a batch delete whose answer lists failed keys (a key already gone is no failure). */
export function batchDeleteError(errors: readonly { key: string; code: string }[]): StoreError | undefined {
  const failed = errors.filter((e) => e.code !== 'NoSuchKey');
  if (failed.length === 0) return undefined;
  return new StoreError(
    `S3 batch delete failed for ${failed.length} keys (first: ${failed[0]!.key}: ${failed[0]!.code})`,
    true,
    'transient',
  );
}

/** 416: a range that starts past the object's end (reads as no bytes). */
export function isRangeNotSatisfiable(error: unknown): boolean {
  return statusOf(error) === 416;
}

/** The StoreError of a failed PUT. If-Match on a missing key: some servers answer 404 instead of 412; both mean "not that object". */
export function putError(key: string, options: PutOptions, error: unknown): StoreError {
  if (options.ifMatch && isNotFound(error))
    return new StoreError(`S3 PUT ${key} failed: the object is gone (If-Match)`, false, 'precondition', {
      cause: error,
    });
  return classifyError('PUT', key, error);
}

/** The ObjectStore over an S3Client the caller built (`S3BackendOptions.client`): every request goes through the SDK. */
export class SdkObjectStore implements ObjectStore {
  readonly #client: S3Client;
  readonly #bucket: string;

  constructor(bucket: string, client: S3Client) {
    this.#bucket = bucket;
    this.#client = client;
  }

  async get(key: string, signal: AbortSignal): Promise<StoredObject | null> {
    try {
      const response = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key }), {
        abortSignal: signal,
      });
      const body = await readBody(response.Body as BodyStream, response.ContentLength, signal);
      return { body, metadata: response.Metadata ?? {}, ...(response.ETag ? { etag: response.ETag } : {}) };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw classifyError('GET', key, error);
    }
  }

  async getRange(key: string, from: number, to: number, signal: AbortSignal): Promise<StoredObject | null> {
    try {
      const response = await this.#client.send(
        new GetObjectCommand({ Bucket: this.#bucket, Key: key, Range: `bytes=${from}-${to - 1}` }),
        { abortSignal: signal },
      );
      const body = await readBody(response.Body as BodyStream, response.ContentLength, signal);
      // A server that ignores Range sends the whole object.
      const part = response.ContentRange === undefined ? body.subarray(from, to) : body;
      return {
        body: part,
        metadata: response.Metadata ?? {},
        ...(response.ETag ? { etag: response.ETag } : {}),
      };
    } catch (error) {
      if (isNotFound(error)) return null;
      if (isRangeNotSatisfiable(error)) return { body: new Uint8Array(0), metadata: {} };
      throw classifyError('GET', key, error);
    }
  }

  async head(key: string, signal: AbortSignal) {
    try {
      const response = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: key }), {
        abortSignal: signal,
      });
      return {
        size: response.ContentLength ?? 0,
        metadata: response.Metadata ?? {},
        ...(response.ETag ? { etag: response.ETag } : {}),
      };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw classifyError('HEAD', key, error);
    }
  }

  async put(key: string, body: Uint8Array, options: PutOptions, signal: AbortSignal) {
    try {
      const response = await this.#client.send(
        new PutObjectCommand({
          Bucket: this.#bucket,
          Key: key,
          Body: body,
          ContentLength: body.byteLength,
          ...(options.contentMd5 ? { ContentMD5: options.contentMd5 } : {}),
          ...(options.metadata ? { Metadata: options.metadata } : {}),
          ...(options.createOnly ? { IfNoneMatch: '*' } : {}),
          // Unquoted: Ceph RGW compares If-Match with its stored ETag, which has no quotes.
          ...(options.ifMatch ? { IfMatch: options.ifMatch.replace(/^"(.*)"$/, '$1') } : {}),
          ContentType: options.contentType ?? 'application/octet-stream',
        }),
        { abortSignal: signal },
      );
      return response.ETag ? { etag: response.ETag } : {};
    } catch (error) {
      throw putError(key, options, error);
    }
  }

  async delete(key: string, signal: AbortSignal): Promise<void> {
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key }), {
        abortSignal: signal,
      });
    } catch (error) {
      if (isNotFound(error)) return;
      throw classifyError('DELETE', key, error);
    }
  }

  async deleteMany(keys: readonly string[], signal: AbortSignal): Promise<void> {
    if (keys.length === 0) return;
    let response: DeleteObjectsCommandOutput;
    try {
      response = await this.#client.send(
        new DeleteObjectsCommand({
          Bucket: this.#bucket,
          Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
        }),
        { abortSignal: signal },
      );
    } catch (error) {
      throw classifyError('DELETE (batch)', keys[0]!, error);
    }
    const failure = batchDeleteError(
      (response.Errors ?? []).map((e) => ({ key: e.Key ?? '', code: e.Code ?? 'unknown' })),
    );
    if (failure) throw failure;
  }

  async listPage(prefix: string, continuation: string | undefined, signal: AbortSignal) {
    try {
      const response = await this.#client.send(
        new ListObjectsV2Command({
          Bucket: this.#bucket,
          Prefix: prefix,
          MaxKeys: 1000,
          ...(continuation ? { ContinuationToken: continuation } : {}),
        }),
        { abortSignal: signal },
      );
      const objects = (response.Contents ?? []).map((o) => ({ key: o.Key ?? '', size: o.Size ?? 0 }));
      return { objects, next: response.IsTruncated ? response.NextContinuationToken : undefined };
    } catch (error) {
      throw classifyError('LIST', prefix, error);
    }
  }

  close(): void {
    // The client is the caller's.
  }
}
