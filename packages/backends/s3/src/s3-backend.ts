import { randomUUID } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { type AllocationExtent, type Backend, BackendError, BackendErrorCode } from '@tcmu/backend';
import {
  type CachedChunkStore,
  type WriteBackBackend,
  withChunkCache,
  withReadAhead,
  withWriteBack,
} from '@tcmu/backend/filters';
import { ChunkCodec, loadKey } from './chunk-codec.ts';
import { openChunkSpace } from './chunk-space.ts';
import { openObjectStore } from './http-object-store.ts';
import {
  checkChunkSize,
  checkVolumeSize,
  defaultChunkSize,
  formatName,
  formatVersion,
  type VolumeMetadata,
} from './layout.ts';
import { defaultLeaseDuration, type LeaseEvents, WriterLease } from './lease.ts';
import type { ObjectStore } from './object-store.ts';
import { defaultRetryPolicy, type RetryNotice, type RetryPolicy } from './retry.ts';
import { S3ChunkStore } from './s3-chunk-store.ts';
import { ControlPoller } from './snapshot.ts';
import { StatsFileWriter } from './stats-file.ts';
import { normalizeLocation, type S3Location } from './url.ts';
import {
  type CompressionName,
  checkCompression,
  featuresFormatVersion,
  needsVersion2,
  type SnapshotInfo,
  splitSnapshotPrefix,
} from './volume-features.ts';
import { type RequestCounters, toBackendError, VolumeStore } from './volume-store.ts';
import { WriteJournal } from './write-journal.ts';

/** Options of {@link openS3Backend}. Sizes in bytes, times in milliseconds. */
export interface S3BackendOptions extends S3Location, LeaseEvents {
  /**
   * Capacity. When the prefix holds no volume yet, one of this size is created (unless `create` is
   * false); when it holds one, it must have this size (`TCMU_ERR_BACKEND_SIZE_MISMATCH` otherwise).
   * Absent: open an existing volume with its stored size.
   */
  readonly size?: number;
  /** Chunk (object) size for a new volume, a power of two from 4 KiB to 64 MiB; checked against an existing one. Default 1 MiB. */
  readonly chunkSize?: number;
  /** Logical block size for a new volume (512 or 4096); checked against an existing one. Default 512. */
  readonly blockSize?: number;
  /** Create the volume when missing (needs `size`). Default true. */
  readonly create?: boolean;
  /** Open without the lease; every mutating call rejects with `TCMU_ERR_BACKEND_READ_ONLY`. */
  readonly readOnly?: boolean;
  /** Take the lease even when another holder is recorded and not expired (`--force-lease`: only when it is known to be gone). */
  readonly force?: boolean;
  /**
   * Lease duration in ms (default 30 000, at least 1000). The writer renews it every third of that; a
   * writer that could not renew stops acknowledging writes and flushes a fifth of it before it ends;
   * another process takes an expired lease after watching it unchanged for this long.
   */
  readonly leaseDuration?: number;
  /** Cancels opening (retries, a wait for an expiring lease): the open rejects at once. */
  readonly signal?: AbortSignal;
  /** Called before each retried request (never with credentials). */
  readonly onRetry?: (retry: RetryNotice) => void;
  /** Memory for cached chunks, clean and dirty. Default 64 MiB; at least 4 chunks. */
  readonly cacheSize?: number;
  /** Dirty bytes allowed before writes wait for uploads. Default half of `cacheSize`; at least 1 chunk. */
  readonly dirtyLimit?: number;
  /** A dirty chunk is uploaded in the background this long after it was first modified. Default 200. */
  readonly writeBackDelay?: number;
  /** Bytes to read ahead of a sequential reader. Default 8 MiB; 0 disables. */
  readonly readAhead?: number;
  /** Requests in flight at once (GET, PUT, DELETE). Default 16. */
  readonly maxRequests?: number;
  /** Retry policy; see {@link RetryPolicy}. Defaults: 50 ms base, 2 s cap, 30 s per attempt, 60 s total. */
  readonly retry?: Partial<RetryPolicy>;
  /** An S3 client to use (its credentials, region and endpoint then win). */
  readonly client?: S3Client;
  /** The object store to use instead of S3: e.g. `MemoryObjectStore` from `@tcmu/backend-s3/testing`, or a wrapper that injects faults. */
  readonly store?: ObjectStore;
  /** Open this snapshot (read-only; needs `readOnly`). Also written as the prefix `vol@NAME`. */
  readonly snapshot?: string;
  /** Chunk compression of a NEW volume: `deflate` (skipped per chunk when it does not shrink it) or `none` (default). */
  readonly compression?: CompressionName;
  /** The 32-byte AES-256-GCM key: required to open an encrypted volume; given at creation, encrypts the new volume. */
  readonly encryptionKey?: Uint8Array;
  /** A file holding the key (32 raw bytes, 64 hex digits or base64). */
  readonly keyFile?: string;
  /** The NAME of an environment variable holding the key (64 hex digits or base64). */
  readonly keyEnv?: string;
  /** Write {@link S3Backend.stats} as JSON to this file every `statsInterval` ms and at close. */
  readonly statsFile?: string;
  /** Default 1000. */
  readonly statsInterval?: number;
  /**
   * Crash-safe cache: a local file where every write is made durable before it is acknowledged;
   * after a crash (kill -9) the next open with the same file replays and uploads it. Costs an
   * fdatasync per write.
   */
  readonly cacheFile?: string;
  /** How often a read-write open looks for requests (a snapshot asked by `tcmu volume snapshot`). Default 1000; 0: never. */
  readonly controlInterval?: number;
}

/** What {@link S3Backend.stats} reports. */
export interface S3BackendStats extends Readonly<RequestCounters> {
  /** Chunk reads served from memory. */
  readonly cacheHits: number;
  /** Chunk reads that had to start a GET. */
  readonly cacheMisses: number;
  /** Chunk reads that joined a GET already in flight (read-ahead, or another reader). */
  readonly cacheWaits: number;
  readonly cachedBytes: number;
  readonly dirtyChunks: number;
  readonly storedChunks: number;
  readonly uploadsInFlight: number;
  /** The generation new chunk writes go to (bumped by each snapshot). */
  readonly generation: number;
  /** Bytes in the crash-safe cache file (0 without one). */
  readonly cacheFileBytes: number;
  /** Writes replayed from the cache file at open (left by a crash). */
  readonly recoveredWrites: number;
}

/**
 * A volume on S3, opened: the S3 chunk store under the chunk filters of `@tcmu/backend/filters`,
 * `withWriteBack(withReadAhead(withChunkCache(S3ChunkStore)))`, plus what only S3 has (snapshots,
 * the stats file, the crash-safe cache file, the lease's part in close). Implements the whole
 * `Backend` contract (flush, unmap, writeZeroes, compareAndWrite, getAllocation, resize, close).
 * Obtain one with {@link openS3Backend}.
 *
 * Concurrency: any number of calls in flight; chunks are fetched and uploaded in parallel up to
 * `maxRequests`; concurrent reads of one uncached chunk share one GET.
 */
export class S3Backend implements Backend {
  readonly persistent = true;
  readonly readOnly: boolean;
  readonly blockSize: number;
  /** Chunk (object) size in bytes: also the unmap granularity. */
  readonly chunkSize: number;
  readonly unmapGranularity: number;
  readonly concurrencyLimit: number;
  readonly location: S3Location;
  /** True when this open created the volume (so a caller that fails to start can delete it again). */
  readonly created: boolean;

  readonly #chunks: S3ChunkStore;
  readonly #cache: CachedChunkStore;
  readonly #writeBack: WriteBackBackend;
  readonly #background: { stop(): Promise<void> }[];
  #journal: WriteJournal | undefined;
  #recoveredWrites = 0;

  /** @internal Use {@link openS3Backend}. */
  constructor(init: {
    chunks: S3ChunkStore;
    location: S3Location;
    blockSize: number;
    background: { stop(): Promise<void> }[];
    readOnly: boolean;
    cacheSize: number;
    dirtyLimit: number;
    writeBackDelay: number;
    readAhead: number;
    maxRequests: number;
    created: boolean;
  }) {
    const chunks = init.chunks;
    const cs = chunks.chunkSize;
    this.#chunks = chunks;
    this.created = init.created;
    this.#background = init.background;
    this.location = init.location;
    this.chunkSize = cs;
    this.unmapGranularity = cs;
    this.blockSize = init.blockSize;
    this.readOnly = init.readOnly;
    this.concurrencyLimit = init.maxRequests * 4;
    // One memory budget, `cacheSize`: clean chunks get what the write-back's held chunks leave, and
    // read-ahead fills at most half of what dirty chunks leave.
    const held = () => this.#writeBack?.writeBackStats() ?? { heldBytes: 0, dirtyChunks: 0 };
    this.#cache = withChunkCache(chunks, { maxBytes: () => init.cacheSize - held().heldBytes });
    const readAheadChunks = Math.floor(init.readAhead / cs);
    const ahead = withReadAhead(this.#cache, {
      chunks: () =>
        Math.min(readAheadChunks, Math.floor((init.cacheSize - held().dirtyChunks * cs) / cs / 2)),
    });
    this.#writeBack = withWriteBack(ahead, {
      name: chunks.where,
      readOnly: init.readOnly,
      blockSize: init.blockSize,
      concurrencyLimit: this.concurrencyLimit,
      persistent: true,
      dirtyLimit: init.dirtyLimit,
      writeBackDelay: init.writeBackDelay,
      maxUploads: Math.max(1, Math.ceil((init.maxRequests * 3) / 4)),
      ...(chunks.fence ? { fence: chunks.fence } : {}),
      mapError: (error, fallback) => toBackendError(error, fallback, chunks.where),
    });
  }

  get size(): number {
    return this.#chunks.size;
  }

  /**
   * True with a cache file (`cacheFile`): every write is journaled before it resolves, and the next
   * open replays it. Without one, writes not yet uploaded live only in this process's memory.
   */
  get writesSurviveCrash(): boolean {
    return this.#journal !== undefined;
  }

  /** Request and cache counters (no credentials, no data). */
  stats(): S3BackendStats {
    const writeBack = this.#writeBack.writeBackStats();
    const cache = this.#cache.cacheStats();
    return {
      ...this.#chunks.counters,
      cacheHits: writeBack.hits + cache.hits,
      cacheMisses: cache.misses,
      cacheWaits: cache.waits,
      cachedBytes: cache.bytes + writeBack.heldBytes,
      dirtyChunks: writeBack.dirtyChunks,
      storedChunks: this.#chunks.storedChunks,
      uploadsInFlight: writeBack.uploadsInFlight,
      generation: this.#chunks.generation,
      cacheFileBytes: this.#journal?.size ?? 0,
      recoveredWrites: this.#recoveredWrites,
    };
  }

  /** @internal Used by openS3Backend once a crash's writes are replayed: from now on every write is journaled. */
  attachJournal(journal: WriteJournal, recovered: number): void {
    this.#journal = journal;
    this.#recoveredWrites = recovered;
    journal.setDirtySource(() => this.#writeBack.dirtyRecords());
    this.#writeBack.attachJournal(journal);
  }

  /**
   * Takes snapshot `name` of the volume as it is now: new writes wait, every acknowledged write is
   * stored, the current generation is frozen in the description, and writes resume in the next
   * generation. No data is copied. `tcmu volume snapshot` reaches a serving process through this.
   */
  snapshot(name: string): Promise<SnapshotInfo> {
    if (this.readOnly) {
      return Promise.reject(
        new BackendError(BackendErrorCode.ReadOnly, `${this.#chunks.where} is open read-only`),
      );
    }
    return this.#writeBack.barrier(() => this.#chunks.snapshot(name));
  }

  // ---- the contract: the write-back serves it ---------------------------------------------------

  read(offset: number, length: number, into: readonly Uint8Array[]): Promise<void> {
    return this.#writeBack.read(offset, length, into);
  }

  write(offset: number, data: readonly Uint8Array[]): Promise<void> {
    return this.#writeBack.write(offset, data);
  }

  flush(): Promise<void> {
    return this.#writeBack.flush();
  }

  unmap(offset: number, length: number): Promise<void> {
    return this.#writeBack.unmap(offset, length);
  }

  writeZeroes(offset: number, length: number): Promise<void> {
    return this.#writeBack.writeZeroes(offset, length);
  }

  compareAndWrite(
    offset: number,
    expected: readonly Uint8Array[],
    data: readonly Uint8Array[],
  ): Promise<void> {
    return this.#writeBack.compareAndWrite(offset, expected, data);
  }

  getAllocation(offset: number, length: number): Promise<readonly AllocationExtent[]> {
    return this.#writeBack.getAllocation(offset, length);
  }

  resize(size: number): Promise<void> {
    try {
      if (this.readOnly)
        throw new BackendError(BackendErrorCode.ReadOnly, `${this.#chunks.where} is open read-only`);
      checkVolumeSize(size, this.blockSize);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#writeBack.resize!(size);
  }

  /**
   * Waits for the calls in flight, stops the background tasks, stores every write and gives the
   * lease back. A writer whose lease is lost stores nothing more and rejects with the lease's error.
   */
  close(): Promise<void> {
    return this.#writeBack.shutdown(async (flush) => {
      try {
        for (const task of this.#background.splice(0)) await task.stop();
        const lost = this.#chunks.leaseLost;
        if (lost) throw lost;
        if (this.readOnly) return;
        try {
          await flush();
        } catch (error) {
          throw toBackendError(
            error,
            BackendErrorCode.Write,
            `${this.#chunks.where}: close could not store every write (the lease is kept)`,
          );
        }
        if (this.#journal) await this.#journal.checkpoint();
        await this.#chunks.releaseLease();
      } finally {
        // Renewals stop whatever happened; a lease not released expires by itself.
        await this.#journal?.close().catch(() => {});
        await this.#cache.close?.();
      }
    });
  }
}

/**
 * Opens (and if needed creates) the volume at `options.bucket`/`options.prefix`.
 *
 * Read-write opens take the volume's lease first: a second read-write open anywhere fails with
 * `TCMU_ERR_BACKEND_LOCKED` until the first closes (or `force` breaks a stale lease). Then the
 * geometry is read (or written, for a new volume) and the stored chunks are listed.
 *
 * Errors: `TCMU_ERR_BACKEND_NOT_FOUND` (no bucket, or no volume and no size), `_SIZE_MISMATCH`,
 * `_OPEN` (other geometry or format), `_LOCKED`, `_PERMISSION` (credentials refused),
 * `_INVALID_ARGUMENT` (bad options).
 */
export async function openS3Backend(options: S3BackendOptions): Promise<S3Backend> {
  const named = splitSnapshotPrefix(options.prefix);
  const snapshot = options.snapshot ?? named.snapshot;
  if (snapshot !== undefined && options.readOnly !== true) {
    throw new BackendError(
      BackendErrorCode.ReadOnly,
      `snapshot "${snapshot}" is read-only: open it read-only (tcmu serve … --read-only), or clone it to write`,
    );
  }
  const key =
    options.encryptionKey ??
    loadKey({
      ...(options.keyFile === undefined ? {} : { keyFile: options.keyFile }),
      ...(options.keyEnv === undefined ? {} : { keyEnv: options.keyEnv }),
    });
  checkCompression(options.compression);
  const location = normalizeLocation({
    bucket: options.bucket,
    prefix: named.prefix,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.region ? { region: options.region } : {}),
  });
  if (options.chunkSize !== undefined) checkChunkSize(options.chunkSize);
  const blockSize = options.blockSize ?? 512;
  if (blockSize !== 512 && blockSize !== 4096) {
    throw new BackendError(BackendErrorCode.InvalidArgument, `block size ${blockSize} must be 512 or 4096`);
  }
  if (options.size !== undefined) checkVolumeSize(options.size, blockSize);
  const maxRequests = options.maxRequests ?? 16;
  if (!Number.isSafeInteger(maxRequests) || maxRequests < 1) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `maxRequests ${maxRequests} must be a positive integer`,
    );
  }
  const policy: RetryPolicy = { ...defaultRetryPolicy, ...options.retry };
  const store =
    options.store ??
    openObjectStore(location, {
      maxSockets: maxRequests + 4,
      ...(options.client ? { client: options.client } : {}),
    });
  const volume = new VolumeStore(
    store,
    location,
    policy,
    options.onRetry ? { onRetry: options.onRetry } : {},
  );
  volume.setup = options.signal ? { signal: options.signal } : {};
  const readOnly = options.readOnly === true;
  let lease: WriterLease | undefined;
  let created = false;
  try {
    if (!readOnly) {
      lease = await WriterLease.acquire(volume, {
        duration: options.leaseDuration ?? defaultLeaseDuration,
        force: options.force === true,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.onLeaseEvent ? { onLeaseEvent: options.onLeaseEvent.bind(options) } : {}),
      });
      const held = lease;
      volume.beforeWrite = () => held.check();
    }
    let metadata = await volume.readMetadata();
    if (!metadata) {
      if (options.size === undefined || options.create === false || readOnly) {
        throw new BackendError(
          BackendErrorCode.NotFound,
          `${volume.where}: no volume there${readOnly || options.create === false ? '' : '; give a size to create one'}`,
        );
      }
      metadata = newVolumeMetadata({
        size: options.size,
        chunkSize: options.chunkSize ?? defaultChunkSize,
        blockSize,
        ...(options.compression === undefined ? {} : { compression: options.compression }),
        ...(key === undefined ? {} : { key }),
      });
      await volume.checkNotNested();
      await volume.writeMetadata(metadata, true);
      created = true;
    } else {
      if (options.size !== undefined && options.size !== metadata.size) {
        throw new BackendError(
          BackendErrorCode.SizeMismatch,
          `${volume.where}: the volume holds ${metadata.size} bytes, not the ${options.size} asked for (resize it, or open without a size)`,
        );
      }
      if (options.chunkSize !== undefined && options.chunkSize !== metadata.chunkSize) {
        throw new BackendError(
          BackendErrorCode.Open,
          `${volume.where}: the volume was created with ${metadata.chunkSize}-byte chunks, not ${options.chunkSize}; a volume's chunk size cannot change`,
        );
      }
      if (options.blockSize !== undefined && options.blockSize !== metadata.blockSize) {
        throw new BackendError(
          BackendErrorCode.Open,
          `${volume.where}: the volume was created with ${metadata.blockSize}-byte blocks, not ${options.blockSize}`,
        );
      }
    }
    // A snapshot has the size the volume had when it was taken.
    const snapshotSize = metadata.snapshots?.find((s) => s.name === snapshot)?.size;
    if (snapshot !== undefined && snapshotSize !== undefined) metadata = { ...metadata, size: snapshotSize };
    const chunkCount = Math.ceil(metadata.size / metadata.chunkSize);
    const space = await openChunkSpace(volume, metadata, {
      ...(snapshot === undefined ? {} : { snapshot }),
      ...(key === undefined ? {} : { key }),
    });
    const stored = space.stored(chunkCount);
    const background: { stop(): Promise<void> }[] = [];
    const cacheSize = Math.max(options.cacheSize ?? 64 * 1024 * 1024, 4 * metadata.chunkSize);
    const dirtyLimit = Math.min(
      cacheSize,
      Math.max(options.dirtyLimit ?? Math.floor(cacheSize / 2), metadata.chunkSize),
    );
    // Serving from here on: an unreachable server is waited for (a restart), not a reason to fail.
    volume.setup = undefined;
    const chunks = new S3ChunkStore({ volume, space, metadata, stored, lease, maxRequests });
    const backend = new S3Backend({
      chunks,
      location: volume.location,
      blockSize: metadata.blockSize,
      background,
      readOnly,
      cacheSize,
      dirtyLimit,
      writeBackDelay: options.writeBackDelay ?? 200,
      readAhead: options.readAhead ?? 8 * 1024 * 1024,
      maxRequests,
      created,
    });
    if (options.cacheFile !== undefined) {
      if (readOnly) {
        throw new BackendError(BackendErrorCode.InvalidArgument, 'a cache file is for read-write opens only');
      }
      const identity = `s3://${location.bucket}/${location.prefix} created ${metadata.created}`;
      const { journal, records } = await WriteJournal.open(
        options.cacheFile,
        identity,
        Math.max(64 * 1024 * 1024, 2 * cacheSize),
      );
      try {
        for (const record of records) {
          const length = Math.min(record.length, backend.size - record.offset);
          if (length <= 0) continue;
          if (record.kind === 'write') await backend.write(record.offset, [record.data!.subarray(0, length)]);
          else await backend.writeZeroes(record.offset, length);
        }
        await backend.flush();
        await journal.checkpoint();
      } catch (error) {
        await journal.close().catch(() => {});
        throw error;
      }
      backend.attachJournal(journal, records.length);
    }
    if (!readOnly) {
      const poller = new ControlPoller(volume, options.controlInterval ?? 1000, (request) =>
        backend.snapshot(request.name),
      );
      poller.start();
      background.push(poller);
    }
    if (options.statsFile !== undefined) {
      const writer = new StatsFileWriter(options.statsFile, options.statsInterval ?? 1000, () =>
        backend.stats(),
      );
      writer.start();
      background.push(writer);
    }
    return backend;
  } catch (error) {
    // A volume this call created is removed again: a failed open leaves nothing behind.
    if (created) await volume.deleteVolumeObjects().catch(() => {});
    if (lease) await lease.release().catch(() => {});
    volume.close();
    throw toBackendError(error, BackendErrorCode.Open, volume.where);
  }
}

/** The description of a new volume: format 1 unless it uses a format-2 feature (compression, encryption). */
export function newVolumeMetadata(init: {
  size: number;
  chunkSize: number;
  blockSize: number;
  compression?: CompressionName;
  key?: Uint8Array;
}): VolumeMetadata {
  const base: VolumeMetadata = {
    format: formatName,
    version: formatVersion,
    size: init.size,
    chunkSize: init.chunkSize,
    blockSize: init.blockSize,
    created: new Date().toISOString(),
  };
  const features = {
    ...(init.compression && init.compression !== 'none' ? { compression: init.compression } : {}),
    ...(init.key
      ? { encryption: new ChunkCodec({ compression: 'none', key: init.key }).makeEncryptionInfo() }
      : {}),
  };
  if (!needsVersion2(features)) return base;
  return {
    ...base,
    version: featuresFormatVersion,
    volumeId: randomUUID(),
    generation: 0,
    snapshots: [],
    ...features,
  };
}
