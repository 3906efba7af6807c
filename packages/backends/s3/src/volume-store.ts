import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { BackendError, BackendErrorCode } from '@tcmu/backend';
import {
  chunkKey,
  chunkListPrefixes,
  encodeMetadata,
  leaseName,
  md5,
  md5MetadataKey,
  metadataName,
  parseChunkKey,
  parseMetadata,
  type VolumeMetadata,
} from './layout.ts';
import type { ObjectStore } from './object-store.ts';
import {
  RetriesExhaustedError,
  type RetryCounters,
  type RetryPolicy,
  StoreError,
  withRetry,
} from './retry.ts';
import { formatS3Url, type S3Location } from './url.ts';

/** Who holds a volume's lease (what `tcmu-lease.json` says). */
export interface LeaseInfo {
  /** Random id of this open. */
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  /** ISO time the lease was taken. */
  readonly since: string;
}

/** Request counters of one volume store. */
export interface RequestCounters extends RetryCounters {
  gets: number;
  puts: number;
  deletes: number;
  lists: number;
  bytesDownloaded: number;
  bytesUploaded: number;
  integrityFailures: number;
  /** Small control objects read or written (snapshot requests polled by a writer, replies, markers). */
  controlRequests: number;
}

/** Maps a failure of the store to the BackendError a caller sees. */
export function toBackendError(error: unknown, fallback: BackendErrorCode, context: string): BackendError {
  if (error instanceof BackendError) return error;
  const store =
    error instanceof RetriesExhaustedError ? error.last : error instanceof StoreError ? error : undefined;
  const message = error instanceof Error ? error.message : String(error);
  if (!store) return new BackendError(fallback, `${context}: ${message}`, { cause: error });
  const code =
    store.kind === 'denied'
      ? BackendErrorCode.Permission
      : store.kind === 'no-bucket'
        ? BackendErrorCode.NotFound
        : store.kind === 'no-space'
          ? BackendErrorCode.NoSpace
          : fallback;
  return new BackendError(code, `${context}: ${message}`, { cause: error });
}

/**
 * The objects of one volume (chunks, metadata, lease) over an ObjectStore, every request retried
 * per the policy, every failure a BackendError. Safe for any number of concurrent calls.
 */
export class VolumeStore {
  readonly location: S3Location;
  readonly counters: RequestCounters = {
    gets: 0,
    puts: 0,
    deletes: 0,
    lists: 0,
    retries: 0,
    bytesDownloaded: 0,
    bytesUploaded: 0,
    integrityFailures: 0,
    controlRequests: 0,
  };
  readonly #store: ObjectStore;
  readonly #policy: RetryPolicy;
  readonly #where: string;

  constructor(store: ObjectStore, location: S3Location, policy: RetryPolicy) {
    this.#store = store;
    this.location = location;
    this.#policy = policy;
    this.#where = formatS3Url({ bucket: location.bucket, prefix: location.prefix });
  }

  get where(): string {
    return this.#where;
  }

  async #retry<T>(code: BackendErrorCode, context: string, attempt: (signal: AbortSignal) => Promise<T>) {
    try {
      return await withRetry(attempt, this.#policy, this.counters);
    } catch (error) {
      throw toBackendError(error, code, `${this.#where}: ${context}`);
    }
  }

  /** Chunk `index`'s bytes (exactly `chunkSize`, integrity-checked), or null when no object exists. */
  async readChunk(index: number, chunkSize: number): Promise<Uint8Array | null> {
    const body = await this.readChunkObject(chunkKey(this.location.prefix, index), `chunk ${index}`);
    if (body !== null && body.byteLength !== chunkSize) {
      this.counters.integrityFailures++;
      throw new BackendError(
        BackendErrorCode.Read,
        `${this.#where}: chunk ${index} has ${body.byteLength} bytes, expected ${chunkSize}`,
      );
    }
    return body;
  }

  /** A chunk object's body (MD5-checked against its metadata, retried on mismatch), or null when missing. */
  readChunkObject(key: string, label: string): Promise<Uint8Array | null> {
    return this.#retry(BackendErrorCode.Read, `reading ${label}`, async (signal) => {
      this.counters.gets++;
      const object = await this.#store.get(key, signal);
      if (!object) return null;
      this.counters.bytesDownloaded += object.body.byteLength;
      const expected = object.metadata[md5MetadataKey];
      if (expected && md5(object.body).toString('hex') !== expected) {
        this.counters.integrityFailures++;
        throw new StoreError(`${label} failed its MD5 check (stored ${expected})`, true, 'transient');
      }
      return object.body;
    });
  }

  /** Stores chunk `index` (Content-MD5 on the way up, the MD5 in metadata for the way down). */
  writeChunk(index: number, data: Uint8Array): Promise<void> {
    return this.writeChunkObject(chunkKey(this.location.prefix, index), `chunk ${index}`, data);
  }

  /** Stores a chunk object body under `key` (Content-MD5 up, MD5 in metadata for reads). */
  writeChunkObject(key: string, label: string, data: Uint8Array): Promise<void> {
    const digest = md5(data);
    const options = {
      contentMd5: digest.toString('base64'),
      metadata: { [md5MetadataKey]: digest.toString('hex') },
    };
    return this.#retry(BackendErrorCode.Write, `writing ${label}`, async (signal) => {
      this.counters.puts++;
      await this.#store.put(key, data, options, signal);
      this.counters.bytesUploaded += data.byteLength;
    });
  }

  deleteChunk(index: number): Promise<void> {
    return this.deleteObject(chunkKey(this.location.prefix, index), `chunk ${index}`);
  }

  deleteObject(key: string, label: string): Promise<void> {
    return this.#retry(BackendErrorCode.Write, `deleting ${label}`, async (signal) => {
      this.counters.deletes++;
      await this.#store.delete(key, signal);
    });
  }

  /** A small object under the prefix (`name` relative to it), or null. */
  async getFile(name: string): Promise<Uint8Array | null> {
    const key = `${this.location.prefix}${name}`;
    const object = await this.#retry(BackendErrorCode.Read, `reading ${name}`, (signal) => {
      this.counters.controlRequests++;
      return this.#store.get(key, signal);
    });
    return object?.body ?? null;
  }

  /** Writes a small object under the prefix; with `createOnly`, resolves false when it already exists. */
  async putFile(name: string, body: Uint8Array, createOnly = false): Promise<boolean> {
    const key = `${this.location.prefix}${name}`;
    try {
      await this.#retry(BackendErrorCode.Write, `writing ${name}`, (signal) => {
        this.counters.controlRequests++;
        return this.#store.put(key, body, { createOnly, contentType: 'application/json' }, signal);
      });
      return true;
    } catch (error) {
      if (createOnly && isPrecondition(error)) return false;
      throw error;
    }
  }

  /** Deletes keys in batches of 1000 (falls back to single deletes when the server refuses batches). */
  async deleteKeys(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      try {
        await this.#retry(BackendErrorCode.Write, 'deleting objects', async (signal) => {
          this.counters.deletes++;
          await this.#store.deleteMany(batch, signal);
        });
      } catch {
        for (const key of batch) {
          await this.#retry(BackendErrorCode.Write, `deleting ${key}`, async (signal) => {
            this.counters.deletes++;
            await this.#store.delete(key, signal);
          });
        }
      }
    }
  }

  /** Every object under `prefix` (paged). */
  async listAll(prefix: string): Promise<{ key: string; size: number }[]> {
    const out: { key: string; size: number }[] = [];
    let next: string | undefined;
    do {
      const page = await this.#retry(BackendErrorCode.Read, `listing ${prefix}`, (signal) => {
        this.counters.lists++;
        return this.#store.listPage(prefix, next, signal);
      });
      out.push(...page.objects);
      next = page.next;
    } while (next);
    return out;
  }

  /** The stored chunks: chunk number → object size. Lists the 16 key ranges in parallel. */
  async listChunks(): Promise<Map<number, number>> {
    const pages = await Promise.all(chunkListPrefixes(this.location.prefix).map((p) => this.listAll(p)));
    const chunks = new Map<number, number>();
    for (const page of pages) {
      for (const object of page) {
        const index = parseChunkKey(this.location.prefix, object.key);
        if (index !== undefined) chunks.set(index, object.size);
      }
    }
    return chunks;
  }

  /** The volume's geometry, or null when the prefix holds no volume. */
  async readMetadata(): Promise<VolumeMetadata | null> {
    const key = `${this.location.prefix}${metadataName}`;
    const object = await this.#retry(BackendErrorCode.Open, 'reading the volume description', (signal) =>
      this.#store.get(key, signal),
    );
    return object ? parseMetadata(object.body, this.#where) : null;
  }

  /** Writes the geometry; with `createOnly`, fails with Open when a volume already exists there. */
  async writeMetadata(metadata: VolumeMetadata, createOnly: boolean): Promise<void> {
    const key = `${this.location.prefix}${metadataName}`;
    try {
      await this.#retry(BackendErrorCode.Open, 'writing the volume description', (signal) =>
        this.#store.put(
          key,
          encodeMetadata(metadata),
          {
            createOnly,
            contentType: 'application/json',
            contentMd5: md5(encodeMetadata(metadata)).toString('base64'),
          },
          signal,
        ),
      );
    } catch (error) {
      if (isPrecondition(error)) {
        throw new BackendError(BackendErrorCode.Open, `${this.#where}: a volume already exists there`);
      }
      throw error;
    }
  }

  /** The current lease holder, or null. */
  async readLease(): Promise<LeaseInfo | null> {
    const key = `${this.location.prefix}${leaseName}`;
    const object = await this.#retry(BackendErrorCode.Open, 'reading the lease', (signal) =>
      this.#store.get(key, signal),
    );
    if (!object) return null;
    try {
      const value = JSON.parse(Buffer.from(object.body).toString('utf8')) as Partial<LeaseInfo>;
      return {
        id: String(value.id ?? ''),
        host: String(value.host ?? '?'),
        pid: Number(value.pid ?? 0),
        since: String(value.since ?? '?'),
      };
    } catch {
      return { id: '', host: '?', pid: 0, since: '?' };
    }
  }

  /**
   * Takes the single-writer lease: a conditional create (If-None-Match: *). When another holder
   * exists, fails with `TCMU_ERR_BACKEND_LOCKED` naming it, unless `force` (then the lease is
   * taken over: use only when that holder is known to be gone).
   */
  async acquireLease(force: boolean): Promise<LeaseInfo> {
    const lease: LeaseInfo = {
      id: randomUUID(),
      host: hostname(),
      pid: process.pid,
      since: new Date().toISOString(),
    };
    const key = `${this.location.prefix}${leaseName}`;
    const body = Buffer.from(`${JSON.stringify(lease)}\n`);
    const put = (createOnly: boolean) =>
      this.#retry(BackendErrorCode.Open, 'taking the lease', (signal) =>
        this.#store.put(key, body, { createOnly, contentType: 'application/json' }, signal),
      );
    try {
      await put(true);
    } catch (error) {
      if (!isPrecondition(error)) throw error;
      if (!force) {
        const holder = await this.readLease();
        const who = holder
          ? `process ${holder.pid} on ${holder.host} since ${holder.since}`
          : 'another process';
        throw new BackendError(
          BackendErrorCode.Locked,
          `${this.#where} is open read-write by ${who}; a volume has one writer at a time. If that process is gone, break the stale lease with the force option (tcmu: --force)`,
        );
      }
      await put(false);
    }
    return lease;
  }

  /** Releases the lease if it is still ours (a forced take-over by another process is left alone). */
  async releaseLease(lease: LeaseInfo): Promise<void> {
    const current = await this.readLease();
    if (current?.id !== lease.id) return;
    const key = `${this.location.prefix}${leaseName}`;
    await this.#retry(BackendErrorCode.Write, 'releasing the lease', (signal) =>
      this.#store.delete(key, signal),
    );
  }

  /** Deletes every object under the prefix. Returns how many were deleted. */
  async deleteEverything(): Promise<number> {
    const objects = await this.listAll(this.location.prefix);
    // Chunks first, the description and the lease last: an interrupted delete still looks like a volume.
    const last = new Set([`${this.location.prefix}${metadataName}`, `${this.location.prefix}${leaseName}`]);
    await this.deleteKeys(objects.filter((o) => !last.has(o.key)).map((o) => o.key));
    await this.deleteKeys(objects.filter((o) => last.has(o.key)).map((o) => o.key));
    return objects.length;
  }

  /** The same bucket and connection at another prefix (for a clone's origin); never close it. */
  sibling(prefix: string): VolumeStore {
    return new VolumeStore(this.#store, { ...this.location, prefix }, this.#policy);
  }

  close(): void {
    this.#store.close();
  }
}

function isPrecondition(error: unknown): boolean {
  const cause = (error as { cause?: unknown })?.cause;
  const store = cause instanceof RetriesExhaustedError ? cause.last : cause;
  return store instanceof StoreError && store.kind === 'precondition';
}
