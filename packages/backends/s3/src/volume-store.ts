import { BackendError, BackendErrorCode } from '@tcmu/backend';
import {
  chunkKey,
  chunkListPrefixes,
  enclosingPrefixes,
  encodeMetadata,
  isVolumeObjectKey,
  leaseName,
  md5,
  md5MetadataKey,
  metadataName,
  parseChunkKey,
  parseMetadata,
  segmentMd5MetadataKey,
  segmentSize,
  type VolumeMetadata,
} from './layout.ts';
import type { ObjectStore } from './object-store.ts';
import {
  RetriesExhaustedError,
  type RetryCounters,
  type RetryNotice,
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
  /** ISO time (the holder's clock) of the last renewal; absent in leases of older versions. */
  readonly renewed?: string;
  /** Milliseconds the lease lasts without renewal; absent in leases of older versions (which never renew). */
  readonly duration?: number;
  /** Renewals so far: every renewal changes the object (and its ETag). */
  readonly serial?: number;
  /** The holder's kernel boot id and its process start time (clock ticks since boot): tell a dead local holder. */
  readonly bootId?: string;
  readonly processStart?: number;
}

/** Hooks of a volume store: where retries are reported, a signal that cancels every request. */
export interface VolumeStoreHooks {
  /** Called before each retry (never with credentials). */
  readonly onRetry?: (retry: RetryNotice) => void;
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
  /** Small control objects read or written (lease writes and renewals, snapshot requests polled by a writer, replies, markers). */
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
  readonly #hooks: VolumeStoreHooks;
  /**
   * While set (opening, admin commands), errors that will not heal by waiting (unknown host, refused
   * connection) fail at once instead of being retried, and this signal cancels every request.
   */
  setup: { signal?: AbortSignal } | undefined = {};
  /** Called before every attempt to change a chunk: throws when this process may no longer write (lease). */
  beforeWrite: (() => void) | undefined;
  /** For a {@link sibling}: the store whose `setup` mode it follows. */
  #modeOf: VolumeStore | undefined;

  constructor(store: ObjectStore, location: S3Location, policy: RetryPolicy, hooks: VolumeStoreHooks = {}) {
    this.#store = store;
    this.location = location;
    this.#policy = policy;
    this.#hooks = hooks;
    this.#where = formatS3Url({ bucket: location.bucket, prefix: location.prefix });
  }

  /** The raw store (for the lease, which does its own conditional requests). */
  get store(): ObjectStore {
    return this.#store;
  }

  get where(): string {
    return this.#where;
  }

  async #retry<T>(code: BackendErrorCode, context: string, attempt: (signal: AbortSignal) => Promise<T>) {
    try {
      const setup = (this.#modeOf ?? this).setup;
      return await withRetry(attempt, this.#policy, this.counters, setup?.signal, {
        failFastUnreachable: setup !== undefined,
        onRetry: (notice) => this.#hooks.onRetry?.({ ...notice, operation: `${this.#where}: ${context}` }),
      });
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

  /**
   * Stores a chunk object body under `key` (Content-MD5 up, MD5 in metadata for reads). With
   * `segmented` (a plain chunk of more than one segment) the segments' MD5s go along, for ranged reads.
   */
  writeChunkObject(key: string, label: string, data: Uint8Array, segmented = false): Promise<void> {
    const digest = md5(data);
    const metadata: Record<string, string> = { [md5MetadataKey]: digest.toString('hex') };
    const segment = segmentSize(data.byteLength);
    if (segmented && data.byteLength > segment) {
      let sums = '';
      for (let at = 0; at < data.byteLength; at += segment)
        sums += md5(data.subarray(at, at + segment)).toString('hex');
      metadata[segmentMd5MetadataKey] = `${segment}:${sums}`;
    }
    const options = { contentMd5: digest.toString('base64'), metadata };
    return this.#retry(BackendErrorCode.Write, `writing ${label}`, async (signal) => {
      this.beforeWrite?.();
      this.counters.puts++;
      await this.#store.put(key, data, options, signal);
      this.counters.bytesUploaded += data.byteLength;
    });
  }

  /** True when {@link readChunkRange} can work (the store reads ranges). */
  get rangedReads(): boolean {
    return this.#store.getRange !== undefined;
  }

  /**
   * Bytes `[from, to)` of a plain chunk object of `chunkSize` bytes: the whole segments around them
   * in one ranged GET, each checked against the object's segment MD5s (retried on mismatch). Null:
   * no object. `unverifiable`: the object has no segment MD5s (written before they existed).
   */
  readChunkRange(
    key: string,
    label: string,
    chunkSize: number,
    from: number,
    to: number,
  ): Promise<Uint8Array | null | 'unverifiable'> {
    const segment = segmentSize(chunkSize);
    const start = Math.floor(from / segment) * segment;
    const end = Math.min(Math.ceil(to / segment) * segment, chunkSize);
    return this.#retry(BackendErrorCode.Read, `reading ${label}`, async (signal) => {
      this.counters.gets++;
      const object = await this.#store.getRange!(key, start, end, signal);
      if (!object) return null;
      this.counters.bytesDownloaded += object.body.byteLength;
      const sums = object.metadata[segmentMd5MetadataKey];
      const [size, hex] = sums?.split(':') ?? [];
      if (Number(size) !== segment || hex === undefined || object.body.byteLength !== end - start)
        return 'unverifiable';
      for (let at = start; at < end; at += segment) {
        const expected = hex.slice((at / segment) * 32, (at / segment + 1) * 32);
        const actual = md5(object.body.subarray(at - start, at - start + segment)).toString('hex');
        if (actual !== expected) {
          this.counters.integrityFailures++;
          throw new StoreError(`${label} failed its MD5 check (segment at ${at})`, true, 'transient');
        }
      }
      return object.body.subarray(from - start, to - start);
    });
  }

  deleteChunk(index: number): Promise<void> {
    return this.deleteObject(chunkKey(this.location.prefix, index), `chunk ${index}`);
  }

  deleteObject(key: string, label: string): Promise<void> {
    return this.#retry(BackendErrorCode.Write, `deleting ${label}`, async (signal) => {
      this.beforeWrite?.();
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

  /** The lease object: its record and ETag, or null when there is none. */
  async readLeaseObject(): Promise<{ info: LeaseInfo; etag: string | undefined } | null> {
    const key = `${this.location.prefix}${leaseName}`;
    const object = await this.#retry(BackendErrorCode.Open, 'reading the lease', (signal) =>
      this.#store.get(key, signal),
    );
    if (!object) return null;
    return { info: parseLease(object.body), etag: object.etag };
  }

  /** The current lease holder, or null. */
  async readLease(): Promise<LeaseInfo | null> {
    return (await this.readLeaseObject())?.info ?? null;
  }

  /**
   * Writes the lease object conditionally: `createOnly` (none exists) or `ifMatch` (it is still the
   * one with that ETag). With `signal`: one attempt (the renewal decides itself what to do next);
   * without: retried per the policy. Resolves with the new ETag; a failed condition rejects with an
   * error that {@link isPrecondition} recognises.
   */
  async writeLeaseObject(
    info: LeaseInfo,
    condition: { createOnly: true } | { ifMatch: string },
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const key = `${this.location.prefix}${leaseName}`;
    const body = Buffer.from(`${JSON.stringify(info)}\n`);
    const put = async (attemptSignal: AbortSignal) => {
      // A control object, not data: `puts` counts chunk uploads only (renewals would make it drift).
      this.counters.controlRequests++;
      const result = await this.#store.put(
        key,
        body,
        { ...condition, contentType: 'application/json' },
        attemptSignal,
      );
      return result.etag;
    };
    if (signal) return put(signal);
    return this.#retry(BackendErrorCode.Open, 'writing the lease', put);
  }

  /** Deletes the lease object. */
  async deleteLeaseObject(): Promise<void> {
    const key = `${this.location.prefix}${leaseName}`;
    await this.#retry(BackendErrorCode.Write, 'releasing the lease', (signal) =>
      this.#store.delete(key, signal),
    );
  }

  /**
   * Deletes the volume's own objects (see `isVolumeObjectKey`): never another volume's, even one an
   * older version let be created under this prefix. Returns how many were deleted.
   */
  async deleteVolumeObjects(): Promise<number> {
    const objects = (await this.listAll(this.location.prefix)).filter((o) =>
      isVolumeObjectKey(this.location.prefix, o.key),
    );
    // Chunks first, the description and the lease last: an interrupted delete still looks like a volume.
    const last = new Set([`${this.location.prefix}${metadataName}`, `${this.location.prefix}${leaseName}`]);
    await this.deleteKeys(objects.filter((o) => !last.has(o.key)).map((o) => o.key));
    await this.deleteKeys(objects.filter((o) => last.has(o.key)).map((o) => o.key));
    return objects.length;
  }

  /**
   * Refuses (`TCMU_ERR_BACKEND_OPEN`) to create a volume inside another (an enclosing prefix holds a
   * volume description) or around one (a description somewhere below this prefix): volumes never
   * nest, so deleting one never touches another. Two creates racing at nested prefixes are not
   * caught; the check is for mistakes, not for adversaries.
   */
  async checkNotNested(): Promise<void> {
    const prefix = this.location.prefix;
    const outer = await Promise.all(
      enclosingPrefixes(prefix).map(async (p) => {
        const key = `${p}${metadataName}`;
        const found = await this.#retry(BackendErrorCode.Open, 'looking for an enclosing volume', (signal) =>
          this.#store.head(key, signal),
        );
        return found ? p : undefined;
      }),
    );
    const enclosing = outer.find((p) => p !== undefined);
    if (enclosing !== undefined) {
      throw new BackendError(
        BackendErrorCode.Open,
        `${this.#where}: this is inside the volume ${formatS3Url({ bucket: this.location.bucket, prefix: enclosing })}; volumes cannot nest (choose a prefix outside it)`,
      );
    }
    const inner = (await this.listAll(prefix)).find(
      (o) => o.key.endsWith(`/${metadataName}`) && o.key !== `${prefix}${metadataName}`,
    );
    if (inner) {
      const innerPrefix = inner.key.slice(0, -metadataName.length);
      throw new BackendError(
        BackendErrorCode.Open,
        `${this.#where}: the volume ${formatS3Url({ bucket: this.location.bucket, prefix: innerPrefix })} lies inside this prefix; volumes cannot nest (choose another prefix)`,
      );
    }
  }

  /**
   * The same bucket and connection at another prefix (for a clone's origin); never close it. It
   * follows this store's setup mode (fail fast while opening, wait for the server while serving).
   */
  sibling(prefix: string): VolumeStore {
    const other = new VolumeStore(this.#store, { ...this.location, prefix }, this.#policy, this.#hooks);
    other.#modeOf = this.#modeOf ?? this;
    return other;
  }

  close(): void {
    this.#store.close();
  }
}

function parseLease(body: Uint8Array): LeaseInfo {
  try {
    const value = JSON.parse(Buffer.from(body).toString('utf8')) as Partial<LeaseInfo>;
    return {
      id: String(value.id ?? ''),
      host: String(value.host ?? '?'),
      pid: Number(value.pid ?? 0),
      since: String(value.since ?? '?'),
      ...(typeof value.renewed === 'string' ? { renewed: value.renewed } : {}),
      ...(typeof value.duration === 'number' ? { duration: value.duration } : {}),
      ...(typeof value.serial === 'number' ? { serial: value.serial } : {}),
      ...(typeof value.bootId === 'string' ? { bootId: value.bootId } : {}),
      ...(typeof value.processStart === 'number' ? { processStart: value.processStart } : {}),
    };
  } catch {
    return { id: '', host: '?', pid: 0, since: '?' };
  }
}

/** Whether a failure (raw, retried or wrapped) is a failed condition (HTTP 412). */
export function isPrecondition(error: unknown): boolean {
  if (error instanceof StoreError) return error.kind === 'precondition';
  const cause = (error as { cause?: unknown })?.cause;
  const store = cause instanceof RetriesExhaustedError ? cause.last : cause;
  return store instanceof StoreError && store.kind === 'precondition';
}
