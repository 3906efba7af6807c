import type { Backend, BackendOperation } from '../backend';
import { BackendError, BackendErrorCode } from '../errors';
import { checkRange } from '../ranges';
import { ScatterCursor, scatterLength } from '../scatter';
import { type BackendLayer, wrapBackend } from './wrap-backend';

/** Options of {@link withReadCache}. Bytes. */
export interface ReadCacheOptions {
  /** Cache unit: reads fetch whole blocks of this size from `next`. Power of two, default 64 KiB. */
  readonly blockSize?: number;
  /** Most bytes of blocks kept (least recently used go first). Default 64 MiB. */
  readonly maxBytes?: number;
}

/** Counters of {@link withReadCache}. */
export interface ReadCacheStats {
  /** Blocks served from the cache. */
  readonly hits: number;
  /** Blocks fetched from `next`. */
  readonly misses: number;
  /** Blocks held now, and their bytes. */
  readonly blocks: number;
  readonly bytes: number;
}

/** A backend with a read cache, as returned by {@link withReadCache}. */
export type ReadCachedBackend = Backend & {
  cacheStats(): ReadCacheStats;
  /** Forgets every cached block (e.g. after the medium was changed behind the backend's back). */
  dropCache(): void;
};

const mutating: readonly BackendOperation[] = ['unmap', 'writeZeroes', 'compareAndWrite'];

/**
 * A write-through read cache: reads are served from recently read blocks and misses fetch whole
 * blocks from `next`; every change (write, unmap, writeZeroes, compareAndWrite, resize) goes to
 * `next` and drops the blocks it touches. Useful in front of slow media (object stores) whose
 * readers re-read metadata. Never holds data `next` does not have, so flush and durability are
 * exactly `next`'s.
 *
 * Coherence under concurrency: a fetched block is kept only if no change was in flight or happened
 * anywhere while it was fetched, so a read racing a write can never leave stale data cached.
 * Only changes made through this filter are seen; call `dropCache()` if the medium changes otherwise.
 */
export function withReadCache(next: Backend, options: ReadCacheOptions = {}): ReadCachedBackend {
  const requested = options.blockSize ?? 64 * 1024;
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  if (!Number.isInteger(requested) || requested <= 0 || (requested & (requested - 1)) !== 0) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `withReadCache: blockSize ${requested} must be a power of two`,
    );
  }
  // Fetches must respect next's alignment (both are powers of two).
  const blockSize = Math.max(requested, next.alignment ?? 1);
  const blocks = new Map<number, Uint8Array>(); // insertion order = recency
  let heldBytes = 0;
  let hits = 0;
  let misses = 0;
  let epoch = 0; // bumped at the start and end of every change
  let changesInFlight = 0;
  let closed = false;

  const forget = (index: number) => {
    const block = blocks.get(index);
    if (block) {
      heldBytes -= block.byteLength;
      blocks.delete(index);
    }
  };
  const forgetRange = (offset: number, length: number) => {
    const first = Math.floor(offset / blockSize);
    const last = Math.floor((offset + Math.max(length, 1) - 1) / blockSize);
    if (last - first + 1 > blocks.size) {
      for (const index of [...blocks.keys()]) if (index >= first && index <= last) forget(index);
    } else {
      for (let index = first; index <= last; index++) forget(index);
    }
  };
  const keep = (index: number, block: Uint8Array) => {
    forget(index);
    blocks.set(index, block);
    heldBytes += block.byteLength;
    for (const [oldest] of blocks) {
      if (heldBytes <= maxBytes) break;
      forget(oldest);
    }
  };
  const dropCache = () => {
    blocks.clear();
    heldBytes = 0;
  };
  const change = async <T>(offset: number, length: number, call: () => Promise<T>): Promise<T> => {
    epoch++;
    changesInFlight++;
    forgetRange(offset, length);
    try {
      return await call();
    } finally {
      forgetRange(offset, length);
      changesInFlight--;
      epoch++;
    }
  };

  const read = async (offset: number, length: number, into: readonly Uint8Array[]): Promise<void> => {
    if (closed) return next.read(offset, length, into); // let next report CLOSED
    checkRange('read', offset, length, next.size, next.alignment ?? 1);
    if (scatterLength(into) < length) {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        `read: the scatter list holds fewer than ${length} bytes`,
      );
    }
    if (length === 0) return;
    const first = Math.floor(offset / blockSize);
    const last = Math.floor((offset + length - 1) / blockSize);
    const found = new Map<number, Uint8Array>();
    const missing: number[] = [];
    for (let index = first; index <= last; index++) {
      const block = blocks.get(index);
      if (block) {
        found.set(index, block);
        blocks.delete(index); // refresh recency
        blocks.set(index, block);
        hits++;
      } else missing.push(index);
    }
    // Fetch each run of missing blocks with one read.
    const startEpoch = epoch;
    const quiet = changesInFlight === 0;
    const runs: [number, number][] = [];
    for (const index of missing) {
      const run = runs[runs.length - 1];
      if (run && run[1] === index - 1) run[1] = index;
      else runs.push([index, index]);
    }
    await Promise.all(
      runs.map(async ([from, to]) => {
        const start = from * blockSize;
        const end = Math.min((to + 1) * blockSize, next.size);
        const bytes = new Uint8Array(end - start);
        await next.read(start, bytes.byteLength, [bytes]);
        misses += to - from + 1;
        for (let index = from; index <= to; index++) {
          found.set(
            index,
            bytes.subarray(
              (index - from) * blockSize,
              Math.min((index - from + 1) * blockSize, bytes.byteLength),
            ),
          );
        }
      }),
    );
    const cursor = new ScatterCursor(into);
    for (let index = first; index <= last; index++) {
      const block = found.get(index)!;
      const blockStart = index * blockSize;
      const from = Math.max(offset, blockStart) - blockStart;
      const to = Math.min(offset + length, blockStart + block.byteLength) - blockStart;
      cursor.fill(block.subarray(from, to));
    }
    // Keep fetched blocks only if nothing changed anywhere while they were fetched.
    if (quiet && changesInFlight === 0 && epoch === startEpoch && !closed) {
      for (const index of missing) keep(index, found.get(index)!.slice());
    }
  };

  const layer: Record<string, unknown> = {
    read,
    write: (offset: number, data: readonly Uint8Array[]) =>
      change(offset, scatterLength(data), () => next.write(offset, data)),
  };
  for (const name of mutating) {
    const method = next[name] as ((...args: unknown[]) => Promise<unknown>) | undefined;
    if (typeof method !== 'function') continue;
    layer[name] = (...args: unknown[]) => {
      const offset = args[0] as number;
      const length =
        name === 'compareAndWrite' ? scatterLength(args[2] as Uint8Array[]) : (args[1] as number);
      return change(offset, length, () => method.apply(next, args));
    };
  }
  if (next.resize) {
    const resize = next.resize.bind(next);
    layer.resize = async (size: number) => {
      epoch++;
      changesInFlight++;
      dropCache();
      try {
        await resize(size);
      } finally {
        dropCache();
        changesInFlight--;
        epoch++;
      }
    };
  }
  layer.close = async () => {
    closed = true;
    dropCache();
    await next.close?.();
  };
  const wrapped = wrapBackend(next, layer as BackendLayer) as ReadCachedBackend;
  if (!next.close) delete (wrapped as { close?: unknown }).close;
  wrapped.cacheStats = () => ({ hits, misses, blocks: blocks.size, bytes: heldBytes });
  wrapped.dropCache = dropCache;
  return wrapped;
}
