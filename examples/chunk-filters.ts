import { memoryChunkStore, withChunkCache, withReadAhead, withWriteBack } from '@tcmu/backend/filters';

// A chunk store (here in memory; an object store in real life) made a backend by the chunk filters.
const store = memoryChunkStore(64 * 1024 * 1024, 1024 * 1024);
const cache = withChunkCache(store, { maxBytes: 16 * 1024 * 1024 });
const backend = withWriteBack(withReadAhead(cache, { chunks: 8 }), { dirtyLimit: 8 * 1024 * 1024 });

await backend.write(4096, [new TextEncoder().encode('hello')]);
console.log(backend.chunkState(0)); // dirty: in memory, not yet stored
await backend.flush();
console.log(backend.chunkState(0), store.counters.writes); // undefined 1: stored, the cache keeps it
const out = new Uint8Array(5);
await backend.read(4096, 5, [out]);
console.log(new TextDecoder().decode(out), cache.cacheStats().hits); // hello 1
await backend.close();
