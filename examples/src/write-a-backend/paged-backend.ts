import {
  type Backend,
  BackendError,
  BackendErrorCode,
  checkBackendRange,
  scatterConcat,
  scatterCopyFrom,
  scatterLength,
  scatterZero,
} from '@tcmu/backend';

/**
 * A sparse in-memory backend: the disk is cut into pages, a page exists only once written, and a
 * page that was never written reads as zeros. `size`, `read` and `write` are the whole contract;
 * `flush` and `unmap` are optional and the core offers SYNCHRONIZE CACHE and UNMAP because they exist.
 */
export class PagedBackend implements Backend {
  readonly size: number;
  readonly pageSize: number;
  /** UNMAP is honoured in whole pages: the core rounds to this granularity. */
  readonly unmapGranularity: number;
  readonly #pages = new Map<number, Uint8Array>();

  constructor(size: number, pageSize = 4096) {
    if (!Number.isSafeInteger(size) || size <= 0 || size % pageSize !== 0) {
      throw new RangeError(`size ${size} must be a positive multiple of the page size ${pageSize}`);
    }
    this.size = size;
    this.pageSize = pageSize;
    this.unmapGranularity = pageSize;
  }

  /** Pages currently stored (for the example's output). */
  get pagesStored(): number {
    return this.#pages.size;
  }

  /** Walks `length` bytes from `offset` page by page: (page number, offset in page, bytes, position in the request). */
  *#spans(offset: number, length: number) {
    let done = 0;
    while (done < length) {
      const position = offset + done;
      const page = Math.floor(position / this.pageSize);
      const inPage = position % this.pageSize;
      const bytes = Math.min(this.pageSize - inPage, length - done);
      yield { page, inPage, bytes, done };
      done += bytes;
    }
  }

  async read(offset: number, length: number, into: readonly Uint8Array[]): Promise<void> {
    checkBackendRange(this, 'read', offset, length);
    // `into` is a scatter list (the ring's iovecs, one byte stream): it must hold `length` bytes.
    if (scatterLength(into) < length) {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        `read: the buffers hold fewer than ${length} bytes`,
      );
    }
    for (const { page, inPage, bytes, done } of this.#spans(offset, length)) {
      const stored = this.#pages.get(page);
      if (stored) scatterCopyFrom(into, done, stored.subarray(inPage, inPage + bytes));
      else scatterZero(into, done, bytes);
    }
  }

  async write(offset: number, data: readonly Uint8Array[]): Promise<void> {
    const length = scatterLength(data);
    checkBackendRange(this, 'write', offset, length);
    const flat = scatterConcat(data);
    for (const { page, inPage, bytes, done } of this.#spans(offset, length)) {
      let stored = this.#pages.get(page);
      if (!stored) {
        stored = new Uint8Array(this.pageSize);
        this.#pages.set(page, stored);
      }
      stored.set(flat.subarray(done, done + bytes), inPage);
    }
  }

  async flush(): Promise<void> {
    // Memory is as durable as it gets here: nothing to do, but the method says "flush is supported".
  }

  async unmap(offset: number, length: number): Promise<void> {
    checkBackendRange(this, 'unmap', offset, length);
    for (const { page, inPage, bytes } of this.#spans(offset, length)) {
      if (inPage === 0 && bytes === this.pageSize) this.#pages.delete(page);
      else this.#pages.get(page)?.fill(0, inPage, inPage + bytes);
    }
  }
}
