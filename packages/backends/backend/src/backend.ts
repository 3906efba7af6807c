/**
 * The block backend contract.
 *
 * Rules that hold for every member unless the member says otherwise:
 * - Units: every offset, length and size is in BYTES (a JavaScript number, exact up to 2^53 - 1,
 *   i.e. 8 PiB). Never blocks; the caller (the core) converts LBAs using its own block size.
 * - Range: offset and length are non-negative integers and `offset + length <= size`. A call that
 *   reaches past `size` rejects with `TCMU_ERR_BACKEND_OUT_OF_RANGE` and changes nothing. A call with
 *   length 0 at any offset `<= size` succeeds and does nothing.
 * - Alignment: offsets and lengths must be multiples of `alignment` (default 1: any byte). A
 *   misaligned call rejects with `TCMU_ERR_BACKEND_INVALID_ARGUMENT`. Buffer addresses never need
 *   to be aligned: a backend that needs aligned memory (O_DIRECT) bounces through its own buffers.
 * - Scatter lists: data moves through `readonly Uint8Array[]` views (the ring's iovecs, passed
 *   straight through, zero copy). Views are consumed in order as one contiguous byte stream; view
 *   boundaries carry no meaning. The backend must not keep a reference to a view after its promise
 *   settles (the ring reuses that memory).
 * - Partial I/O is never silent: a call either completes in full and resolves, or rejects. A short
 *   read or short write from the medium is retried or turned into an error; never zero-filled.
 * - Concurrency: a backend accepts any number of calls in flight at once, from one caller, and
 *   completes them in any order. Calls on non-overlapping ranges are independent. Overlapping calls
 *   that are in flight together complete in an unspecified order: after overlapping writes settle,
 *   each byte holds the data of one of them (which one is unspecified); a read overlapping an
 *   in-flight write may see old or new data per byte. A caller that needs an order awaits the first
 *   call before starting the second. A backend that performs better with fewer calls in flight says
 *   so with `concurrencyLimit` (the core's emulation then queues the calls above it); it must still
 *   be correct with more.
 * - Errors: calls reject only with `BackendError` (stable `code`, see `BackendErrorCode`); any other
 *   rejection is a backend bug. Calls never throw synchronously: they return a rejected promise.
 * - Capabilities: the optional methods are present only when the backend really implements them. An
 *   absent method means "unsupported" and the caller must not emulate a success; the core derives
 *   what it advertises (thin provisioning, WRITE SAME, COMPARE AND WRITE, write cache) from which
 *   methods exist (see `backendCapabilities`).
 * - Lifecycle: a backend object is returned already open by its package's `open…()` function (no
 *   async work in constructors). After `close()` has been called, every call rejects with
 *   `TCMU_ERR_BACKEND_CLOSED`.
 */
export interface Backend {
  /**
   * Current capacity in bytes. Constant unless `resize()` changes it (the new value is visible once
   * resize resolves). Always a multiple of `alignment` and of `blockSize` when those are set.
   */
  readonly size: number;

  /**
   * The block size in bytes this backend prefers (512 or 4096 typically); the core uses it as the
   * logical block size unless told otherwise. A hint only: the backend still accepts any
   * `alignment`-aligned I/O. Absent: no preference (the core picks 512).
   */
  readonly blockSize?: number;

  /**
   * Required alignment of every offset and length, in bytes (a power of two). Absent or 1: byte
   * granular. Example: a file opened with O_DIRECT declares its logical sector size (512 or 4096).
   */
  readonly alignment?: number;

  /**
   * The size, in bytes, of the unit that `unmap` can really deallocate (a memory page, a file
   * system block, an object). Ranges that cover whole, aligned units are deallocated; partial units
   * at the edges are zeroed instead. Absent: unknown (the core reports no preference).
   */
  readonly unmapGranularity?: number;

  /**
   * The number of calls in flight beyond which this backend gains nothing (for example, the size of
   * its worker pool): a positive integer. The core's emulation (`emulate(backend)` in @tcmu/core)
   * lets at most this many calls reach the backend at once and queues the others in call order. The
   * backend is still correct with more in flight (other callers need not queue). Absent: no limit.
   */
  readonly concurrencyLimit?: number;

  /**
   * True when the medium refuses writes (`write` and the other mutating calls reject with
   * `TCMU_ERR_BACKEND_READ_ONLY`). The core reports the device as write-protected. Absent: false.
   */
  readonly readOnly?: boolean;

  /**
   * True when data survives `close()` and a later re-open (files, block devices, objects); false or
   * absent for volatile media (memory). Describes the medium; it steers no I/O: the core decides
   * about flushing from `flush` alone. The conformance suite reads it (a persistent backend must be
   * re-openable, `reopen`) and it is shown in `backendCapabilities`.
   */
  readonly persistent?: boolean;

  /**
   * True when a write survives a crash (kill -9) of this process as soon as it resolved, before any
   * `flush`: it is in the kernel's page cache (a file) or in a local journal (S3's `cache_file=`).
   * False or absent when resolved writes may live only in this process's memory until a flush (a
   * write-back cache with no journal). Matters only for a backend with `flush` that is served again
   * after a crash: when the core takes such a device over from a dead process and this is not true,
   * the first SYNCHRONIZE CACHE it answers fails (03/0C 00, WRITE ERROR), because writes the dead
   * process acknowledged may be lost and a flush that succeeded would tell the initiator they are
   * durable. Shown in `backendCapabilities`.
   */
  readonly writesSurviveCrash?: boolean;

  /**
   * Reads `length` bytes starting at byte `offset` into the scatter list `into`, filling the views in
   * order from the first byte of the first view. `into` must hold at least `length` bytes
   * (`scatterLength(into) >= length`, else `TCMU_ERR_BACKEND_INVALID_ARGUMENT`); bytes beyond
   * `length` are left untouched. Bytes never written (or unmapped, or beyond the size before a grow)
   * read as zeros. Resolves only when all `length` bytes are in `into`; a short read from the medium
   * is an error (`TCMU_ERR_BACKEND_READ`), never a zero fill. On rejection the content of `into` is
   * unspecified.
   */
  read(offset: number, length: number, into: readonly Uint8Array[]): Promise<void>;

  /**
   * Writes the scatter list `data` (its total length, `scatterLength(data)`, is the write length)
   * at byte `offset`. Resolves when the data is visible to every later read on this backend; it is
   * durable only after a `flush()` that starts after this write resolved (a backend without `flush`
   * is either write-through or volatile, see `persistent`). On rejection the range holds old data,
   * new data, or a mix; it never holds anything else. Errors: `TCMU_ERR_BACKEND_WRITE`,
   * `_NO_SPACE`, `_READ_ONLY`, `_OUT_OF_RANGE`.
   */
  write(offset: number, data: readonly Uint8Array[]): Promise<void>;

  /**
   * Optional fast path of `read`, for a backend that can often answer without waiting (memory, a
   * file on tmpfs, a page-cache hit). Same arguments, checks and errors as `read`, but synchronous:
   * returns true when all `length` bytes are in `into`, exactly as a `read` that resolved; returns
   * false when it cannot answer without waiting (`into` may have been written to): the caller then
   * calls `read`. Throws the BackendError `read` would reject with. It runs on the caller's thread
   * (the core's event loop), so it never waits for a lock, the network or a disk. Not an operation
   * of its own: filters made with `wrapBackend` drop it unless their layer defines it, so no filter
   * is bypassed. Absent: every read is `read`.
   */
  tryReadSync?(offset: number, length: number, into: readonly Uint8Array[]): boolean;

  /**
   * Optional fast path of `write`, on the terms of {@link Backend.tryReadSync}: returns true when the
   * write is done, exactly as a `write` that resolved (visible to later reads, durable after a later
   * `flush`); returns false, having written nothing, when it cannot be done without waiting (a range
   * another call holds, a medium that blocks): the caller then calls `write`. Throws the
   * BackendError `write` would reject with, with the range as a rejected `write` leaves it.
   */
  tryWriteSync?(offset: number, data: readonly Uint8Array[]): boolean;

  /**
   * Durability barrier. When it resolves, every write (and unmap, writeZeroes, compareAndWrite,
   * resize) that RESOLVED before `flush()` was called is durable: it survives a crash of this
   * process, and for media with a volatile cache (disks) a power loss, as far as the medium reports.
   * Calls still in flight when flush starts may or may not be covered. Absent: the backend has no
   * write cache (write-through or volatile); the core then reports no write cache.
   */
  flush?(): Promise<void>;

  /**
   * Deallocates `length` bytes at `offset` (SCSI UNMAP, discard, trim). Afterwards the range reads
   * as zeros, always. Whole `unmapGranularity` units inside the range are released (space is
   * returned); partial units at the edges are zeroed. Where the medium refuses to release space (a
   * file system without hole punching) the backend zeroes the range instead, and `getAllocation`
   * honestly keeps reporting it mapped. Not durable until the next `flush()`.
   * Absent: the backend cannot deallocate (the core reports no thin provisioning).
   */
  unmap?(offset: number, length: number): Promise<void>;

  /**
   * Makes `length` bytes at `offset` read as zeros (SCSI WRITE SAME with a zero block, WRITE ZEROES)
   * without the caller sending a buffer of zeros. The backend may deallocate the range while doing
   * so. Absent: the caller writes zeros with `write`.
   */
  writeZeroes?(offset: number, length: number): Promise<void>;

  /**
   * Atomically compares the bytes at `offset` with `expected` and, only if they are all equal,
   * writes `data` there (SCSI COMPARE AND WRITE). `scatterLength(expected)` must equal
   * `scatterLength(data)` (else `TCMU_ERR_BACKEND_INVALID_ARGUMENT`). Atomic with respect to every
   * other call on this same backend object: no write lands between the compare and the write. On
   * mismatch nothing is written and the call rejects with `TCMU_ERR_BACKEND_MISCOMPARE` whose
   * `offset` is the first differing byte counted from `offset`.
   */
  compareAndWrite?(
    offset: number,
    expected: readonly Uint8Array[],
    data: readonly Uint8Array[],
  ): Promise<void>;

  /**
   * Reports which parts of `[offset, offset + length)` are mapped (hold data the backend stores) and
   * which are deallocated (read as zeros without storage). The result is a list of extents in
   * ascending order that exactly tiles the asked range: the first starts at `offset`, each starts
   * where the previous ended, the last ends at `offset + length`, and neighbours have different
   * states. A mapped extent may still read as zeros; a deallocated one always does. Granularity is
   * the backend's (`unmapGranularity`). Absent: unknown (the core reports everything mapped).
   */
  getAllocation?(offset: number, length: number): Promise<readonly AllocationExtent[]>;

  /**
   * Changes the capacity to `size` bytes (a multiple of `alignment`). Growing adds bytes that read
   * as zeros; shrinking discards the tail. Must not be called while other calls are in flight
   * (the caller quiesces first). `size` reflects the new value once this resolves.
   */
  resize?(size: number): Promise<void>;

  /**
   * Releases the backend's resources (file descriptors, locks, sockets). Waits for calls already in
   * flight to settle; calls started after close() rejects with `TCMU_ERR_BACKEND_CLOSED`. A
   * persistent backend with `flush` flushes before closing. Idempotent: a second call resolves once
   * the first finished. Absent: nothing to release.
   */
  close?(): Promise<void>;
}

/** One extent of {@link Backend.getAllocation}'s answer. Byte units. */
export interface AllocationExtent {
  /** First byte of the extent. */
  readonly offset: number;
  /** Length of the extent in bytes, greater than zero. */
  readonly length: number;
  /** `mapped`: the backend stores data for it; `deallocated`: reads as zeros and uses no space. */
  readonly state: 'mapped' | 'deallocated';
}

/** The names of the optional operations. */
export type BackendOperation =
  | 'flush'
  | 'unmap'
  | 'writeZeroes'
  | 'compareAndWrite'
  | 'getAllocation'
  | 'resize'
  | 'close';
