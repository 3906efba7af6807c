import { describe, expect, it } from 'vitest';
import type { Backend } from '../backend';
import { backendCapabilities } from '../capabilities';
import { BackendError, BackendErrorCode } from '../errors';
import { runBackendConformance } from '../testing/conformance';
import { withChunkCache } from './chunk-cache';
import { type ChunkState, chunkEvents, chunkStates, chunkTransitions, nextChunkState } from './chunk-state';
import type { ChunkStore } from './chunk-store';
import { memoryChunkStore } from './memory-chunk-store';
import { withReadAhead } from './read-ahead';
import { type WriteBackOptions, withWriteBack } from './write-back';

const KiB = 1024;

/** The S3 stack over a memory store; `reopen` serves the same store again (it outlives the backend). */
function stackOver(chunkSize: number, options: WriteBackOptions = {}) {
  const stores = new WeakMap<Backend, ChunkStore>();
  const serve = (store: ChunkStore) => {
    const cache = withChunkCache(store, { maxBytes: 16 * chunkSize });
    const backend = withWriteBack(withReadAhead(cache, { chunks: 4 }), {
      persistent: true,
      writeBackDelay: 5,
      dirtyLimit: 8 * chunkSize,
      ...options,
    });
    stores.set(backend, store);
    return backend;
  };
  return {
    open: async (size: number) => serve(memoryChunkStore(size, chunkSize)),
    reopen: async (closed: Backend) => serve(stores.get(closed)!),
  };
}

runBackendConformance({
  name: 'withWriteBack(withReadAhead(withChunkCache(memoryChunkStore))), 64 KiB chunks',
  ...stackOver(64 * KiB),
});
runBackendConformance({
  name: 'withWriteBack(withReadAhead(withChunkCache(memoryChunkStore))), 4 KiB chunks, 1 upload at a time',
  ...stackOver(4 * KiB, { maxUploads: 1 }),
});
runBackendConformance({
  name: 'withWriteBack(memoryChunkStore), no cache',
  open: async (size) => withWriteBack(memoryChunkStore(size, 16 * KiB), { writeBackDelay: 1 }),
});

/** A memory store that can also read part of a chunk (as S3's ranged GET), counting those reads. */
function rangedStore(size: number, chunkSize: number) {
  const inner = memoryChunkStore(size, chunkSize);
  const counts = { ranged: 0 };
  const store: ChunkStore = {
    ...inner,
    get size() {
      return inner.size;
    },
    async readRange(index, from, to) {
      counts.ranged++;
      const data = await inner.readChunk(index);
      inner.counters.reads--; // counted as a part read, not a chunk read
      return data ? data.slice(from, to) : null;
    },
  };
  return { store, inner, counts };
}

runBackendConformance({
  name: 'withWriteBack(withReadAhead(withChunkCache(a store with readRange))), 64 KiB chunks',
  open: async (size) =>
    withWriteBack(
      withReadAhead(withChunkCache(rangedStore(size, 64 * KiB).store, { maxBytes: 16 * 64 * KiB }), {
        chunks: 4,
      }),
      {
        writeBackDelay: 5,
        dirtyLimit: 8 * 64 * KiB,
      },
    ),
});

const pattern = (seed: number, length: number) =>
  Uint8Array.from({ length }, (_, i) => (i * 31 + seed * 7 + 1) & 0xff);
const codeOf = (promise: Promise<unknown>) =>
  promise.then(
    () => 'resolved',
    (error: BackendError) => error.code,
  );

/** A memory store whose writes wait for `open()` and can be made to fail. */
function gatedStore(size: number, chunkSize: number) {
  const inner = memoryChunkStore(size, chunkSize);
  let gate: Promise<void> | undefined;
  let openGate: () => void = () => {};
  const control = {
    failures: 0,
    attempts: 0,
    close() {
      gate = new Promise((resolve) => {
        openGate = resolve;
      });
    },
    open() {
      openGate();
      gate = undefined;
    },
  };
  const store: ChunkStore = {
    ...inner,
    chunkSize,
    get size() {
      return inner.size;
    },
    async writeChunk(index, data) {
      control.attempts++;
      await gate;
      if (control.failures > 0) {
        control.failures--;
        throw new BackendError(BackendErrorCode.Write, `chunk ${index}: injected failure`);
      }
      await inner.writeChunk(index, data);
    },
  };
  return { store, inner, control };
}

const until = async (condition: () => boolean) => {
  for (let i = 0; i < 5000 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 1));
  expect(condition()).toBe(true);
};

describe('chunk states of the write-back', () => {
  it('allow exactly the transitions of the table; every other (state, event) pair throws', () => {
    // The design, written out independently of the table.
    const design = [
      'clean modify dirty',
      'dirty modify dirty',
      'dirty upload uploading',
      'uploading modify dirty-while-uploading',
      'uploading stored clean',
      'uploading fail failed',
      'dirty-while-uploading modify dirty-while-uploading',
      'dirty-while-uploading stored dirty',
      'dirty-while-uploading fail failed',
      'failed modify failed',
      'failed upload uploading',
      'failed report dirty',
    ];
    const walked: string[] = [];
    for (const state of chunkStates) {
      for (const event of chunkEvents) {
        let next: ChunkState | undefined;
        try {
          next = nextChunkState(state, event);
        } catch (error) {
          expect((error as Error).message).toBe(`write-back: a ${state} chunk cannot ${event}`);
          expect(error).not.toBeInstanceOf(BackendError);
        }
        if (next !== undefined) walked.push(`${state} ${event} ${next}`);
      }
    }
    expect(walked.sort()).toEqual([...design].sort());
    // Every state is reached from clean, and clean is reached from every state (no dead end).
    const reach = (from: ChunkState) => {
      const seen = new Set<ChunkState>([from]);
      for (const state of seen) for (const next of Object.values(chunkTransitions[state])) seen.add(next);
      return seen;
    };
    expect([...reach('clean')].sort()).toEqual([...chunkStates].sort());
    for (const state of chunkStates) expect(reach(state).has('clean'), state).toBe(true);
  });

  it('walk clean → dirty → uploading → dirty-while-uploading → dirty → uploading → clean (dropped)', async () => {
    const { store, inner, control } = gatedStore(1024 * KiB, 64 * KiB);
    const backend = withWriteBack(store, { writeBackDelay: 60_000 });
    expect(backend.chunkState(0)).toBeUndefined();
    await backend.write(0, [pattern(1, 100)]);
    expect(backend.chunkState(0)).toBe('dirty');
    control.close();
    const first = backend.flush();
    await until(() => backend.chunkState(0) === 'uploading');
    await backend.write(200, [pattern(2, 100)]);
    expect(backend.chunkState(0)).toBe('dirty-while-uploading');
    control.open();
    await first;
    // The upload stored the first version; the second still needs one (not due for a minute).
    expect(backend.chunkState(0)).toBe('dirty');
    expect(inner.chunks.get(0)?.subarray(200, 300)).toEqual(new Uint8Array(100));
    await backend.flush();
    expect(backend.chunkState(0)).toBeUndefined();
    expect(inner.chunks.get(0)?.subarray(200, 300)).toEqual(pattern(2, 100));
    await backend.close();
  });

  it('walk dirty → uploading → failed → uploading → failed → (reported by flush) dirty → … → clean', async () => {
    const { store, inner, control } = gatedStore(1024 * KiB, 64 * KiB);
    const backend = withWriteBack(store, { writeBackDelay: 1 });
    control.failures = 2;
    await backend.write(64 * KiB, [pattern(3, 64 * KiB)]);
    await until(() => backend.chunkState(1) === 'failed');
    // The flush retries at once; the retry fails too, and the flush reports it.
    expect(await codeOf(backend.flush())).toBe('TCMU_ERR_BACKEND_WRITE');
    expect(control.attempts).toBe(2);
    expect(backend.chunkState(1)).toBe('dirty');
    await backend.flush();
    expect(backend.chunkState(1)).toBeUndefined();
    expect(inner.chunks.get(1)).toEqual(pattern(3, 64 * KiB));
    await backend.close();
  });

  it('walk dirty-while-uploading → failed → (reported by flush) dirty → clean, keeping both writes', async () => {
    const { store, inner, control } = gatedStore(1024 * KiB, 64 * KiB);
    const backend = withWriteBack(store, { writeBackDelay: 60_000 });
    await backend.write(0, [pattern(13, 100)]);
    control.close();
    control.failures = 1;
    const first = codeOf(backend.flush());
    await until(() => backend.chunkState(0) === 'uploading');
    await backend.write(1000, [pattern(14, 100)]);
    expect(backend.chunkState(0)).toBe('dirty-while-uploading');
    control.open();
    expect(await first).toBe('TCMU_ERR_BACKEND_WRITE');
    expect(backend.chunkState(0)).toBe('dirty');
    await backend.flush();
    expect(backend.chunkState(0)).toBeUndefined();
    expect(inner.chunks.get(0)?.subarray(0, 100)).toEqual(pattern(13, 100));
    expect(inner.chunks.get(0)?.subarray(1000, 1100)).toEqual(pattern(14, 100));
    await backend.close();
  });

  it('a chunk written whole with zeros is deleted from the store, not written', async () => {
    const { store, inner } = gatedStore(1024 * KiB, 64 * KiB);
    const backend = withWriteBack(store, { writeBackDelay: 60_000 });
    await backend.write(0, [pattern(4, 64 * KiB)]);
    await backend.flush();
    expect(inner.chunks.has(0)).toBe(true);
    await backend.write(0, [new Uint8Array(64 * KiB)]);
    await backend.flush();
    expect(inner.chunks.has(0)).toBe(false);
    expect(inner.counters.deletes).toBe(1);
    await backend.close();
  });
});

describe('withWriteBack capabilities', () => {
  it('has resize only when the store can resize; unmap frees whole chunks', () => {
    const inner = memoryChunkStore(1024 * KiB, 64 * KiB);
    const { resize: _, ...fixed } = inner;
    const withoutResize: ChunkStore = { ...fixed, chunkSize: inner.chunkSize, size: inner.size };
    expect(backendCapabilities(withWriteBack(withoutResize)).resize).toBe(false);
    const backend = withWriteBack(inner);
    expect(backendCapabilities(backend)).toMatchObject({ resize: true, unmap: true, flush: true });
    expect(backend.unmapGranularity).toBe(64 * KiB);
  });
});

describe('the write-back fence (a writer lease)', () => {
  it('a writer whose fence closed acknowledges nothing and uploads nothing', async () => {
    const { store, inner } = gatedStore(1024 * KiB, 64 * KiB);
    let lost: BackendError | undefined;
    const fence = {
      check() {
        if (lost) throw lost;
      },
    };
    const backend = withWriteBack(store, { writeBackDelay: 60_000, fence });
    await backend.write(0, [pattern(5, 4096)]);
    lost = new BackendError(BackendErrorCode.Busy, 'the lease is lost');
    expect(await codeOf(backend.write(8192, [pattern(6, 4096)]))).toBe('TCMU_ERR_BACKEND_BUSY');
    expect(await codeOf(backend.flush())).toBe('TCMU_ERR_BACKEND_BUSY');
    expect(inner.counters.writes).toBe(0);
    expect(backend.chunkState(0)).toBe('dirty');
  });
});

describe('withChunkCache', () => {
  it('shares one read of the store among concurrent readers, then serves hits', async () => {
    const inner = memoryChunkStore(1024 * KiB, 64 * KiB);
    await inner.writeChunk(3, pattern(7, 64 * KiB));
    const cache = withChunkCache(inner, { maxBytes: 4 * 64 * KiB });
    const reads = await Promise.all(Array.from({ length: 16 }, () => cache.readChunk(3)));
    expect(inner.counters.reads).toBe(1);
    for (const data of reads) expect(data).toEqual(pattern(7, 64 * KiB));
    await cache.readChunk(3);
    expect(cache.cacheStats()).toMatchObject({ hits: 1, misses: 1, waits: 15, chunks: 1 });
  });

  it('keeps at most maxBytes, least recently used out first', async () => {
    const inner = memoryChunkStore(1024 * KiB, 64 * KiB);
    for (let i = 0; i < 8; i++) await inner.writeChunk(i, pattern(i, 64 * KiB));
    const cache = withChunkCache(inner, { maxBytes: 3 * 64 * KiB });
    for (let i = 0; i < 8; i++) await cache.readChunk(i);
    expect(cache.cacheStats()).toMatchObject({ chunks: 3, bytes: 3 * 64 * KiB });
    await cache.readChunk(7);
    expect(cache.cacheStats().hits).toBe(1);
    await cache.readChunk(0);
    expect(inner.counters.reads).toBe(9);
  });

  it('a change to a chunk the cache holds starts from its bytes (peek): no second read once evicted', async () => {
    const inner = memoryChunkStore(1024 * KiB, 64 * KiB);
    await inner.writeChunk(1, pattern(10, 64 * KiB));
    await inner.writeChunk(2, pattern(12, 64 * KiB));
    const backend = withWriteBack(withChunkCache(inner, { maxBytes: 64 * KiB }), { writeBackDelay: 60_000 });
    const out = new Uint8Array(10);
    await backend.read(64 * KiB, 10, [out]);
    await backend.write(64 * KiB + 100, [pattern(11, 10)]);
    await backend.read(2 * 64 * KiB, 10, [out]); // evicts chunk 1 from the cache
    await backend.flush();
    expect(inner.counters.reads).toBe(2);
    const expected = pattern(10, 64 * KiB);
    expected.set(pattern(11, 10), 100);
    expect(inner.chunks.get(1)).toEqual(expected);
  });

  it('does not keep a chunk read while that chunk changed (no stale bytes after the change)', async () => {
    const inner = memoryChunkStore(1024 * KiB, 64 * KiB);
    await inner.writeChunk(2, pattern(8, 64 * KiB));
    let release: () => void = () => {};
    const slow: ChunkStore = {
      ...inner,
      chunkSize: inner.chunkSize,
      get size() {
        return inner.size;
      },
      async readChunk(index) {
        const data = await inner.readChunk(index);
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        return data;
      },
    };
    const cache = withChunkCache(slow);
    const racing = cache.readChunk(2);
    await cache.writeChunk(2, pattern(9, 64 * KiB));
    await new Promise((resolve) => setImmediate(resolve));
    release();
    expect(await racing).toEqual(pattern(8, 64 * KiB)); // old or new bytes, whole: old here
    expect(await cache.readChunk(2)).toEqual(pattern(9, 64 * KiB));
  });
});

describe('part-chunk reads (readRange)', () => {
  const chunk = 64 * KiB;

  it('the cache answers them from a held or loading chunk, else passes them down and keeps nothing', async () => {
    const { store, inner, counts } = rangedStore(16 * chunk, chunk);
    await inner.writeChunk(2, pattern(2, chunk));
    await inner.writeChunk(3, pattern(3, chunk));
    const cache = withChunkCache(store, { maxBytes: 8 * chunk });
    expect(await cache.readRange!(2, 100, 4196)).toEqual(pattern(2, chunk).subarray(100, 4196));
    expect(await cache.readRange!(2, 0, 10)).toEqual(pattern(2, chunk).subarray(0, 10));
    expect(counts.ranged).toBe(2);
    expect(cache.cacheStats()).toMatchObject({ ranged: 2, chunks: 0 });
    const loading = cache.readChunk(3);
    expect(await cache.readRange!(3, 8, 16)).toEqual(pattern(3, chunk).subarray(8, 16));
    await loading;
    expect(await cache.readRange!(3, 16, 32)).toEqual(pattern(3, chunk).subarray(16, 32));
    expect(counts.ranged).toBe(2);
    expect(cache.cacheStats()).toMatchObject({ hits: 1, misses: 1, waits: 1, ranged: 2 });
    expect(await cache.readRange!(5, 0, 10)).toBeNull();
  });

  it('the write-back reads a small part of an unheld chunk as a part, a large one as the whole chunk', async () => {
    const { store, inner, counts } = rangedStore(16 * chunk, chunk);
    for (let i = 0; i < 4; i++) await inner.writeChunk(i, pattern(i, chunk));
    inner.counters.reads = 0;
    const backend = withWriteBack(store);
    const small = new Uint8Array(16 * KiB);
    await backend.read(chunk + 512, small.length, [small]);
    expect(small).toEqual(pattern(1, chunk).subarray(512, 512 + small.length));
    expect({ ranged: counts.ranged, whole: inner.counters.reads }).toEqual({ ranged: 1, whole: 0 });
    const large = new Uint8Array(16 * KiB + 512);
    await backend.read(2 * chunk, large.length, [large]);
    expect(large).toEqual(pattern(2, chunk).subarray(0, large.length));
    expect({ ranged: counts.ranged, whole: inner.counters.reads }).toEqual({ ranged: 1, whole: 1 });
    // A read across a chunk boundary: a small part of each chunk.
    const across = new Uint8Array(8 * KiB);
    await backend.read(3 * chunk - 4 * KiB, across.length, [across]);
    expect(across.subarray(0, 4 * KiB)).toEqual(pattern(2, chunk).subarray(chunk - 4 * KiB));
    expect(across.subarray(4 * KiB)).toEqual(pattern(3, chunk).subarray(0, 4 * KiB));
    expect(counts.ranged).toBe(3);
  });

  it('a sequential reader of small parts reads each chunk once, whole, after its second read', async () => {
    const { store, inner, counts } = rangedStore(32 * chunk, chunk);
    for (let i = 0; i < 32; i++) await inner.writeChunk(i, pattern(i, chunk));
    inner.counters.reads = 0;
    const cache = withChunkCache(store, { maxBytes: 8 * chunk });
    const backend = withWriteBack(withReadAhead(cache, { chunks: 4 }));
    const out = new Uint8Array(4 * KiB);
    for (let offset = 0; offset < 32 * chunk; offset += out.length) {
      await backend.read(offset, out.length, [out]);
      const i = Math.floor(offset / chunk);
      expect(out).toEqual(pattern(i, chunk).subarray(offset % chunk, (offset % chunk) + out.length));
    }
    expect(counts.ranged).toBe(2);
    expect(inner.counters.reads).toBe(32);
  });
});

describe('withReadAhead', () => {
  const chunk = 64 * KiB;
  const setup = async () => {
    const inner = memoryChunkStore(32 * chunk, chunk);
    for (let i = 0; i < 32; i++) await inner.writeChunk(i, pattern(i, chunk));
    const cache = withChunkCache(inner, { maxBytes: 8 * chunk });
    const backend = withWriteBack(withReadAhead(cache, { chunks: 4 }));
    return { inner, cache, backend };
  };

  it('fetches ahead of a sequential reader: every chunk read once, nearly all before it is asked for', async () => {
    const { inner, cache, backend } = await setup();
    const out = new Uint8Array(16 * KiB);
    for (let offset = 0; offset < 32 * chunk; offset += out.length) {
      await backend.read(offset, out.length, [out]);
      const i = Math.floor(offset / chunk);
      expect(out).toEqual(pattern(i, chunk).subarray(offset % chunk, (offset % chunk) + out.length));
    }
    expect(inner.counters.reads).toBe(32);
    expect(cache.cacheStats().misses).toBeLessThan(6);
  });

  it('fetches nothing ahead of a reader that jumps', async () => {
    const { inner, backend } = await setup();
    const out = new Uint8Array(4 * KiB);
    for (const i of [10, 3, 20, 7, 28]) await backend.read(i * chunk + 100, out.length, [out]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(inner.counters.reads).toBe(5);
  });
});
