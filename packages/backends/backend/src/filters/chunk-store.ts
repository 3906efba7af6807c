/**
 * The chunked store contract: storage that holds a volume as fixed-size chunks, read and written
 * whole (an object store with one object per chunk, a directory of files, a map in memory).
 *
 * A chunk store is not a `Backend`: it has no byte ranges, no partial writes and no cache. The
 * filters of `@tcmu/backend/filters` turn one into a backend and make it fast:
 * `withWriteBack(withReadAhead(withChunkCache(store)))` is a complete backend with a write-back
 * cache (dirty chunks uploaded in the background, in parallel), an LRU cache of clean chunks and
 * read-ahead for sequential readers. Each filter takes and (except the write-back, which returns the
 * backend) returns a `ChunkStore`, so a store gets only the layers it wants.
 *
 * Rules that hold for every member unless the member says otherwise:
 * - Units: chunk numbers (`index`, from 0) for chunks; bytes for `chunkSize`, `size` and the byte
 *   ranges of hints. Chunk `index` holds the volume's bytes `[index * chunkSize, (index + 1) *
 *   chunkSize)`; the last chunk may reach past `size` (those bytes are never read by the volume).
 * - Data: every chunk passed or returned is exactly `chunkSize` bytes. A chunk that was never
 *   written, or was deleted, reads as zeros (`readChunk` resolves `null`: no buffer is needed).
 * - Ownership: a buffer passed to `writeChunk` belongs to the store from the call on (it may keep
 *   it, e.g. in a cache): the caller never modifies it again. A buffer `readChunk` returns may be
 *   shared (a cache's copy): the caller never modifies it, it copies first.
 * - Concurrency: any number of calls may be in flight, but calls that change one chunk
 *   (`writeChunk`, `deleteChunk` of the same `index`) never overlap each other: the caller (the
 *   write-back) serialises them. Reads may overlap anything; a read overlapping a change of its
 *   chunk returns the old or the new bytes, whole.
 * - Errors: calls reject only with `BackendError` (`TCMU_ERR_BACKEND_READ` for a failed or damaged
 *   read, `TCMU_ERR_BACKEND_WRITE` for a failed change, or a more precise code); never a
 *   synchronous throw. A store that retries does so inside the call.
 * - Durability: a `writeChunk` or `deleteChunk` that resolved is durable (the write-back's `flush`
 *   is "every dirty chunk has been written").
 */
export interface ChunkStore {
  /** Bytes per chunk: a positive integer, constant. */
  readonly chunkSize: number;

  /** The volume's size in bytes; changes only through `resize`. Chunks number `ceil(size / chunkSize)`. */
  readonly size: number;

  /**
   * False when chunk `index` certainly reads as zeros (nothing stored), so a reader need not ask;
   * true when it may hold data. Synchronous and cheap (a set lookup): a store that cannot tell says
   * true. Kept up to date by the store's own write/delete/read results.
   */
  mayHold(index: number): boolean;

  /** Chunk `index`'s bytes (`chunkSize` of them; shared, never modified by the caller), or null: zeros. */
  readChunk(index: number): Promise<Uint8Array | null>;

  /**
   * Bytes `[from, to)` of chunk `index` (a view; shared, never modified by the caller), or null:
   * zeros. For a small read of a chunk nobody holds, where fetching the whole chunk would cost more
   * than the read is worth (an object store's ranged GET). Absent: callers read whole chunks.
   */
  readRange?(index: number, from: number, to: number): Promise<Uint8Array | null>;

  /** Stores `data` (`chunkSize` bytes, handed over) as chunk `index`. Durable once resolved. */
  writeChunk(index: number, data: Uint8Array): Promise<void>;

  /** Makes chunk `index` read as zeros and frees its space. Durable once resolved. */
  deleteChunk(index: number): Promise<void>;

  /**
   * Chunk `index`'s bytes if the store holds them in memory right now (a cache), else undefined.
   * Synchronous, never a request; the bytes are shared (never modified by the caller).
   */
  peek?(index: number): Uint8Array | undefined;

  /**
   * A hint: chunk `index` will probably be read soon; start fetching it if that helps. Never fails,
   * never waits. Absent: no store below benefits (a cache implements it).
   */
  prefetch?(index: number): void;

  /**
   * A hint: the backend above is serving a read of the volume's bytes `[offset, offset + length)`.
   * Called once per read, whatever part of it the caller serves from its own memory; `held(index)`
   * is true for chunks the caller holds itself (a read-ahead need not fetch them). Never fails.
   */
  noteRead?(offset: number, length: number, held: (index: number) => boolean): void;

  /**
   * Changes the size. Shrinking deletes every chunk wholly at or past the new end (a later grow reads
   * zeros there); the part of the last chunk past the new end is the caller's to zero first. The
   * caller quiesces: no other call is in flight. Absent: the volume cannot be resized.
   */
  resize?(size: number): Promise<void>;

  /** Releases the store's resources. The caller has finished every other call first. */
  close?(): Promise<void>;
}
