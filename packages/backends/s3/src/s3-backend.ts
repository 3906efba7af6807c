import { randomUUID } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  type AllocationExtent,
  type Backend,
  BackendError,
  BackendErrorCode,
  checkRange,
  firstDifference,
  isAllZero,
  scatterCopyFrom,
  scatterCopyTo,
  scatterLength,
  scatterZero,
} from '@tcmu/backend';
import { ChunkCodec, loadKey } from './chunk-codec.ts';
import { type ChunkSpace, openChunkSpace } from './chunk-space.ts';
import {
  checkChunkSize,
  checkVolumeSize,
  defaultChunkSize,
  formatName,
  formatVersion,
  type VolumeMetadata,
} from './layout.ts';
import { defaultLeaseDuration, type LeaseEvents, WriterLease } from './lease.ts';
import { type ObjectStore, S3ObjectStore } from './object-store.ts';
import { defaultRetryPolicy, type RetryNotice, type RetryPolicy } from './retry.ts';
import { Semaphore } from './semaphore.ts';
import { ControlPoller, withSnapshot } from './snapshot.ts';
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
import { type JournalRecord, WriteJournal } from './write-journal.ts';

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

interface Chunk {
  readonly index: number;
  /** The chunk's bytes; null means all zeros (no buffer). */
  data: Uint8Array | null;
  /** Bumped on every modification. */
  version: number;
  /** The version the server holds (uploaded or loaded). */
  uploadedVersion: number;
  /** The current `data` buffer is being uploaded: a writer copies it first (copy on write). */
  frozen: boolean;
  /** Operations holding this chunk across an await (not evictable). */
  pins: number;
  uploading: Promise<void> | null;
  /** When it became dirty (ms). */
  dirtySince: number;
  /** Upload without waiting for the write-back delay. */
  urgent: boolean;
  /** The last upload failure, until an upload succeeds. */
  lastError: BackendError | undefined;
  /**
   * Null: `data` is the whole chunk. Otherwise the chunk is stored but was written before it was
   * fetched: only these (sorted, disjoint, chunk-relative) byte ranges of `data` are known, the rest
   * comes from the server when first needed (a read there, an upload, compareAndWrite).
   */
  valid: [number, number][] | null;
  /** The GET that fills in a partial chunk, shared. */
  completing: Promise<void> | null;
}

const closedError = () => new BackendError(BackendErrorCode.Closed, 'the S3 backend is closed');

/**
 * A volume on S3, opened. Implements the whole `Backend` contract (flush, unmap, writeZeroes,
 * compareAndWrite, getAllocation, resize, close). Obtain one with {@link openS3Backend}.
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

  #size: number;
  readonly #volume: VolumeStore;
  readonly #space: ChunkSpace;
  readonly #background: { stop(): Promise<void> }[];
  /** Set while a snapshot is taken: mutating calls wait for it. */
  #freeze: Promise<void> | undefined;
  #writers = 0;
  #journal: WriteJournal | undefined;
  #recoveredWrites = 0;
  readonly #lease: WriterLease | undefined;
  #metadata: VolumeMetadata;
  readonly #cacheSize: number;
  readonly #dirtyLimit: number;
  readonly #writeBackDelay: number;
  readonly #readAheadChunks: number;
  readonly #maxUploads: number;
  readonly #requests: Semaphore;
  readonly #zeros: Buffer;

  /** Cached chunks in LRU order (oldest first). */
  readonly #chunks = new Map<number, Chunk>();
  /** Dirty chunks in the order they became dirty. */
  readonly #dirty = new Map<number, Chunk>();
  /** GETs in flight, shared by every reader of that chunk. */
  readonly #loads = new Map<number, Promise<void>>();
  /** Chunks that have an object on the server. */
  readonly #stored: Set<number>;
  #cachedBytes = 0;
  #uploadsInFlight = 0;
  #writeBackError: BackendError | undefined;
  #progressWaiters: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;
  #evictScheduled = false;
  #lastReadEnd = -1;
  #cacheHits = 0;
  #cacheMisses = 0;
  #cacheWaits = 0;
  #active = 0;
  #idleWaiters: (() => void)[] = [];
  #closing: Promise<void> | undefined;

  /** @internal Use {@link openS3Backend}. */
  constructor(init: {
    volume: VolumeStore;
    space: ChunkSpace;
    background: { stop(): Promise<void> }[];
    metadata: VolumeMetadata;
    stored: Set<number>;
    lease: WriterLease | undefined;
    readOnly: boolean;
    cacheSize: number;
    dirtyLimit: number;
    writeBackDelay: number;
    readAhead: number;
    maxRequests: number;
    created: boolean;
  }) {
    this.#volume = init.volume;
    this.created = init.created;
    this.#space = init.space;
    this.#background = init.background;
    this.location = init.volume.location;
    this.#metadata = init.metadata;
    this.#size = init.metadata.size;
    this.chunkSize = init.metadata.chunkSize;
    this.unmapGranularity = init.metadata.chunkSize;
    this.blockSize = init.metadata.blockSize;
    this.#stored = init.stored;
    this.#lease = init.lease;
    this.readOnly = init.readOnly;
    this.#cacheSize = init.cacheSize;
    this.#dirtyLimit = init.dirtyLimit;
    this.#writeBackDelay = init.writeBackDelay;
    this.#readAheadChunks = Math.floor(init.readAhead / this.chunkSize);
    this.#requests = new Semaphore(init.maxRequests);
    this.#maxUploads = Math.max(1, Math.ceil((init.maxRequests * 3) / 4));
    this.concurrencyLimit = init.maxRequests * 4;
    this.#zeros = Buffer.alloc(this.chunkSize);
  }

  get size(): number {
    return this.#size;
  }

  /** Request and cache counters (no credentials, no data). */
  stats(): S3BackendStats {
    return {
      ...this.#volume.counters,
      cacheHits: this.#cacheHits,
      cacheMisses: this.#cacheMisses,
      cacheWaits: this.#cacheWaits,
      cachedBytes: this.#cachedBytes,
      dirtyChunks: this.#dirty.size,
      storedChunks: this.#stored.size,
      uploadsInFlight: this.#uploadsInFlight,
      generation: this.#space.generation,
      cacheFileBytes: this.#journal?.size ?? 0,
      recoveredWrites: this.#recoveredWrites,
    };
  }

  /** @internal Used by openS3Backend once a crash's writes are replayed: from now on every write is journaled. */
  attachJournal(journal: WriteJournal, recovered: number): void {
    this.#journal = journal;
    this.#recoveredWrites = recovered;
    journal.setDirtySource(() => this.#dirtyRecords());
  }

  /** Records that rebuild every dirty chunk (for the journal's compaction). */
  #dirtyRecords(): JournalRecord[] {
    const records: JournalRecord[] = [];
    const cs = this.chunkSize;
    for (const chunk of this.#dirty.values()) {
      const base = chunk.index * cs;
      const end = Math.min(cs, this.#size - base);
      if (end <= 0) continue;
      if (chunk.data === null) records.push({ kind: 'zeroes', offset: base, length: end });
      else if (!chunk.valid)
        records.push({ kind: 'write', offset: base, length: end, data: chunk.data.slice(0, end) });
      else
        for (const [a, b] of chunk.valid) {
          if (a < end)
            records.push({
              kind: 'write',
              offset: base + a,
              length: Math.min(b, end) - a,
              data: chunk.data.slice(a, Math.min(b, end)),
            });
        }
    }
    return records;
  }

  /**
   * Takes snapshot `name` of the volume as it is now: new writes wait, every acknowledged write is
   * stored, the current generation is frozen in the description, and writes resume in the next
   * generation. No data is copied. `tcmu volume snapshot` reaches a serving process through this.
   */
  snapshot(name: string): Promise<SnapshotInfo> {
    return this.#guard(false, async () => {
      if (this.readOnly) {
        throw new BackendError(BackendErrorCode.ReadOnly, `${this.#volume.where} is open read-only`);
      }
      while (this.#freeze) await this.#freeze;
      let release!: () => void;
      this.#freeze = new Promise<void>((resolve) => {
        release = resolve;
      });
      try {
        while (this.#writers > 0) await new Promise((resolve) => setTimeout(resolve, 1));
        await this.#flushAll();
        // The description is changed only while the lease holds (as every write is).
        this.#lease?.check();
        const next = withSnapshot(this.#metadata, name, this.#volume.where);
        await this.#volume.writeMetadata(next, false);
        this.#metadata = next;
        this.#space.advance(next.generation ?? 0, next.snapshots ?? []);
        return next.snapshots!.at(-1)!;
      } finally {
        this.#freeze = undefined;
        release();
      }
    });
  }

  // ---- call bookkeeping ------------------------------------------------------------------------

  #enter(mutating: boolean): void {
    if (this.#closing) throw closedError();
    if (mutating && this.readOnly) {
      throw new BackendError(BackendErrorCode.ReadOnly, `${this.#volume.where} is open read-only`);
    }
    if (mutating) this.#lease?.check();
    this.#active++;
    if (mutating) this.#writers++;
  }

  #leave(mutating: boolean): void {
    if (mutating) this.#writers--;
    if (--this.#active === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  async #guard<T>(mutating: boolean, body: () => Promise<T>): Promise<T> {
    if (mutating && this.#freeze) while (this.#freeze) await this.#freeze;
    this.#enter(mutating);
    try {
      const result = await body();
      // A call that waited (dirty limit, a fetch) is acknowledged only while the lease still holds.
      if (mutating) this.#lease?.check();
      return result;
    } catch (error) {
      throw toBackendError(
        error,
        mutating ? BackendErrorCode.Write : BackendErrorCode.Read,
        this.#volume.where,
      );
    } finally {
      this.#leave(mutating);
    }
  }

  // ---- the contract ----------------------------------------------------------------------------

  read(offset: number, length: number, into: readonly Uint8Array[]): Promise<void> {
    try {
      checkRange('read', offset, length, this.#size);
      if (scatterLength(into) < length) {
        throw new BackendError(
          BackendErrorCode.InvalidArgument,
          `read: the buffers hold ${scatterLength(into)} bytes, fewer than the ${length} asked for`,
        );
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#guard(false, async () => {
      if (length === 0) return;
      const cs = this.chunkSize;
      const first = Math.floor(offset / cs);
      const last = Math.floor((offset + length - 1) / cs);
      const pending: Promise<void>[] = [];
      for (let i = first; i <= last; i++) {
        const from = Math.max(offset, i * cs);
        const to = Math.min(offset + length, (i + 1) * cs);
        const copy = (chunk: Chunk | undefined) => {
          if (chunk?.data)
            scatterCopyFrom(into, from - offset, chunk.data.subarray(from - i * cs, to - i * cs));
          else scatterZero(into, from - offset, to - from);
        };
        const cached = this.#chunks.get(i);
        if (cached && !this.#covers(cached, from - i * cs, to - i * cs)) {
          this.#cacheMisses++;
          this.#touch(cached);
          pending.push(this.#complete(cached).then(() => copy(cached)));
        } else if (cached) {
          this.#cacheHits++;
          this.#touch(cached);
          copy(cached);
        } else if (!this.#stored.has(i) && !this.#loads.has(i)) {
          copy(undefined);
        } else {
          if (this.#loads.has(i)) this.#cacheWaits++;
          else this.#cacheMisses++;
          pending.push(this.#load(i).then(() => copy(this.#chunks.get(i))));
        }
      }
      this.#readAhead(offset, length, last);
      await Promise.all(pending);
    });
  }

  write(offset: number, data: readonly Uint8Array[]): Promise<void> {
    let length: number;
    try {
      length = scatterLength(data);
      checkRange('write', offset, length, this.#size);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#guard(true, async () => {
      if (length === 0) return;
      await this.#admitDirty();
      await this.#forEachChunk(offset, length, async (i, from, to) => {
        const chunk = await this.#acquireForWrite(i, to - from === this.chunkSize, true);
        const buffer = this.#mutable(chunk);
        this.#addValid(chunk, from - i * this.chunkSize, to - i * this.chunkSize);
        scatterCopyTo(
          data,
          from - offset,
          buffer.subarray(from - i * this.chunkSize, to - i * this.chunkSize),
        );
        this.#markDirty(chunk, to === (i + 1) * this.chunkSize);
      });
      if (this.#journal) await this.#journal.append('write', offset, length, data);
    });
  }

  flush(): Promise<void> {
    return this.#guard(false, () => this.#flushAll());
  }

  unmap(offset: number, length: number): Promise<void> {
    try {
      checkRange('unmap', offset, length, this.#size);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#guard(true, async () => {
      await this.#zeroRange(offset, length);
      if (this.#journal && length > 0) await this.#journal.append('zeroes', offset, length);
    });
  }

  writeZeroes(offset: number, length: number): Promise<void> {
    try {
      checkRange('writeZeroes', offset, length, this.#size);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#guard(true, async () => {
      await this.#zeroRange(offset, length);
      if (this.#journal && length > 0) await this.#journal.append('zeroes', offset, length);
    });
  }

  compareAndWrite(
    offset: number,
    expected: readonly Uint8Array[],
    data: readonly Uint8Array[],
  ): Promise<void> {
    let length: number;
    try {
      length = scatterLength(data);
      if (scatterLength(expected) !== length) {
        throw new BackendError(
          BackendErrorCode.InvalidArgument,
          `compareAndWrite: expected holds ${scatterLength(expected)} bytes but data holds ${length}`,
        );
      }
      checkRange('compareAndWrite', offset, length, this.#size);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#guard(true, async () => {
      if (length === 0) return;
      await this.#admitDirty();
      const cs = this.chunkSize;
      const first = Math.floor(offset / cs);
      const last = Math.floor((offset + length - 1) / cs);
      const held: Chunk[] = [];
      try {
        // Hold every chunk, then compare and write without yielding: atomic against every other call.
        for (let i = first; i <= last; i++) {
          const chunk = await this.#acquireForWrite(i, false);
          chunk.pins++;
          held.push(chunk);
        }
        for (const chunk of held) await this.#complete(chunk);
        for (const chunk of held) {
          const i = chunk.index;
          const from = Math.max(offset, i * cs);
          const to = Math.min(offset + length, (i + 1) * cs);
          const current = chunk.data
            ? chunk.data.subarray(from - i * cs, to - i * cs)
            : this.#zeros.subarray(0, to - from);
          const wanted = new Uint8Array(to - from);
          scatterCopyTo(expected, from - offset, wanted);
          const at = firstDifference(current, wanted);
          if (at >= 0) {
            throw new BackendError(
              BackendErrorCode.Miscompare,
              `compareAndWrite: data differs at byte ${from - offset + at}`,
              { offset: from - offset + at },
            );
          }
        }
        for (const chunk of held) {
          const i = chunk.index;
          const from = Math.max(offset, i * cs);
          const to = Math.min(offset + length, (i + 1) * cs);
          scatterCopyTo(data, from - offset, this.#mutable(chunk).subarray(from - i * cs, to - i * cs));
          this.#markDirty(chunk, false);
        }
        if (this.#journal) await this.#journal.append('write', offset, length, data);
      } finally {
        for (const chunk of held) chunk.pins--;
        this.#scheduleEvict();
      }
    });
  }

  getAllocation(offset: number, length: number): Promise<readonly AllocationExtent[]> {
    try {
      checkRange('getAllocation', offset, length, this.#size);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#guard(false, async () => {
      const extents: { offset: number; length: number; state: 'mapped' | 'deallocated' }[] = [];
      if (length === 0) return extents;
      const cs = this.chunkSize;
      const first = Math.floor(offset / cs);
      const last = Math.floor((offset + length - 1) / cs);
      for (let i = first; i <= last; i++) {
        const from = Math.max(offset, i * cs);
        const to = Math.min(offset + length, (i + 1) * cs);
        const cached = this.#dirty.get(i);
        const mapped = cached ? cached.data !== null : this.#stored.has(i);
        const state = mapped ? 'mapped' : 'deallocated';
        const previous = extents[extents.length - 1];
        if (previous && previous.state === state) previous.length += to - from;
        else extents.push({ offset: from, length: to - from, state });
      }
      return extents;
    });
  }

  resize(size: number): Promise<void> {
    try {
      if (this.readOnly)
        throw new BackendError(BackendErrorCode.ReadOnly, `${this.#volume.where} is open read-only`);
      checkVolumeSize(size, this.blockSize);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#guard(true, async () => {
      const cs = this.chunkSize;
      const oldSize = this.#size;
      if (size < oldSize) {
        // Drop the tail before recording the smaller size: a later grow must read zeros there.
        const keep = Math.ceil(size / cs);
        if (size % cs !== 0) await this.#zeroRange(size, Math.min(keep * cs, oldSize) - size);
        for (const [index, chunk] of this.#chunks) {
          if (index >= keep) {
            chunk.data = null;
            chunk.valid = null;
            this.#markDirty(chunk, true);
          }
        }
        for (const index of this.#stored) {
          if (index >= keep && !this.#chunks.has(index)) this.#markDirty(this.#insert(index, null), true);
        }
      }
      await this.#flushAll();
      const metadata = { ...this.#metadata, size };
      await this.#volume.writeMetadata(metadata, false);
      this.#size = size;
      this.#metadata = metadata;
    });
  }

  close(): Promise<void> {
    if (!this.#closing) this.#closing = this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    if (this.#active > 0) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    try {
      for (const task of this.#background.splice(0)) await task.stop();
      if (this.#lease?.lost) throw this.#lease.lost;
      if (!this.readOnly) {
        try {
          await this.#flushAll();
        } catch (error) {
          throw toBackendError(
            error,
            BackendErrorCode.Write,
            `${this.#volume.where}: close could not store every write (the lease is kept)`,
          );
        }
        if (this.#journal) await this.#journal.checkpoint();
        if (this.#lease) await this.#lease.release();
      }
    } finally {
      // Renewals stop whatever happened; a lease not released expires by itself.
      this.#lease?.abandon();
      await this.#journal?.close().catch(() => {});
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#chunks.clear();
      this.#dirty.clear();
      this.#cachedBytes = 0;
      this.#volume.close();
    }
  }

  // ---- chunks ----------------------------------------------------------------------------------

  async #forEachChunk(
    offset: number,
    length: number,
    body: (index: number, from: number, to: number) => Promise<void> | void,
  ): Promise<void> {
    const cs = this.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + length - 1) / cs);
    const pending: Promise<void>[] = [];
    for (let i = first; i <= last; i++) {
      const result = body(i, Math.max(offset, i * cs), Math.min(offset + length, (i + 1) * cs));
      if (result) pending.push(result);
    }
    await Promise.all(pending);
  }

  #touch(chunk: Chunk): void {
    this.#chunks.delete(chunk.index);
    this.#chunks.set(chunk.index, chunk);
  }

  #insert(index: number, data: Uint8Array | null): Chunk {
    const chunk: Chunk = {
      index,
      data,
      version: 0,
      uploadedVersion: 0,
      frozen: false,
      pins: 0,
      uploading: null,
      dirtySince: 0,
      urgent: false,
      lastError: undefined,
      valid: null,
      completing: null,
    };
    this.#chunks.set(index, chunk);
    if (data) this.#cachedBytes += data.byteLength;
    this.#scheduleEvict();
    return chunk;
  }

  /** Fetches chunk `index` into the cache (one GET shared by every caller). */
  #load(index: number): Promise<void> {
    const pending = this.#loads.get(index);
    if (pending) return pending;
    if (this.#chunks.has(index)) return Promise.resolve();
    const load = (async () => {
      const data = await this.#requests.run(() => this.#space.readChunk(index));
      // A writer got there first: a whole-chunk write holds newer data; a partial one takes the rest from here.
      const cached = this.#chunks.get(index);
      if (cached) {
        this.#merge(cached, data);
        return;
      }
      if (data === null) {
        this.#stored.delete(index);
        return;
      }
      this.#insert(index, data);
    })();
    this.#loads.set(index, load);
    load.then(
      () => this.#loads.delete(index),
      () => this.#loads.delete(index),
    );
    return load;
  }

  /**
   * The cached chunk for a write. A stored chunk that is not cached is fetched first, unless the write
   * covers all of it, or `defer` (then the chunk starts partial and is fetched when first needed).
   */
  async #acquireForWrite(index: number, whole: boolean, defer = false): Promise<Chunk> {
    for (;;) {
      const cached = this.#chunks.get(index);
      if (cached) {
        this.#touch(cached);
        return cached;
      }
      if (whole || (!this.#stored.has(index) && !this.#loads.has(index))) return this.#insert(index, null);
      if (defer && !this.#loads.has(index)) {
        const chunk = this.#insert(index, null);
        chunk.valid = [];
        return chunk;
      }
      await this.#load(index);
    }
  }

  /** True when bytes [from, to) of the chunk (chunk-relative) are known in memory. */
  #covers(chunk: Chunk, from: number, to: number): boolean {
    if (!chunk.valid) return true;
    return chunk.valid.some(([a, b]) => a <= from && to <= b);
  }

  /** Records that bytes [from, to) of a partial chunk are now known; a fully known chunk is complete. */
  #addValid(chunk: Chunk, from: number, to: number): void {
    if (!chunk.valid) return;
    const ranges: [number, number][] = [];
    let start = from;
    let end = to;
    for (const [a, b] of chunk.valid) {
      if (b < start || a > end) ranges.push([a, b]);
      else {
        start = Math.min(start, a);
        end = Math.max(end, b);
      }
    }
    ranges.push([start, end]);
    ranges.sort((x, y) => x[0] - y[0]);
    chunk.valid =
      ranges.length === 1 && ranges[0]![0] === 0 && ranges[0]![1] === this.chunkSize ? null : ranges;
  }

  /** Fills a partial chunk's unknown bytes from `server` (null: the server has no object, so zeros). */
  #merge(chunk: Chunk, server: Uint8Array | null): void {
    if (!chunk.valid) return;
    if (server && chunk.data) {
      const buffer = this.#mutable(chunk);
      let position = 0;
      for (const [a, b] of chunk.valid) {
        buffer.set(server.subarray(position, a), position);
        position = b;
      }
      buffer.set(server.subarray(position), position);
    }
    chunk.valid = null;
  }

  /** Fetches what a partial chunk lacks (one GET shared by every caller); resolves at once for a whole chunk. */
  #complete(chunk: Chunk): Promise<void> {
    if (!chunk.valid) return Promise.resolve();
    chunk.completing ??= (async () => {
      try {
        const data = await this.#requests.run(() => this.#space.readChunk(chunk.index));
        if (data === null && chunk.valid) this.#stored.delete(chunk.index);
        this.#merge(chunk, data);
      } finally {
        chunk.completing = null;
      }
    })();
    return chunk.completing;
  }

  /** The chunk's buffer, ready to modify: allocated if it was zeros, copied if an upload holds it. */
  #mutable(chunk: Chunk): Uint8Array {
    if (chunk.data === null) {
      chunk.data = new Uint8Array(this.chunkSize);
      this.#cachedBytes += this.chunkSize;
      chunk.frozen = false;
    } else if (chunk.frozen) {
      chunk.data = chunk.data.slice();
      chunk.frozen = false;
    }
    return chunk.data;
  }

  #markDirty(chunk: Chunk, urgent: boolean): void {
    chunk.version++;
    if (!this.#dirty.has(chunk.index)) {
      chunk.dirtySince = Date.now();
      this.#dirty.set(chunk.index, chunk);
    }
    if (urgent) chunk.urgent = true;
    this.#pump();
  }

  async #zeroRange(offset: number, length: number): Promise<void> {
    if (length === 0) return;
    await this.#forEachChunk(offset, length, async (i, from, to) => {
      const cs = this.chunkSize;
      if (to - from === cs) {
        const cached = this.#chunks.get(i);
        if (cached) {
          if (cached.data) this.#cachedBytes -= cached.data.byteLength;
          cached.data = null;
          cached.valid = null;
          cached.frozen = false;
          this.#markDirty(cached, false);
        } else if (this.#stored.has(i) || this.#loads.has(i)) {
          this.#markDirty(this.#insert(i, null), false);
        }
        return;
      }
      if (!this.#stored.has(i) && !this.#loads.has(i) && !this.#chunks.has(i)) return;
      const chunk = await this.#acquireForWrite(i, false, true);
      if (chunk.data === null && !chunk.valid) return;
      this.#mutable(chunk).fill(0, from - i * cs, to - i * cs);
      this.#addValid(chunk, from - i * cs, to - i * cs);
      this.#markDirty(chunk, false);
    });
  }

  #readAhead(offset: number, length: number, lastChunk: number): void {
    const sequential = offset === this.#lastReadEnd;
    this.#lastReadEnd = offset + length;
    if (!sequential || this.#readAheadChunks === 0) return;
    // Clean chunks already read make room (LRU); read ahead into at most half of what dirty data leaves.
    const available = this.#cacheSize - this.#dirty.size * this.chunkSize;
    const count = Math.min(this.#readAheadChunks, Math.floor(available / this.chunkSize / 2));
    const end = Math.ceil(this.#size / this.chunkSize);
    for (let i = lastChunk + 1; i <= lastChunk + count && i < end; i++) {
      if (this.#stored.has(i) && !this.#chunks.has(i) && !this.#loads.has(i)) {
        // A failed read-ahead is not an error; the reader that needs the chunk fetches it again.
        this.#load(i).catch(() => {});
      }
    }
  }

  // ---- write-back ------------------------------------------------------------------------------

  /** Waits while the dirty limit is reached, pushing the oldest dirty chunks out. */
  async #admitDirty(): Promise<void> {
    while (this.#dirty.size * this.chunkSize >= this.#dirtyLimit) {
      let needed = this.#dirty.size - Math.floor(this.#dirtyLimit / this.chunkSize) + 1;
      for (const chunk of this.#dirty.values()) {
        if (needed-- <= 0) break;
        chunk.urgent = true;
      }
      this.#pump();
      if (this.#writeBackError && this.#uploadsInFlight === 0) throw this.#writeBackError;
      this.#lease?.check();
      await this.#progress();
      if (this.#writeBackError && this.#uploadsInFlight === 0) throw this.#writeBackError;
    }
  }

  #progress(): Promise<void> {
    return new Promise((resolve) => this.#progressWaiters.push(resolve));
  }

  #notifyProgress(): void {
    const waiters = this.#progressWaiters;
    this.#progressWaiters = [];
    for (const w of waiters) w();
  }

  /** Starts uploads of dirty chunks that are due, up to the upload bound; re-arms the timer. */
  #pump(): void {
    if (this.#lease && !this.#mayWrite()) {
      // No upload may start now (lease lapsed, or lost); look again soon, a renewal may bring it back.
      if (this.#timer === undefined && this.#dirty.size > 0 && !this.#closingDone()) {
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.#notifyProgress(); // waiters (flush, the dirty limit) look at the lease again
          this.#pump();
        }, 500);
        this.#timer.unref();
      }
      return;
    }
    const now = Date.now();
    let earliest = Number.POSITIVE_INFINITY;
    for (const chunk of this.#dirty.values()) {
      if (this.#uploadsInFlight >= this.#maxUploads) break;
      if (chunk.uploading) continue;
      const due = chunk.urgent ? now : chunk.dirtySince + this.#writeBackDelay;
      if (due <= now) this.#upload(chunk);
      else earliest = Math.min(earliest, due);
    }
    if (this.#timer === undefined && this.#dirty.size > 0 && !this.#closingDone()) {
      const delay = Number.isFinite(earliest) ? Math.max(1, earliest - now) : this.#writeBackDelay;
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#pump();
      }, delay);
      this.#timer.unref();
    }
  }

  #closingDone(): boolean {
    return this.#closing !== undefined && this.#active === 0 && this.#dirty.size === 0;
  }

  #upload(chunk: Chunk): void {
    chunk.urgent = false;
    this.#uploadsInFlight++;
    let data: Uint8Array | null | undefined;
    chunk.uploading = (async () => {
      // Never finish synchronously: `finally` must clear `uploading` after the assignment above, not before.
      await Promise.resolve();
      try {
        if (chunk.valid) {
          // Written before it was fetched: fetch the rest first (a read failure fails this upload).
          await this.#complete(chunk).catch((error: unknown) => {
            throw new BackendError(
              BackendErrorCode.Write,
              `chunk ${chunk.index}: could not fetch the unwritten part to store the chunk: ${(error as Error).message}`,
              { cause: error },
            );
          });
        }
        const version = chunk.version;
        const snapshot = chunk.data;
        data = snapshot;
        chunk.frozen = snapshot !== null;
        const zero = snapshot === null || isAllZero(snapshot);
        if (zero) {
          if (this.#stored.has(chunk.index)) {
            await this.#requests.run(() => this.#space.deleteChunk(chunk.index));
            this.#stored.delete(chunk.index);
          }
        } else {
          await this.#requests.run(() => this.#space.writeChunk(chunk.index, snapshot));
          this.#stored.add(chunk.index);
        }
        chunk.uploadedVersion = version;
        chunk.lastError = undefined;
        this.#writeBackError = undefined;
        if (chunk.version === version) {
          this.#dirty.delete(chunk.index);
          if (zero && chunk.data !== null) {
            this.#cachedBytes -= chunk.data.byteLength;
            chunk.data = null;
          }
        } else {
          chunk.dirtySince = Date.now();
        }
      } catch (error) {
        const failure = toBackendError(error, BackendErrorCode.Write, this.#volume.where);
        chunk.lastError = failure;
        this.#writeBackError = failure;
        chunk.dirtySince = Date.now() + 1000;
      } finally {
        if (data !== undefined && chunk.data === data) chunk.frozen = false;
        chunk.uploading = null;
        this.#uploadsInFlight--;
        // Every change so far is stored: the cache file's records are not needed any more.
        if (this.#dirty.size === 0 && this.#journal) this.#journal.checkpoint().catch(() => {});
        this.#notifyProgress();
        this.#scheduleEvict();
        this.#pump();
      }
    })();
  }

  /** Whether the lease allows starting uploads now. */
  #mayWrite(): boolean {
    try {
      this.#lease?.check();
      return true;
    } catch {
      return false;
    }
  }

  /** Resolves when every chunk dirty at the call is stored (at that version or later). */
  async #flushAll(): Promise<void> {
    await this.#lease?.confirm();
    const targets = [...this.#dirty.values()].map((chunk) => ({ chunk, version: chunk.version }));
    for (const { chunk } of targets) chunk.urgent = true;
    this.#pump();
    for (;;) {
      let waiting = false;
      for (const { chunk, version } of targets) {
        if (chunk.uploadedVersion >= version) continue;
        if (!chunk.uploading && chunk.lastError) {
          const error = chunk.lastError;
          chunk.lastError = undefined;
          chunk.urgent = true;
          throw error;
        }
        if (!chunk.uploading) chunk.urgent = true;
        waiting = true;
      }
      if (!waiting) {
        this.#lease?.check();
        return;
      }
      this.#pump();
      this.#lease?.check();
      await this.#progress();
    }
  }

  // ---- cache -----------------------------------------------------------------------------------

  #scheduleEvict(): void {
    if (this.#evictScheduled) return;
    this.#evictScheduled = true;
    // Evicting only from a macrotask keeps a chunk returned by an await in the cache until its caller runs.
    setImmediate(() => {
      this.#evictScheduled = false;
      this.#evict();
    });
  }

  #evict(): void {
    for (const chunk of this.#chunks.values()) {
      const clean = !this.#dirty.has(chunk.index) && chunk.pins === 0 && chunk.uploading === null;
      if (!clean) continue;
      if (chunk.data === null) {
        this.#chunks.delete(chunk.index);
        continue;
      }
      if (this.#cachedBytes <= this.#cacheSize) continue;
      this.#chunks.delete(chunk.index);
      this.#cachedBytes -= chunk.data.byteLength;
    }
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
    new S3ObjectStore(location, {
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
    const backend = new S3Backend({
      volume,
      space,
      background,
      metadata,
      stored,
      lease,
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
