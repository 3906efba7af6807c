import { createHash } from 'node:crypto';
import type { ListedObject, ObjectStore, PutOptions, StoredObject } from './object-store.ts';
import { StoreError } from './retry.ts';

/** What an injected failure does to one request. */
export type InjectedFailure =
  /** HTTP 500 InternalError (retryable). */
  | 'internal-error'
  /** HTTP 503 SlowDown (retryable). */
  | 'slow-down'
  /** The request never answers: it hangs until its AbortSignal fires (the retry loop's attempt timeout). */
  | 'timeout'
  /** The connection is reset before an answer (retryable). */
  | 'reset'
  /** HTTP 403 AccessDenied (final). */
  | 'denied'
  /** The connection is refused (nothing listens): retried while serving, fatal while opening. */
  | 'refused';

/** One request as the failure hook sees it. `number` counts every request of the store from 1. */
export interface StoreRequest {
  readonly number: number;
  readonly operation: 'GET' | 'HEAD' | 'PUT' | 'DELETE' | 'DELETE_MANY' | 'LIST';
  readonly key: string;
}

export interface MemoryObjectStoreOptions {
  /** Keys per listing page (S3's max-keys). Default 1000. */
  readonly maxKeys?: number;
  /** Called before every request; return a failure to inject it (the request then changes nothing). */
  readonly fail?: (request: StoreRequest) => InjectedFailure | undefined;
}

interface Entry {
  readonly body: Uint8Array;
  readonly metadata: Record<string, string>;
  readonly etag: string;
}

const utf8Compare = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

function abortError(signal: AbortSignal): Error {
  const reason = signal.reason;
  return reason instanceof Error ? reason : Object.assign(new Error('aborted'), { name: 'AbortError' });
}

/**
 * An S3 bucket in memory that behaves like the real thing where the backend depends on it:
 *
 * - ETags are the quoted hex MD5 of the body (as S3 gives for a single-part PUT), returned by
 *   put/get/head; `ifMatch` (If-Match) and `createOnly` (If-None-Match: *) are enforced atomically and
 *   fail with kind `precondition` (HTTP 412); a wrong `contentMd5` fails with BadDigest (HTTP 400).
 * - Listings are in lexicographic order of the keys' UTF-8 bytes, `maxKeys` per page, continued with
 *   an opaque continuation token (a key written during a listing appears if it sorts after the page).
 * - Bodies are copied in and out: a caller changing its buffer later never changes a stored object.
 * - `fail` injects failures per request (500, 503, reset, 403, or a request that hangs until its
 *   AbortSignal fires); {@link failRequests} does it for given request numbers.
 * - Every request honours its AbortSignal; `close()` keeps the data (a new backend may reopen the
 *   same store, as a new process would the same bucket).
 */
export class MemoryObjectStore implements ObjectStore {
  readonly #objects = new Map<string, Entry>();
  readonly #maxKeys: number;
  #fail: ((request: StoreRequest) => InjectedFailure | undefined) | undefined;
  /** Requests received (including failed ones). */
  requests = 0;
  /** Requests that got an injected failure. */
  injected = 0;

  constructor(options: MemoryObjectStoreOptions = {}) {
    this.#maxKeys = options.maxKeys ?? 1000;
    if (!Number.isSafeInteger(this.#maxKeys) || this.#maxKeys < 1)
      throw new RangeError('maxKeys must be ≥ 1');
    this.#fail = options.fail;
  }

  /** Replaces the failure hook (undefined: no more failures). */
  setFailureHook(fail: ((request: StoreRequest) => InjectedFailure | undefined) | undefined): void {
    this.#fail = fail;
  }

  /** Fails the requests with these numbers (counted from the next request, 1 = the next one). */
  failRequests(numbers: readonly number[], failure: InjectedFailure): void {
    const base = this.requests;
    const wanted = new Set(numbers.map((n) => base + n));
    this.#fail = (request) => (wanted.has(request.number) ? failure : undefined);
  }

  /** Every key, sorted (for tests). */
  keys(): string[] {
    return [...this.#objects.keys()].sort(utf8Compare);
  }

  async #enter(operation: StoreRequest['operation'], key: string, signal: AbortSignal): Promise<void> {
    const number = ++this.requests;
    // Answer asynchronously, as a network would: callers must not rely on synchronous completion.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (signal.aborted) throw abortError(signal);
    const failure = this.#fail?.({ number, operation, key });
    if (failure === undefined) return;
    this.injected++;
    const where = `S3 ${operation} ${key} failed`;
    switch (failure) {
      case 'internal-error':
        throw new StoreError(`${where}: HTTP 500 InternalError (injected)`, true, 'transient');
      case 'slow-down':
        throw new StoreError(`${where}: HTTP 503 SlowDown (injected)`, true, 'transient');
      case 'reset':
        throw new StoreError(`${where}: ECONNRESET (injected)`, true, 'transient');
      case 'refused':
        throw new StoreError(`${where}: ECONNREFUSED (injected)`, true, 'unreachable');
      case 'denied':
        throw new StoreError(`${where}: HTTP 403 AccessDenied (injected)`, false, 'denied');
      case 'timeout':
        await new Promise<never>((_, reject) => {
          if (signal.aborted) reject(abortError(signal));
          signal.addEventListener('abort', () => reject(abortError(signal)), { once: true });
        });
    }
  }

  async get(key: string, signal: AbortSignal): Promise<StoredObject | null> {
    await this.#enter('GET', key, signal);
    const entry = this.#objects.get(key);
    if (!entry) return null;
    return { body: entry.body.slice(), metadata: { ...entry.metadata }, etag: entry.etag };
  }

  async getRange(key: string, from: number, to: number, signal: AbortSignal): Promise<StoredObject | null> {
    await this.#enter('GET', key, signal);
    const entry = this.#objects.get(key);
    if (!entry) return null;
    return { body: entry.body.slice(from, to), metadata: { ...entry.metadata }, etag: entry.etag };
  }

  async head(key: string, signal: AbortSignal) {
    await this.#enter('HEAD', key, signal);
    const entry = this.#objects.get(key);
    if (!entry) return null;
    return { size: entry.body.byteLength, metadata: { ...entry.metadata }, etag: entry.etag };
  }

  async put(key: string, body: Uint8Array, options: PutOptions, signal: AbortSignal) {
    await this.#enter('PUT', key, signal);
    const digest = createHash('md5').update(body).digest();
    if (options.contentMd5 !== undefined && options.contentMd5 !== digest.toString('base64')) {
      throw new StoreError(`S3 PUT ${key} failed: HTTP 400 BadDigest`, false, 'other');
    }
    const existing = this.#objects.get(key);
    if (options.createOnly && existing) {
      throw new StoreError(`S3 PUT ${key} failed: HTTP 412 PreconditionFailed`, false, 'precondition');
    }
    if (options.ifMatch !== undefined && existing?.etag !== options.ifMatch) {
      throw new StoreError(`S3 PUT ${key} failed: HTTP 412 PreconditionFailed`, false, 'precondition');
    }
    const etag = `"${digest.toString('hex')}"`;
    const metadata: Record<string, string> = {};
    for (const [name, value] of Object.entries(options.metadata ?? {})) metadata[name.toLowerCase()] = value;
    this.#objects.set(key, { body: body.slice(), metadata, etag });
    return { etag };
  }

  async delete(key: string, signal: AbortSignal): Promise<void> {
    await this.#enter('DELETE', key, signal);
    this.#objects.delete(key);
  }

  async deleteMany(keys: readonly string[], signal: AbortSignal): Promise<void> {
    if (keys.length === 0) return;
    if (keys.length > 1000) throw new StoreError('S3 DeleteObjects takes at most 1000 keys', false, 'other');
    await this.#enter('DELETE_MANY', keys[0]!, signal);
    for (const key of keys) this.#objects.delete(key);
  }

  async listPage(prefix: string, continuation: string | undefined, signal: AbortSignal) {
    await this.#enter('LIST', prefix, signal);
    let after: string | undefined;
    if (continuation !== undefined) {
      try {
        after = Buffer.from(continuation, 'base64url').toString('utf8');
      } catch {
        throw new StoreError('S3 LIST: HTTP 400 InvalidArgument (continuation token)', false, 'other');
      }
    }
    const keys = [...this.#objects.keys()]
      .filter((k) => k.startsWith(prefix) && (after === undefined || utf8Compare(k, after) > 0))
      .sort(utf8Compare);
    const page = keys.slice(0, this.#maxKeys);
    const objects: ListedObject[] = page.map((key) => ({
      key,
      size: this.#objects.get(key)!.body.byteLength,
    }));
    const next =
      keys.length > page.length
        ? Buffer.from(page[page.length - 1]!, 'utf8').toString('base64url')
        : undefined;
    return { objects, next };
  }

  close(): void {}
}
