import type { ChunkStore } from './chunk-store';

/** Options of {@link withReadAhead}. */
export interface ReadAheadOptions {
  /**
   * Chunks to fetch ahead of a sequential reader: a number, or a function read at each read (a
   * budget that shrinks as memory fills). 0 disables.
   */
  readonly chunks: number | (() => number);
}

/**
 * The read-ahead filter: when a read of the volume starts where the previous one ended, the chunks
 * after it are prefetched (`prefetch` of the store below: put a cache there, `withChunkCache`, or
 * the fetched chunks are lost), and so is the rest of the chunk the read ended in. Chunks the caller holds itself or the store has nothing of are
 * skipped. Learns of reads through `noteRead`, which the write-back calls for every read.
 */
export function withReadAhead(next: ChunkStore, options: ReadAheadOptions): ChunkStore {
  const budget = options.chunks;
  const count = typeof budget === 'function' ? budget : () => budget;
  let lastEnd = -1;
  const store: ChunkStore = {
    chunkSize: next.chunkSize,
    get size() {
      return next.size;
    },
    mayHold: (index) => next.mayHold(index),
    readChunk: (index) => next.readChunk(index),
    ...(next.readRange ? { readRange: next.readRange.bind(next) } : {}),
    writeChunk: (index, data) => next.writeChunk(index, data),
    deleteChunk: (index) => next.deleteChunk(index),
    noteRead(offset, length, held) {
      next.noteRead?.(offset, length, held);
      const sequential = offset === lastEnd;
      lastEnd = offset + length;
      if (!sequential || !next.prefetch) return;
      const cs = next.chunkSize;
      const lastChunk = Math.floor((offset + length - 1) / cs);
      const end = Math.ceil(next.size / cs);
      const ahead = count();
      if (ahead <= 0) return;
      // The chunk the read ends in, unless it ends with it: a sequential reader reads on into it
      // (and small reads of it would otherwise be part-chunk reads, one request each).
      const first = (offset + length) % cs === 0 ? lastChunk + 1 : lastChunk;
      for (let i = first; i <= lastChunk + ahead && i < end; i++) {
        if (!held(i) && next.mayHold(i)) next.prefetch(i);
      }
    },
  };
  if (next.peek) store.peek = next.peek.bind(next);
  if (next.prefetch) store.prefetch = next.prefetch.bind(next);
  if (next.resize) store.resize = next.resize.bind(next);
  if (next.close) store.close = next.close.bind(next);
  return store;
}
