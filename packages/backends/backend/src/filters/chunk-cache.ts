import { BackendError, BackendErrorCode } from '../errors';
import type { ChunkStore } from './chunk-store';

/** Options of {@link withChunkCache}. */
export interface ChunkCacheOptions {
  /**
   * Most bytes of clean chunks kept (least recently used go first): a number, or a function read
   * at each use (a budget shared with the write-back's dirty chunks). Default 64 MiB.
   */
  readonly maxBytes?: number | (() => number);
}

/** Counters of {@link withChunkCache}. */
export interface ChunkCacheStats {
  /** Chunk reads served from the cache. */
  readonly hits: number;
  /** Chunk reads that started a read of the store below. */
  readonly misses: number;
  /** Chunk reads that joined a read already in flight (a prefetch, or another reader). */
  readonly waits: number;
  /** Part-chunk reads passed to the store below (`readRange`: not cached). */
  readonly ranged: number;
  /** Chunks held now, and their bytes. */
  readonly chunks: number;
  readonly bytes: number;
}

/** A chunk store with a read cache, as returned by {@link withChunkCache}. */
export type CachedChunkStore = ChunkStore & { cacheStats(): ChunkCacheStats };

/**
 * The read cache filter: an LRU of clean chunks over `next`. Concurrent reads of one chunk share
 * one read of `next`; `prefetch` fills the cache without a reader. Written chunks are kept (the
 * buffer handed to writeChunk, which the caller no longer modifies), deleted ones forgotten.
 *
 * `readRange` (when `next` has it) answers from a held or loading chunk, else reads only the part
 * from `next` and keeps nothing.
 *
 * Coherence: a chunk read from `next` is kept only if no change of that chunk was in flight or
 * happened while it was read, so a read racing an upload never leaves stale bytes cached.
 */
export function withChunkCache(next: ChunkStore, options: ChunkCacheOptions = {}): CachedChunkStore {
  const budget = options.maxBytes ?? 64 * 1024 * 1024;
  const maxBytes = typeof budget === 'function' ? budget : () => budget;
  if (typeof budget === 'number' && (!Number.isFinite(budget) || budget < 0)) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `withChunkCache: maxBytes ${budget} must be a non-negative number`,
    );
  }
  const chunks = new Map<number, Uint8Array>(); // insertion order = recency
  const loads = new Map<number, Promise<Uint8Array | null>>();
  /** Chunks with a change in flight (count), and chunks changed while a load of them was in flight. */
  const changing = new Map<number, number>();
  const stale = new Set<number>();
  let bytes = 0;
  let hits = 0;
  let misses = 0;
  let waits = 0;
  let ranged = 0;

  const forget = (index: number) => {
    const chunk = chunks.get(index);
    if (chunk) {
      bytes -= chunk.byteLength;
      chunks.delete(index);
    }
  };
  const evict = () => {
    const limit = maxBytes();
    for (const [oldest] of chunks) {
      if (bytes <= limit) break;
      forget(oldest);
    }
  };
  const keep = (index: number, data: Uint8Array) => {
    forget(index);
    chunks.set(index, data);
    bytes += data.byteLength;
    evict();
  };
  /** A held chunk, counted as a hit and made the most recent; undefined when not held. */
  const hit = (index: number): Uint8Array | undefined => {
    const cached = chunks.get(index);
    if (cached) {
      hits++;
      chunks.delete(index); // refresh recency
      chunks.set(index, cached);
    }
    return cached;
  };
  const load = (index: number): Promise<Uint8Array | null> => {
    const started = next.readChunk(index).then((data) => {
      if (data && !stale.has(index) && !changing.has(index)) keep(index, data);
      return data;
    });
    const shared = started.finally(() => {
      loads.delete(index);
      stale.delete(index);
    });
    loads.set(index, shared);
    return shared;
  };
  const change = async (index: number, call: () => Promise<void>, after: Uint8Array | null) => {
    forget(index);
    if (loads.has(index)) stale.add(index);
    changing.set(index, (changing.get(index) ?? 0) + 1);
    let ok = false;
    try {
      await call();
      ok = true;
    } finally {
      const left = changing.get(index)! - 1;
      if (left === 0) changing.delete(index);
      else changing.set(index, left);
      if (loads.has(index)) stale.add(index);
      forget(index);
      if (ok && after && left === 0) keep(index, after);
      else evict();
    }
  };

  const store: CachedChunkStore = {
    chunkSize: next.chunkSize,
    get size() {
      return next.size;
    },
    mayHold: (index) => next.mayHold(index),
    readChunk(index) {
      const cached = hit(index);
      if (cached) return Promise.resolve(cached);
      const pending = loads.get(index);
      if (pending) {
        waits++;
        return pending;
      }
      misses++;
      return load(index);
    },
    writeChunk: (index, data) => change(index, () => next.writeChunk(index, data), data),
    deleteChunk: (index) => change(index, () => next.deleteChunk(index), null),
    peek: (index) => chunks.get(index),
    prefetch(index) {
      if (chunks.has(index) || loads.has(index) || !next.mayHold(index)) return;
      // A failed prefetch is not an error: the reader that needs the chunk reads it again.
      load(index).catch(() => {});
    },
    cacheStats: () => ({ hits, misses, waits, ranged, chunks: chunks.size, bytes }),
  };
  if (next.noteRead) store.noteRead = next.noteRead.bind(next);
  if (next.readRange) {
    const readRange = next.readRange.bind(next);
    // A held or loading chunk answers from memory; otherwise only the part is read, and not kept.
    store.readRange = (index, from, to) => {
      const cached = hit(index);
      if (cached) return Promise.resolve(cached.subarray(from, to));
      const pending = loads.get(index);
      if (pending) {
        waits++;
        return pending.then((data) => data?.subarray(from, to) ?? null);
      }
      ranged++;
      return readRange(index, from, to);
    };
  }
  if (next.resize) {
    const resize = next.resize.bind(next);
    store.resize = async (size) => {
      const keepBelow = Math.ceil(size / next.chunkSize);
      for (const index of [...chunks.keys()]) if (index >= keepBelow) forget(index);
      for (const index of loads.keys()) stale.add(index);
      await resize(size);
    };
  }
  store.close = async () => {
    chunks.clear();
    bytes = 0;
    await next.close?.();
  };
  return store;
}
