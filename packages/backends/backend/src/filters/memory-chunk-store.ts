import type { ChunkStore } from './chunk-store';

/** Requests a {@link MemoryChunkStore} served, by kind. */
export interface MemoryChunkStoreCounters {
  reads: number;
  writes: number;
  deletes: number;
}

/** A chunk store in memory, as returned by {@link memoryChunkStore}. */
export type MemoryChunkStore = ChunkStore & {
  /** The stored chunks (a chunk absent reads as zeros). */
  readonly chunks: ReadonlyMap<number, Uint8Array>;
  readonly counters: MemoryChunkStoreCounters;
  resize(size: number): Promise<void>;
};

/**
 * A sparse chunk store in a Map: what the chunk filters are tested over, and a fake for callers'
 * tests. Volatile; every call resolves on a later microtask.
 */
export function memoryChunkStore(size: number, chunkSize: number): MemoryChunkStore {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new RangeError(`memoryChunkStore: size ${size} must be a non-negative integer`);
  }
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) {
    throw new RangeError(`memoryChunkStore: chunkSize ${chunkSize} must be a positive integer`);
  }
  const chunks = new Map<number, Uint8Array>();
  const counters: MemoryChunkStoreCounters = { reads: 0, writes: 0, deletes: 0 };
  let current = size;
  return {
    chunkSize,
    get size() {
      return current;
    },
    chunks,
    counters,
    mayHold: (index) => chunks.has(index),
    async readChunk(index) {
      counters.reads++;
      return chunks.get(index) ?? null;
    },
    async writeChunk(index, data) {
      counters.writes++;
      chunks.set(index, data);
    },
    async deleteChunk(index) {
      counters.deletes++;
      chunks.delete(index);
    },
    async resize(next) {
      const keep = Math.ceil(next / chunkSize);
      for (const index of [...chunks.keys()]) if (index >= keep) chunks.delete(index);
      current = next;
    },
  };
}
