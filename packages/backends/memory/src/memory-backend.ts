import {
  type AllocationExtent,
  type Backend,
  BackendError,
  BackendErrorCode,
  checkRange,
  firstDifference,
  isAllZero,
  ScatterCursor,
  scatterLength,
} from '@tcmu/backend';

/** Options of {@link openMemoryBackend}. Sizes in bytes. */
export interface MemoryBackendOptions {
  /** Capacity in bytes: any multiple of `pageSize`... or not; up to 2^53 − 1. Nothing is allocated up front. */
  readonly size: number;
  /** Allocation unit (a power of two from 512 to 16 MiB). Default 4096. It is also `unmapGranularity`. */
  readonly pageSize?: number;
  /** Preferred logical block size to report. Default 512. */
  readonly blockSize?: number;
  /**
   * Most bytes of page memory to hold at once. A write that needs a new page beyond it rejects with
   * `TCMU_ERR_BACKEND_NO_SPACE` (thin-provisioning exhaustion). Default: no limit.
   */
  readonly maxMemory?: number;
}

/** The memory backend: a {@link Backend} with every optional operation, plus allocation figures. */
export interface MemoryBackend extends Backend {
  readonly unmapGranularity: number;
  flush(): Promise<void>;
  unmap(offset: number, length: number): Promise<void>;
  writeZeroes(offset: number, length: number): Promise<void>;
  compareAndWrite(
    offset: number,
    expected: readonly Uint8Array[],
    data: readonly Uint8Array[],
  ): Promise<void>;
  getAllocation(offset: number, length: number): Promise<readonly AllocationExtent[]>;
  resize(size: number): Promise<void>;
  close(): Promise<void>;
  /** Always true: every read is answered synchronously (the core's fast path, no promise). */
  tryReadSync(offset: number, length: number, into: readonly Uint8Array[]): boolean;
  /** Always true, like `tryReadSync`. */
  tryWriteSync(offset: number, data: readonly Uint8Array[]): boolean;
  /** Bytes of page memory held right now (pages × pageSize). */
  readonly allocatedBytes: number;
  /** Number of pages held right now. */
  readonly allocatedPages: number;
}

const isPowerOfTwo = (value: number) => Number.isInteger(value) && value > 0 && (value & (value - 1)) === 0;

/**
 * Opens a sparse, volatile in-memory backend. Pages are allocated on the first non-zero write to
 * them and freed by unmap, writeZeroes and writes that leave a page all zeros, so a multi-terabyte
 * disk costs only what holds data. Every call completes synchronously inside its promise, so calls
 * never interleave: compareAndWrite is atomic and overlapping writes apply in call order.
 */
export async function openMemoryBackend(options: MemoryBackendOptions): Promise<MemoryBackend> {
  const pageSize = options.pageSize ?? 4096;
  if (!isPowerOfTwo(pageSize) || pageSize < 512 || pageSize > 16 * 1024 * 1024) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `pageSize ${pageSize} must be a power of two from 512 to 16 MiB`,
    );
  }
  if (!Number.isSafeInteger(options.size) || options.size < 0) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `size ${options.size} must be a non-negative integer number of bytes`,
    );
  }
  const blockSize = options.blockSize ?? 512;
  if (!isPowerOfTwo(blockSize)) {
    throw new BackendError(BackendErrorCode.InvalidArgument, `blockSize ${blockSize} must be a power of two`);
  }
  const maxPages =
    options.maxMemory === undefined ? Number.POSITIVE_INFINITY : Math.floor(options.maxMemory / pageSize);
  return new MemoryStore(options.size, pageSize, blockSize, maxPages);
}

class MemoryStore implements MemoryBackend {
  readonly blockSize: number;
  readonly unmapGranularity: number;
  readonly persistent = false;
  readonly #pageSize: number;
  readonly #maxPages: number;
  readonly #pages = new Map<number, Uint8Array>();
  #size: number;
  #closed = false;

  constructor(size: number, pageSize: number, blockSize: number, maxPages: number) {
    this.#size = size;
    this.#pageSize = pageSize;
    this.unmapGranularity = pageSize;
    this.blockSize = blockSize;
    this.#maxPages = maxPages;
  }

  get size(): number {
    return this.#size;
  }

  get allocatedPages(): number {
    return this.#pages.size;
  }

  get allocatedBytes(): number {
    return this.#pages.size * this.#pageSize;
  }

  #check(operation: string, offset: number, length: number): void {
    if (this.#closed)
      throw new BackendError(BackendErrorCode.Closed, `${operation}: the memory backend is closed`);
    checkRange(operation, offset, length, this.#size);
  }

  /** Calls `visit(pageIndex, startInPage, length)` for each page piece of the byte range, in order. */
  #eachPage(
    offset: number,
    length: number,
    visit: (index: number, start: number, count: number) => void,
  ): void {
    let position = offset;
    const end = offset + length;
    while (position < end) {
      const index = Math.floor(position / this.#pageSize);
      const start = position - index * this.#pageSize;
      const count = Math.min(this.#pageSize - start, end - position);
      visit(index, start, count);
      position += count;
    }
  }

  /**
   * Walks pages and the caller's views together: one copy (or fill) per piece where a page and a
   * view overlap, and no closure or cursor per page (a 1 MiB read is 256 pages of 4 KiB).
   */
  #readSync(offset: number, length: number, into: readonly Uint8Array[]): void {
    const pageSize = this.#pageSize;
    let index = Math.floor(offset / pageSize);
    let inPage = offset - index * pageSize;
    let page = this.#pages.get(index);
    let remaining = length;
    for (let v = 0; remaining > 0; v++) {
      const view = into[v]!; // the caller checked that the views hold `length` bytes
      const end = Math.min(view.byteLength, remaining);
      let at = 0;
      while (at < end) {
        const count = Math.min(end - at, pageSize - inPage);
        if (page === undefined) view.fill(0, at, at + count);
        else view.set(count === pageSize ? page : page.subarray(inPage, inPage + count), at);
        at += count;
        inPage += count;
        if (inPage === pageSize && remaining - at > 0) {
          index++;
          inPage = 0;
          page = this.#pages.get(index);
        }
      }
      remaining -= end;
    }
  }

  #writeSync(offset: number, data: readonly Uint8Array[], length: number): void {
    // Allocation is checked before anything changes, so a NO_SPACE write changes nothing.
    if (this.#maxPages !== Number.POSITIVE_INFINITY) {
      let needed = 0;
      this.#eachPage(offset, length, (index) => {
        if (!this.#pages.has(index)) needed++;
      });
      if (needed > 0 && this.#pages.size + needed > this.#maxPages) {
        // Zero pieces would not allocate; count precisely before refusing.
        const probe = new ScatterCursor(data);
        let real = 0;
        this.#eachPage(offset, length, (index, _start, count) => {
          const piece = new Uint8Array(count);
          probe.take(piece);
          if (!this.#pages.has(index) && !isAllZero(piece)) real++;
        });
        if (this.#pages.size + real > this.#maxPages) {
          throw new BackendError(
            BackendErrorCode.NoSpace,
            `write at ${offset}: needs ${real} more pages, over the ${this.#maxPages}-page memory limit`,
            { offset },
          );
        }
      }
    }
    // One pass over the pages, taking each page's piece of the data from one cursor.
    const pageSize = this.#pageSize;
    const cursor = new ScatterCursor(data);
    let position = offset;
    const end = offset + length;
    while (position < end) {
      const index = Math.floor(position / pageSize);
      const start = position - index * pageSize;
      const count = Math.min(pageSize - start, end - position);
      this.#writePiece(index, start, count, cursor.views(count));
      position += count;
    }
  }

  /** Writes `pieces` (`count` bytes in all) at `start` in page `index`; frees a page left all zeros. */
  #writePiece(index: number, start: number, count: number, pieces: readonly Uint8Array[]): void {
    const zero = pieces.length === 1 ? isAllZero(pieces[0]!) : pieces.every(isAllZero);
    let page = this.#pages.get(index);
    if (!page) {
      if (zero) return;
      page = new Uint8Array(this.#pageSize);
      this.#pages.set(index, page);
    }
    let at = start;
    for (const piece of pieces) {
      page.set(piece, at);
      at += piece.byteLength;
    }
    if (zero && (count === this.#pageSize || isAllZero(page))) this.#pages.delete(index);
  }

  #zeroSync(offset: number, length: number): void {
    const pageCount = Math.ceil((offset + length) / this.#pageSize) - Math.floor(offset / this.#pageSize);
    if (pageCount > this.#pages.size) {
      // A huge range over few pages (unmap of a whole terabyte disk): visit held pages, not the range.
      for (const index of [...this.#pages.keys()]) {
        const from = Math.max(index * this.#pageSize, offset);
        const to = Math.min((index + 1) * this.#pageSize, offset + length);
        if (from < to) this.#zeroPiece(index, from - index * this.#pageSize, to - from);
      }
      return;
    }
    this.#eachPage(offset, length, (index, start, count) => this.#zeroPiece(index, start, count));
  }

  #zeroPiece(index: number, start: number, count: number): void {
    if (count === this.#pageSize) {
      this.#pages.delete(index);
      return;
    }
    const page = this.#pages.get(index);
    if (!page) return;
    page.fill(0, start, start + count);
    if (isAllZero(page)) this.#pages.delete(index);
  }

  async read(offset: number, length: number, into: readonly Uint8Array[]): Promise<void> {
    this.#checkedRead(offset, length, into);
  }

  async write(offset: number, data: readonly Uint8Array[]): Promise<void> {
    this.#checkedWrite(offset, data);
  }

  /** Always answers: a read here never waits (the core calls this instead of `read`, no promise). */
  tryReadSync(offset: number, length: number, into: readonly Uint8Array[]): boolean {
    this.#checkedRead(offset, length, into);
    return true;
  }

  /** Always answers, like `tryReadSync`. */
  tryWriteSync(offset: number, data: readonly Uint8Array[]): boolean {
    this.#checkedWrite(offset, data);
    return true;
  }

  #checkedRead(offset: number, length: number, into: readonly Uint8Array[]): void {
    this.#check('read', offset, length);
    if (scatterLength(into) < length) {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        `read: the scatter list holds fewer than ${length} bytes`,
      );
    }
    this.#readSync(offset, length, into);
  }

  #checkedWrite(offset: number, data: readonly Uint8Array[]): void {
    const length = scatterLength(data);
    this.#check('write', offset, length);
    this.#writeSync(offset, data, length);
  }

  /** Nothing to make durable (the data lives in this process); resolves once earlier calls are done, which they are. */
  async flush(): Promise<void> {
    this.#check('flush', 0, 0);
  }

  async unmap(offset: number, length: number): Promise<void> {
    this.#check('unmap', offset, length);
    this.#zeroSync(offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.#check('writeZeroes', offset, length);
    this.#zeroSync(offset, length);
  }

  async compareAndWrite(
    offset: number,
    expected: readonly Uint8Array[],
    data: readonly Uint8Array[],
  ): Promise<void> {
    const length = scatterLength(data);
    if (scatterLength(expected) !== length) {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        `compareAndWrite: expected holds ${scatterLength(expected)} bytes, data ${length}`,
      );
    }
    this.#check('compareAndWrite', offset, length);
    const expectedCursor = new ScatterCursor(expected);
    let position = 0;
    let differs = -1;
    this.#eachPage(offset, length, (index, start, count) => {
      if (differs >= 0) return;
      const page = this.#pages.get(index);
      const want = new Uint8Array(count);
      expectedCursor.take(want);
      const at = firstDifference(page ? page.subarray(start, start + count) : new Uint8Array(count), want);
      if (at >= 0) {
        differs = position + at;
        return;
      }
      position += count;
    });
    if (differs >= 0) {
      throw new BackendError(BackendErrorCode.Miscompare, `compareAndWrite: miscompare at byte ${differs}`, {
        offset: differs,
      });
    }
    this.#writeSync(offset, data, length);
  }

  async getAllocation(offset: number, length: number): Promise<readonly AllocationExtent[]> {
    this.#check('getAllocation', offset, length);
    const end = offset + length;
    const first = Math.floor(offset / this.#pageSize);
    const last = Math.ceil(end / this.#pageSize);
    const held: number[] = [];
    if (last - first <= this.#pages.size) {
      for (let index = first; index < last; index++) if (this.#pages.has(index)) held.push(index);
    } else {
      for (const index of this.#pages.keys()) if (index >= first && index < last) held.push(index);
      held.sort((a, b) => a - b);
    }
    const extents: AllocationExtent[] = [];
    const push = (from: number, to: number, state: AllocationExtent['state']) => {
      if (to <= from) return;
      const previous = extents[extents.length - 1];
      if (previous && previous.state === state && previous.offset + previous.length === from) {
        extents[extents.length - 1] = { offset: previous.offset, length: to - previous.offset, state };
      } else {
        extents.push({ offset: from, length: to - from, state });
      }
    };
    let position = offset;
    for (const index of held) {
      const from = Math.max(index * this.#pageSize, offset);
      const to = Math.min((index + 1) * this.#pageSize, end);
      push(position, from, 'deallocated');
      push(from, to, 'mapped');
      position = to;
    }
    push(position, end, 'deallocated');
    return extents;
  }

  async resize(size: number): Promise<void> {
    if (this.#closed) throw new BackendError(BackendErrorCode.Closed, 'resize: the memory backend is closed');
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        `resize: size ${size} must be a non-negative integer`,
      );
    }
    if (size < this.#size) {
      // Drop whole pages past the end and zero the tail of the last one, so a later grow reads zeros.
      const keep = Math.ceil(size / this.#pageSize);
      for (const index of [...this.#pages.keys()]) if (index >= keep) this.#pages.delete(index);
      if (size % this.#pageSize !== 0) this.#zeroSync(size, keep * this.#pageSize - size);
    }
    this.#size = size;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#pages.clear();
  }
}
