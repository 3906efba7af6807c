/**
 * Scatter-list helpers, the one scatter library of tcmu (the core, the backends and the tools use it;
 * `@tcmu/ring` hands out its iovecs as such lists). A scatter list is `readonly Uint8Array[]`: views
 * read or written in order as one contiguous byte stream. Offsets below are positions in that stream,
 * in bytes. Every helper copies exactly what it says or throws a `BackendError` with code
 * `TCMU_ERR_BACKEND_INVALID_ARGUMENT` (a negative or non-integer offset or length, or a list too short
 * for the range: nothing is clamped); none allocates a flattened copy unless its name says so
 * (`scatterConcat`).
 */
import { firstDifference, isAllZero } from './bytes';
import { BackendError, BackendErrorCode } from './errors';

const invalid = (message: string) => new BackendError(BackendErrorCode.InvalidArgument, message);

/** Total number of bytes in the scatter list. */
export function scatterLength(views: readonly Uint8Array[]): number {
  let total = 0;
  for (const view of views) total += view.byteLength;
  return total;
}

/** Calls `visit(view, sourceOffset)` for each piece of `[offset, offset + length)` in order. */
function eachPiece(
  views: readonly Uint8Array[],
  offset: number,
  length: number,
  visit: (piece: Uint8Array, position: number) => void,
): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw invalid(`scatter range offset ${offset}, length ${length} is invalid`);
  }
  const total = scatterLength(views);
  if (offset + length > total) {
    // Checked before touching anything: a refused call writes nothing.
    throw invalid(`scatter range [${offset}, ${offset + length}) exceeds the scatter list's ${total} bytes`);
  }
  let skip = offset;
  let remaining = length;
  let position = 0;
  for (const view of views) {
    if (remaining === 0) return;
    if (skip >= view.byteLength) {
      skip -= view.byteLength;
      continue;
    }
    const take = Math.min(view.byteLength - skip, remaining);
    visit(view.subarray(skip, skip + take), position);
    position += take;
    remaining -= take;
    skip = 0;
  }
}

/** Copies `source` into the scatter list starting at stream position `offset`. */
export function scatterCopyFrom(views: readonly Uint8Array[], offset: number, source: Uint8Array): void {
  eachPiece(views, offset, source.byteLength, (piece, position) => {
    piece.set(source.subarray(position, position + piece.byteLength));
  });
}

/** Copies `target.byteLength` bytes from the scatter list, starting at stream position `offset`, into `target`. */
export function scatterCopyTo(views: readonly Uint8Array[], offset: number, target: Uint8Array): void {
  eachPiece(views, offset, target.byteLength, (piece, position) => {
    target.set(piece, position);
  });
}

/** Zeroes `length` bytes (default: to the end) of the scatter list from stream position `offset` (default 0). */
export function scatterZero(views: readonly Uint8Array[], offset = 0, length?: number): void {
  const count = length ?? scatterLength(views) - offset;
  eachPiece(views, offset, count, (piece) => {
    piece.fill(0);
  });
}

/**
 * The views covering stream bytes `[offset, offset + length)`, as subarrays of the originals (no
 * copy). Writing into the result writes into the original memory.
 */
export function scatterSlice(views: readonly Uint8Array[], offset: number, length: number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  eachPiece(views, offset, length, (piece) => {
    pieces.push(piece);
  });
  return pieces;
}

/** True when every byte of the scatter list is zero. */
export function scatterIsZero(views: readonly Uint8Array[]): boolean {
  for (const view of views) if (!isAllZero(view)) return false;
  return true;
}

/** Index of the first byte where the two scatter lists differ over `length` bytes, or -1 when equal. */
export function scatterCompare(a: readonly Uint8Array[], b: readonly Uint8Array[], length: number): number {
  const left = scatterSlice(a, 0, length);
  const right = scatterSlice(b, 0, length);
  let li = 0;
  let ri = 0;
  let lo = 0;
  let ro = 0;
  let position = 0;
  while (position < length) {
    const lv = left[li]!;
    const rv = right[ri]!;
    const take = Math.min(lv.byteLength - lo, rv.byteLength - ro);
    const at = firstDifference(lv.subarray(lo, lo + take), rv.subarray(ro, ro + take));
    if (at >= 0) return position + at;
    position += take;
    lo += take;
    ro += take;
    if (lo === lv.byteLength) {
      li++;
      lo = 0;
    }
    if (ro === rv.byteLength) {
      ri++;
      ro = 0;
    }
  }
  return -1;
}

/** A fresh contiguous copy of the whole scatter list (allocates; for tests and slow paths). */
export function scatterConcat(views: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(scatterLength(views));
  scatterCopyTo(views, 0, out);
  return out;
}

/**
 * A forward-only position in a scatter list, for backends that move data piece by piece (pages,
 * blocks, objects) without re-walking the list from its start each time. Every method advances the
 * cursor by the number of bytes it handles and throws `TCMU_ERR_BACKEND_INVALID_ARGUMENT` past the end
 * of the list.
 */
export class ScatterCursor {
  readonly #views: readonly Uint8Array[];
  #index = 0;
  #within = 0;
  #position = 0;

  constructor(views: readonly Uint8Array[]) {
    this.#views = views;
  }

  /** Bytes consumed so far (the stream position). */
  get position(): number {
    return this.#position;
  }

  #each(length: number, visit: (piece: Uint8Array, done: number) => void): void {
    let done = 0;
    while (done < length) {
      const view = this.#views[this.#index];
      if (view === undefined) throw invalid(`scatter list ended at byte ${this.#position}`);
      const take = Math.min(view.byteLength - this.#within, length - done);
      if (take > 0) visit(view.subarray(this.#within, this.#within + take), done);
      done += take;
      this.#within += take;
      this.#position += take;
      if (this.#within === view.byteLength) {
        this.#index++;
        this.#within = 0;
      }
    }
  }

  /** Copies `source` into the list at the cursor (the "read into the caller's views" direction). */
  fill(source: Uint8Array): void {
    this.#each(source.byteLength, (piece, done) => piece.set(source.subarray(done, done + piece.byteLength)));
  }

  /** Copies the next `target.byteLength` bytes of the list into `target` (the "write" direction). */
  take(target: Uint8Array): void {
    this.#each(target.byteLength, (piece, done) => target.set(piece, done));
  }

  /** Zeroes the next `length` bytes of the list. */
  zero(length: number): void {
    this.#each(length, (piece) => piece.fill(0));
  }

  /** Moves past `length` bytes without touching them. */
  skip(length: number): void {
    this.#each(length, () => {});
  }

  /** The next `length` bytes as sub-views of the list (no copy). */
  views(length: number): Uint8Array[] {
    const pieces: Uint8Array[] = [];
    this.#each(length, (piece) => pieces.push(piece));
    return pieces;
  }
}
