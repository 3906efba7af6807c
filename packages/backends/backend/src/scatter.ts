/**
 * Scatter-list helpers. A scatter list is `readonly Uint8Array[]`: views read or written in order as
 * one contiguous byte stream (the ring's iovecs). Offsets below are positions in that stream, in
 * bytes. Every helper copies exactly what it says or throws a RangeError; none allocates a
 * flattened copy unless its name says so (`scatterConcat`).
 */

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
    throw new RangeError(`scatter range offset ${offset}, length ${length} is invalid`);
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
  if (remaining > 0) {
    throw new RangeError(
      `scatter range [${offset}, ${offset + length}) exceeds the scatter list's ${scatterLength(views)} bytes`,
    );
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

/** Zeroes `length` bytes (default: to the end) of the scatter list from stream position `offset`. */
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
  for (const view of views) {
    for (let i = 0; i < view.byteLength; i++) if (view[i] !== 0) return false;
  }
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
    for (let i = 0; i < take; i++) {
      if (lv[lo + i] !== rv[ro + i]) return position + i;
    }
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
