import type { AllocationExtent, Backend } from '../backend';
import { firstDifference, isAllZero } from '../bytes';
import { BackendError, BackendErrorCode } from '../errors';
import { checkRange } from '../ranges';
import { scatterCopyFrom, scatterCopyTo, scatterLength, scatterZero } from '../scatter';
import { type ChunkEvent, type ChunkState, nextChunkState } from './chunk-state';
import type { ChunkStore } from './chunk-store';

/**
 * Decides whether changes may be acknowledged (a writer lease). The write-back acknowledges a
 * mutating call or a flush only while `check()` passes, and starts no upload while it throws.
 */
export interface WriteFence {
  /** Throws (a BackendError) when writes may not be acknowledged now. Synchronous and cheap. */
  check(): void;
  /** Resolves when the fence is known to hold right now (e.g. the lease was just confirmed); before every flush. */
  confirm?(): Promise<void>;
}

/** One change, as a crash-safe journal replays it. Bytes of the volume. */
export interface WriteBackRecord {
  readonly kind: 'write' | 'zeroes';
  readonly offset: number;
  readonly length: number;
  /** `length` bytes, for `write`. */
  readonly data?: Uint8Array;
}

/**
 * A crash-safe journal: every change is appended (and durable) before it is acknowledged, and
 * dropped once stored. Attached with {@link WriteBackBackend.attachJournal}.
 */
export interface WriteBackJournal {
  append(
    kind: 'write' | 'zeroes',
    offset: number,
    length: number,
    data?: readonly Uint8Array[],
  ): Promise<void>;
  /** Every change so far is stored: the records are not needed any more. */
  checkpoint(): Promise<void>;
}

/** Options of {@link withWriteBack}. Bytes and milliseconds. */
export interface WriteBackOptions {
  /** Names the volume in error messages (e.g. `s3://bucket/volume`). Default `the volume`. */
  readonly name?: string;
  /** Refuse every change with `TCMU_ERR_BACKEND_READ_ONLY`. */
  readonly readOnly?: boolean;
  /** Dirty bytes allowed before writes wait for uploads. Default 32 MiB; at least one chunk. */
  readonly dirtyLimit?: number;
  /** A dirty chunk is uploaded this long after it first became dirty. Default 200. */
  readonly writeBackDelay?: number;
  /** Uploads in flight at once. Default 12. */
  readonly maxUploads?: number;
  /** Backend properties passed through (hints for the core). */
  readonly blockSize?: number;
  readonly concurrencyLimit?: number;
  readonly persistent?: boolean;
  /** See {@link WriteFence}. */
  readonly fence?: WriteFence;
  /** Turns a failure of the store into the BackendError reported. Default: BackendErrors pass, others get `fallback`. */
  readonly mapError?: (error: unknown, fallback: BackendErrorCode) => BackendError;
}

/** Counters of {@link WriteBackBackend.writeBackStats}. */
export interface WriteBackStats {
  /** Chunk reads served from held (dirty or uploading) chunks. */
  readonly hits: number;
  /** Chunks not yet stored (every state but clean). */
  readonly dirtyChunks: number;
  /** Bytes of the chunk buffers held. */
  readonly heldBytes: number;
  readonly uploadsInFlight: number;
}

interface Entry {
  readonly index: number;
  state: ChunkState;
  /** The chunk's bytes; null means all zeros (no buffer). */
  data: Uint8Array | null;
  /** `data` is also the store's (handed to writeChunk, or read from it): copy before modifying. */
  shared: boolean;
  /**
   * Null: `data` is the whole chunk. Otherwise only these (sorted, disjoint, chunk-relative) byte
   * ranges are known; the rest comes from the store when first needed (a read there, an upload,
   * compareAndWrite).
   */
  known: [number, number][] | null;
  /** Bumped on every modification. */
  version: number;
  /** The version the store holds. */
  storedVersion: number;
  /** Calls holding this chunk across an await (a clean chunk is kept while held). */
  pins: number;
  upload: Promise<void> | null;
  /** When it became dirty (ms). */
  dirtySince: number;
  /** Upload without waiting for the write-back delay. */
  urgent: boolean;
  /** Set in state `failed`: the last upload's failure. */
  error: BackendError | undefined;
  /** The read that fills in a partial chunk, shared. */
  completing: Promise<void> | null;
}

const defaultMapError = (name: string) => (error: unknown, fallback: BackendErrorCode) =>
  error instanceof BackendError
    ? error
    : new BackendError(fallback, `${name}: ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
      });

/**
 * The write-back cache: a complete `Backend` over a {@link ChunkStore}. Writes land in memory and
 * are acknowledged at once (after the journal, when one is attached); dirty chunks are uploaded in
 * the background after `writeBackDelay`, in parallel up to `maxUploads`, at once under the dirty
 * limit or a flush. A write into a stored chunk that was never fetched does not wait for it: only
 * the written bytes are known until the rest is needed. `flush` resolves when every chunk dirty at
 * its start is stored. Chunk states: see `ChunkState`.
 *
 * Reads of chunks it does not hold go to the store (put `withChunkCache` below for a read cache).
 * Concurrency: any number of calls; compareAndWrite is atomic against every other call.
 */
export class WriteBackBackend implements Backend {
  readonly readOnly: boolean;
  readonly blockSize: number | undefined;
  readonly unmapGranularity: number;
  readonly concurrencyLimit: number | undefined;
  readonly persistent: boolean | undefined;

  readonly #store: ChunkStore;
  readonly #name: string;
  readonly #chunkSize: number;
  readonly #dirtyLimit: number;
  readonly #writeBackDelay: number;
  readonly #maxUploads: number;
  readonly #fence: WriteFence | undefined;
  readonly #mapError: (error: unknown, fallback: BackendErrorCode) => BackendError;
  readonly #zeros: Buffer;

  /** Chunks held, in any state. */
  readonly #entries = new Map<number, Entry>();
  /** Chunks not clean, in the order they became dirty. */
  readonly #dirty = new Map<number, Entry>();
  #journal: WriteBackJournal | undefined;
  #uploadsInFlight = 0;
  #writeBackError: BackendError | undefined;
  #progressWaiters: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;
  #hits = 0;
  #active = 0;
  #writers = 0;
  #idleWaiters: (() => void)[] = [];
  /** Set while a barrier runs: mutating calls wait for it. */
  #freeze: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  constructor(store: ChunkStore, options: WriteBackOptions = {}) {
    this.#store = store;
    this.#name = options.name ?? 'the volume';
    this.#chunkSize = store.chunkSize;
    this.readOnly = options.readOnly === true;
    this.blockSize = options.blockSize;
    this.unmapGranularity = store.chunkSize;
    this.concurrencyLimit = options.concurrencyLimit;
    this.persistent = options.persistent;
    this.#dirtyLimit = Math.max(options.dirtyLimit ?? 32 * 1024 * 1024, store.chunkSize);
    this.#writeBackDelay = options.writeBackDelay ?? 200;
    this.#maxUploads = Math.max(1, options.maxUploads ?? 12);
    this.#fence = options.fence;
    this.#mapError = options.mapError ?? defaultMapError(this.#name);
    this.#zeros = Buffer.alloc(store.chunkSize);
    if (!store.resize) (this as { resize?: unknown }).resize = undefined;
  }

  get size(): number {
    return this.#store.size;
  }

  writeBackStats(): WriteBackStats {
    let heldBytes = 0;
    for (const entry of this.#entries.values()) heldBytes += entry.data?.byteLength ?? 0;
    return {
      hits: this.#hits,
      dirtyChunks: this.#dirty.size,
      heldBytes,
      uploadsInFlight: this.#uploadsInFlight,
    };
  }

  /** The state of chunk `index`, or undefined when the write-back does not hold it (it is in the store). */
  chunkState(index: number): ChunkState | undefined {
    return this.#entries.get(index)?.state;
  }

  /** From now on every change is appended to `journal` before it is acknowledged. */
  attachJournal(journal: WriteBackJournal): void {
    this.#journal = journal;
  }

  /** Records that rebuild every dirty chunk (what a journal keeps when it compacts). */
  dirtyRecords(): WriteBackRecord[] {
    const records: WriteBackRecord[] = [];
    const cs = this.#chunkSize;
    const size = this.size;
    for (const entry of this.#dirty.values()) {
      const base = entry.index * cs;
      const end = Math.min(cs, size - base);
      if (end <= 0) continue;
      if (entry.data === null) records.push({ kind: 'zeroes', offset: base, length: end });
      else if (!entry.known)
        records.push({ kind: 'write', offset: base, length: end, data: entry.data.slice(0, end) });
      else
        for (const [a, b] of entry.known) {
          if (a < end)
            records.push({
              kind: 'write',
              offset: base + a,
              length: Math.min(b, end) - a,
              data: entry.data.slice(a, Math.min(b, end)),
            });
        }
    }
    return records;
  }

  /**
   * Runs `body` at a quiet moment: new changes wait, the ones in flight finish, every acknowledged
   * change is stored, then `body` runs; changes resume when it settles. (A snapshot is taken so.)
   */
  barrier<T>(body: () => Promise<T>): Promise<T> {
    return this.#guard(false, async () => {
      while (this.#freeze) await this.#freeze;
      let release!: () => void;
      this.#freeze = new Promise<void>((resolve) => {
        release = resolve;
      });
      try {
        while (this.#writers > 0) await new Promise((resolve) => setTimeout(resolve, 1));
        await this.#flushAll();
        return await body();
      } finally {
        this.#freeze = undefined;
        release();
      }
    });
  }

  // ---- call bookkeeping ------------------------------------------------------------------------

  #enter(mutating: boolean): void {
    if (this.#closing) throw new BackendError(BackendErrorCode.Closed, `${this.#name} is closed`);
    if (mutating && this.readOnly) {
      throw new BackendError(BackendErrorCode.ReadOnly, `${this.#name} is open read-only`);
    }
    if (mutating) this.#fence?.check();
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
      // A call that waited (dirty limit, a fetch) is acknowledged only while the fence still holds.
      if (mutating) this.#fence?.check();
      return result;
    } catch (error) {
      throw this.#mapError(error, mutating ? BackendErrorCode.Write : BackendErrorCode.Read);
    } finally {
      this.#leave(mutating);
    }
  }

  /** Checks the arguments (a bad call rejects, never throws synchronously), then runs `body` guarded. */
  #call<T>(mutating: boolean, check: () => void, body: () => Promise<T>): Promise<T> {
    try {
      check();
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#guard(mutating, body);
  }

  // ---- the contract ----------------------------------------------------------------------------

  read(offset: number, length: number, into: readonly Uint8Array[]): Promise<void> {
    const check = () => {
      checkRange('read', offset, length, this.size);
      if (scatterLength(into) < length) {
        throw new BackendError(
          BackendErrorCode.InvalidArgument,
          `read: the buffers hold ${scatterLength(into)} bytes, fewer than the ${length} asked for`,
        );
      }
    };
    return this.#call(false, check, async () => {
      if (length === 0) return;
      const pending: Promise<void>[] = [];
      this.#eachChunk(offset, length, (i, from, to) => {
        const base = i * this.#chunkSize;
        const copy = (data: Uint8Array | null) => {
          if (data) scatterCopyFrom(into, from - offset, data.subarray(from - base, to - base));
          else scatterZero(into, from - offset, to - from);
        };
        const entry = this.#entries.get(i);
        if (entry && this.#covers(entry, from - base, to - base)) {
          this.#hits++;
          copy(entry.data);
        } else if (entry) {
          pending.push(this.#complete(entry).then(() => copy(entry.data)));
        } else if (!this.#store.mayHold(i)) {
          copy(null);
        } else if (this.#store.readRange && to - from <= this.#chunkSize / 4) {
          // A small part of a chunk nobody holds: read only the part (one ranged GET on S3).
          pending.push(
            this.#store.readRange(i, from - base, to - base).then((part) => {
              if (part) scatterCopyFrom(into, from - offset, part);
              else scatterZero(into, from - offset, to - from);
            }),
          );
        } else {
          pending.push(this.#store.readChunk(i).then(copy));
        }
      });
      this.#store.noteRead?.(offset, length, (i) => this.#entries.has(i));
      await Promise.all(pending);
    });
  }

  write(offset: number, data: readonly Uint8Array[]): Promise<void> {
    let length = 0;
    const check = () => {
      length = scatterLength(data);
      checkRange('write', offset, length, this.size);
    };
    return this.#call(true, check, async () => {
      if (length === 0) return;
      await this.#admitDirty();
      const cs = this.#chunkSize;
      this.#eachChunk(offset, length, (i, from, to) => {
        const entry = this.#acquire(i, to - from === cs);
        const buffer = this.#mutable(entry);
        this.#addKnown(entry, from - i * cs, to - i * cs);
        scatterCopyTo(data, from - offset, buffer.subarray(from - i * cs, to - i * cs));
        this.#markDirty(entry, to === (i + 1) * cs);
      });
      if (this.#journal) await this.#journal.append('write', offset, length, data);
    });
  }

  flush(): Promise<void> {
    return this.#guard(false, () => this.#flushAll());
  }

  unmap(offset: number, length: number): Promise<void> {
    return this.#zeroes('unmap', offset, length);
  }

  writeZeroes(offset: number, length: number): Promise<void> {
    return this.#zeroes('writeZeroes', offset, length);
  }

  #zeroes(operation: string, offset: number, length: number): Promise<void> {
    return this.#call(
      true,
      () => checkRange(operation, offset, length, this.size),
      async () => {
        this.#zeroRange(offset, length);
        if (this.#journal && length > 0) await this.#journal.append('zeroes', offset, length);
      },
    );
  }

  compareAndWrite(
    offset: number,
    expected: readonly Uint8Array[],
    data: readonly Uint8Array[],
  ): Promise<void> {
    let length = 0;
    const check = () => {
      length = scatterLength(data);
      if (scatterLength(expected) !== length) {
        throw new BackendError(
          BackendErrorCode.InvalidArgument,
          `compareAndWrite: expected holds ${scatterLength(expected)} bytes but data holds ${length}`,
        );
      }
      checkRange('compareAndWrite', offset, length, this.size);
    };
    return this.#call(true, check, async () => {
      if (length === 0) return;
      await this.#admitDirty();
      const cs = this.#chunkSize;
      const held: Entry[] = [];
      try {
        // Hold every chunk, then compare and write without yielding: atomic against every other call.
        this.#eachChunk(offset, length, (i) => {
          const entry = this.#acquire(i, false);
          entry.pins++;
          held.push(entry);
        });
        for (const entry of held) await this.#complete(entry);
        for (const entry of held) {
          const i = entry.index;
          const from = Math.max(offset, i * cs);
          const to = Math.min(offset + length, (i + 1) * cs);
          const current = entry.data
            ? entry.data.subarray(from - i * cs, to - i * cs)
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
        for (const entry of held) {
          const i = entry.index;
          const from = Math.max(offset, i * cs);
          const to = Math.min(offset + length, (i + 1) * cs);
          scatterCopyTo(data, from - offset, this.#mutable(entry).subarray(from - i * cs, to - i * cs));
          this.#markDirty(entry, false);
        }
        if (this.#journal) await this.#journal.append('write', offset, length, data);
      } finally {
        for (const entry of held) {
          entry.pins--;
          this.#release(entry);
        }
      }
    });
  }

  getAllocation(offset: number, length: number): Promise<readonly AllocationExtent[]> {
    return this.#call(
      false,
      () => checkRange('getAllocation', offset, length, this.size),
      async () => {
        const extents: { offset: number; length: number; state: 'mapped' | 'deallocated' }[] = [];
        if (length === 0) return extents;
        this.#eachChunk(offset, length, (i, from, to) => {
          const dirty = this.#dirty.get(i);
          const mapped = dirty ? dirty.data !== null : this.#store.mayHold(i);
          const state = mapped ? 'mapped' : 'deallocated';
          const previous = extents[extents.length - 1];
          if (previous && previous.state === state) previous.length += to - from;
          else extents.push({ offset: from, length: to - from, state });
        });
        return extents;
      },
    );
  }

  /** Present only when the store can resize. The caller checks `size` (block multiple etc.) first. */
  resize?(size: number): Promise<void> {
    const store = this.#store;
    return this.#guard(true, async () => {
      const cs = this.#chunkSize;
      const oldSize = this.size;
      if (size < oldSize) {
        // Zero the tail of the new last chunk; chunks past the end are stored as zeros before the store drops them.
        const keep = Math.ceil(size / cs);
        if (size % cs !== 0) this.#zeroRange(size, Math.min(keep * cs, oldSize) - size);
        for (const [index, entry] of this.#entries) {
          if (index >= keep) {
            entry.data = null;
            entry.known = null;
            entry.shared = false;
            this.#markDirty(entry, true);
          }
        }
      }
      await this.#flushAll();
      await store.resize!(size);
    });
  }

  close(): Promise<void> {
    return this.shutdown(async (flush) => {
      try {
        if (this.readOnly) return;
        await flush();
        if (this.#journal) await this.#journal.checkpoint();
      } finally {
        await this.#store.close?.();
      }
    });
  }

  /**
   * Closes with the caller's ending: new calls are refused (`TCMU_ERR_BACKEND_CLOSED`), the calls in
   * flight finish, then `ending(flush)` runs (`flush` stores every dirty chunk); whatever happens,
   * the held chunks are dropped after. Idempotent: a second call returns the first's promise. The
   * store is not closed (the caller owns it).
   */
  shutdown(ending: (flush: () => Promise<void>) => Promise<void>): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#active > 0) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
      try {
        await ending(() => this.#flushAll());
      } finally {
        if (this.#timer) clearTimeout(this.#timer);
        this.#timer = undefined;
        this.#entries.clear();
        this.#dirty.clear();
      }
    })();
    return this.#closing;
  }

  // ---- chunks ----------------------------------------------------------------------------------

  /** Calls `body` for each chunk the byte range touches, with the touched part as absolute offsets. */
  #eachChunk(offset: number, length: number, body: (index: number, from: number, to: number) => void): void {
    const cs = this.#chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + length - 1) / cs);
    for (let i = first; i <= last; i++) {
      body(i, Math.max(offset, i * cs), Math.min(offset + length, (i + 1) * cs));
    }
  }

  #transition(entry: Entry, event: ChunkEvent): void {
    entry.state = nextChunkState(entry.state, event);
  }

  /**
   * The held chunk for a change, created clean if needed: a chunk the change covers whole, or one the
   * store has nothing of, starts known (zeros); one the store has in memory starts with those bytes
   * (shared); any other starts partial (fetched when needed).
   */
  #acquire(index: number, whole: boolean): Entry {
    const held = this.#entries.get(index);
    if (held) return held;
    const mayHold = !whole && this.#store.mayHold(index);
    const cached = mayHold ? this.#store.peek?.(index) : undefined;
    const entry: Entry = {
      index,
      state: 'clean',
      data: cached ?? null,
      shared: cached !== undefined,
      known: !mayHold || cached !== undefined ? null : [],
      version: 0,
      storedVersion: 0,
      pins: 0,
      upload: null,
      dirtySince: 0,
      urgent: false,
      error: undefined,
      completing: null,
    };
    this.#entries.set(index, entry);
    return entry;
  }

  /** Drops a clean chunk no call holds (the store has it). */
  #release(entry: Entry): void {
    if (entry.state === 'clean' && entry.pins === 0 && this.#entries.get(entry.index) === entry) {
      this.#entries.delete(entry.index);
    }
  }

  /** True when bytes [from, to) of the chunk (chunk-relative) are known in memory. */
  #covers(entry: Entry, from: number, to: number): boolean {
    if (!entry.known) return true;
    return entry.known.some(([a, b]) => a <= from && to <= b);
  }

  /** Records that bytes [from, to) of a partial chunk are now known; a fully known chunk is complete. */
  #addKnown(entry: Entry, from: number, to: number): void {
    if (!entry.known) return;
    const ranges: [number, number][] = [];
    let start = from;
    let end = to;
    for (const [a, b] of entry.known) {
      if (b < start || a > end) ranges.push([a, b]);
      else {
        start = Math.min(start, a);
        end = Math.max(end, b);
      }
    }
    ranges.push([start, end]);
    ranges.sort((x, y) => x[0] - y[0]);
    entry.known =
      ranges.length === 1 && ranges[0]![0] === 0 && ranges[0]![1] === this.#chunkSize ? null : ranges;
  }

  /** Fills a partial chunk's unknown bytes from the store's copy (null: zeros). */
  #merge(entry: Entry, stored: Uint8Array | null): void {
    if (!entry.known) return;
    if (stored && entry.data === null) {
      // Nothing written yet: the store's bytes are the chunk (shared with the store).
      entry.data = stored;
      entry.shared = true;
    } else if (stored) {
      const buffer = this.#mutable(entry);
      let position = 0;
      for (const [a, b] of entry.known) {
        buffer.set(stored.subarray(position, a), position);
        position = b;
      }
      buffer.set(stored.subarray(position), position);
    }
    entry.known = null;
  }

  /** Fetches what a partial chunk lacks (one read shared by every caller); resolves at once for a whole chunk. */
  #complete(entry: Entry): Promise<void> {
    if (!entry.known) return Promise.resolve();
    entry.completing ??= (async () => {
      try {
        this.#merge(entry, await this.#store.readChunk(entry.index));
      } finally {
        entry.completing = null;
      }
    })();
    return entry.completing;
  }

  /** The chunk's buffer, ready to modify: allocated if it was zeros, copied if the store shares it. */
  #mutable(entry: Entry): Uint8Array {
    if (entry.data === null) {
      entry.data = new Uint8Array(this.#chunkSize);
      entry.shared = false;
    } else if (entry.shared) {
      entry.data = entry.data.slice();
      entry.shared = false;
    }
    return entry.data;
  }

  #markDirty(entry: Entry, urgent: boolean): void {
    entry.version++;
    this.#transition(entry, 'modify');
    if (!this.#dirty.has(entry.index)) {
      entry.dirtySince = Date.now();
      this.#dirty.set(entry.index, entry);
    }
    if (urgent) entry.urgent = true;
    this.#pump();
  }

  /** Makes bytes read as zeros: whole chunks become null (deleted at upload), edges are zero-filled. */
  #zeroRange(offset: number, length: number): void {
    if (length === 0) return;
    const cs = this.#chunkSize;
    this.#eachChunk(offset, length, (i, from, to) => {
      const held = this.#entries.get(i);
      if (to - from === cs) {
        if (held) {
          held.data = null;
          held.known = null;
          held.shared = false;
          this.#markDirty(held, false);
        } else if (this.#store.mayHold(i)) {
          this.#markDirty(this.#acquire(i, true), false);
        }
        return;
      }
      if (!held && !this.#store.mayHold(i)) return;
      const entry = this.#acquire(i, false);
      if (entry.data === null && !entry.known) {
        this.#release(entry);
        return;
      }
      this.#mutable(entry).fill(0, from - i * cs, to - i * cs);
      this.#addKnown(entry, from - i * cs, to - i * cs);
      this.#markDirty(entry, false);
    });
  }

  // ---- write-back ------------------------------------------------------------------------------

  /** Waits while the dirty limit is reached, pushing the oldest dirty chunks out. */
  async #admitDirty(): Promise<void> {
    while (this.#dirty.size * this.#chunkSize >= this.#dirtyLimit) {
      let needed = this.#dirty.size - Math.floor(this.#dirtyLimit / this.#chunkSize) + 1;
      for (const entry of this.#dirty.values()) {
        if (needed-- <= 0) break;
        entry.urgent = true;
      }
      this.#pump();
      if (this.#writeBackError && this.#uploadsInFlight === 0) throw this.#writeBackError;
      this.#fence?.check();
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
    if (this.#fence && !this.#mayWrite()) {
      // No upload may start now; look again soon, the fence may open again (a lease renewal).
      if (this.#timer === undefined && this.#dirty.size > 0 && !this.#closingDone()) {
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.#notifyProgress(); // waiters (flush, the dirty limit) look at the fence again
          this.#pump();
        }, 500);
        this.#timer.unref();
      }
      return;
    }
    const now = Date.now();
    let earliest = Number.POSITIVE_INFINITY;
    for (const entry of this.#dirty.values()) {
      if (this.#uploadsInFlight >= this.#maxUploads) break;
      if (entry.upload) continue;
      const due = entry.urgent ? now : entry.dirtySince + this.#writeBackDelay;
      if (due <= now) this.#upload(entry);
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

  #upload(entry: Entry): void {
    entry.urgent = false;
    this.#transition(entry, 'upload');
    this.#uploadsInFlight++;
    entry.upload = (async () => {
      // Never finish synchronously: `finally` must clear `upload` after the assignment above, not before.
      await Promise.resolve();
      try {
        if (entry.known) {
          // Written before it was fetched: fetch the rest first (a read failure fails this upload).
          await this.#complete(entry).catch((error: unknown) => {
            throw new BackendError(
              BackendErrorCode.Write,
              `chunk ${entry.index}: could not fetch the unwritten part to store the chunk: ${(error as Error).message}`,
              { cause: error },
            );
          });
        }
        const version = entry.version;
        const data = entry.data;
        if (data) entry.shared = true; // the store may keep it: later changes copy first
        const zero = data === null || isAllZero(data);
        if (!zero) await this.#store.writeChunk(entry.index, data);
        else if (this.#store.mayHold(entry.index)) await this.#store.deleteChunk(entry.index);
        entry.storedVersion = version;
        entry.error = undefined;
        this.#writeBackError = undefined;
        this.#transition(entry, 'stored');
        if (entry.state === 'clean') {
          this.#dirty.delete(entry.index);
          if (zero) entry.data = null;
        } else {
          entry.dirtySince = Date.now();
        }
      } catch (error) {
        const failure = this.#mapError(error, BackendErrorCode.Write);
        entry.error = failure;
        this.#writeBackError = failure;
        this.#transition(entry, 'fail');
        entry.dirtySince = Date.now() + 1000;
      } finally {
        entry.upload = null;
        this.#uploadsInFlight--;
        // Every change so far is stored: the journal's records are not needed any more.
        if (this.#dirty.size === 0 && this.#journal) this.#journal.checkpoint().catch(() => {});
        this.#release(entry);
        this.#notifyProgress();
        this.#pump();
      }
    })();
  }

  /** Whether the fence allows starting uploads now. */
  #mayWrite(): boolean {
    try {
      this.#fence?.check();
      return true;
    } catch {
      return false;
    }
  }

  /** Resolves when every chunk dirty at the call is stored (at that version or later). */
  async #flushAll(): Promise<void> {
    await this.#fence?.confirm?.();
    const targets = [...this.#dirty.values()].map((entry) => ({ entry, version: entry.version }));
    for (const { entry } of targets) entry.urgent = true;
    this.#pump();
    for (;;) {
      let waiting = false;
      for (const { entry, version } of targets) {
        if (entry.storedVersion >= version) continue;
        if (entry.state === 'failed') {
          const error = entry.error!;
          entry.error = undefined;
          entry.urgent = true;
          this.#transition(entry, 'report');
          throw error;
        }
        if (!entry.upload) entry.urgent = true;
        waiting = true;
      }
      if (!waiting) {
        this.#fence?.check();
        return;
      }
      this.#pump();
      this.#fence?.check();
      await this.#progress();
    }
  }
}

/**
 * The write-back filter: a complete Backend over `store` (see {@link WriteBackBackend}). Compose
 * with the chunk filters below it: `withWriteBack(withReadAhead(withChunkCache(store)))`.
 */
export function withWriteBack(store: ChunkStore, options: WriteBackOptions = {}): WriteBackBackend {
  return new WriteBackBackend(store, options);
}
