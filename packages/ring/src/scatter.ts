import { RingError } from './errors';

// A scatter list is a list of byte views (the ring's iovecs) read or written as one logical buffer.
// Offsets and lengths are in bytes from the start of that logical buffer.

function checkOffset(fn: string, offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0)
    throw new RingError('TCMU_ERR_RING_INVALID_ARGUMENT', `${fn}: offset must be a non-negative integer`);
}

/** Total bytes of a scatter list. */
export function scatterLength(views: readonly Uint8Array[]): number {
  let total = 0;
  for (let i = 0; i < views.length; i++) total += views[i]!.length;
  return total;
}

/**
 * Copy `source` into the scatter list starting at logical byte `offset`.
 * Copies at most what fits; returns the number of bytes copied (less than `source.length` only
 * when the scatter list ends first). Throws TCMU_ERR_RING_INVALID_ARGUMENT for a negative offset.
 */
export function scatterCopyFrom(views: readonly Uint8Array[], offset: number, source: Uint8Array): number {
  checkOffset('scatterCopyFrom', offset);
  let skip = offset;
  let copied = 0;
  for (let i = 0; i < views.length && copied < source.length; i++) {
    const view = views[i]!;
    if (skip >= view.length) {
      skip -= view.length;
      continue;
    }
    const n = Math.min(view.length - skip, source.length - copied);
    view.set(n === source.length && copied === 0 ? source : source.subarray(copied, copied + n), skip);
    copied += n;
    skip = 0;
  }
  return copied;
}

/**
 * Copy from the scatter list, starting at logical byte `offset`, into `target`.
 * Returns the number of bytes copied (less than `target.length` only when the list ends first).
 */
export function scatterCopyTo(views: readonly Uint8Array[], offset: number, target: Uint8Array): number {
  checkOffset('scatterCopyTo', offset);
  let skip = offset;
  let copied = 0;
  for (let i = 0; i < views.length && copied < target.length; i++) {
    const view = views[i]!;
    if (skip >= view.length) {
      skip -= view.length;
      continue;
    }
    const n = Math.min(view.length - skip, target.length - copied);
    target.set(skip === 0 && n === view.length ? view : view.subarray(skip, skip + n), copied);
    copied += n;
    skip = 0;
  }
  return copied;
}

/**
 * Zero `length` bytes of the scatter list from logical byte `offset` (default: to the end).
 * Returns the number of bytes zeroed.
 */
export function scatterZero(
  views: readonly Uint8Array[],
  offset: number,
  length = Number.POSITIVE_INFINITY,
): number {
  checkOffset('scatterZero', offset);
  if (!(length >= 0))
    throw new RingError('TCMU_ERR_RING_INVALID_ARGUMENT', 'scatterZero: length must be non-negative');
  let skip = offset;
  let zeroed = 0;
  for (let i = 0; i < views.length && zeroed < length; i++) {
    const view = views[i]!;
    if (skip >= view.length) {
      skip -= view.length;
      continue;
    }
    const n = Math.min(view.length - skip, length - zeroed);
    view.fill(0, skip, skip + n);
    zeroed += n;
    skip = 0;
  }
  return zeroed;
}

/**
 * The views covering logical bytes [offset, offset + length) of a scatter list, without copying
 * (sub-views of the same memory). Useful to hand part of a command's data to a backend.
 */
export function scatterSlice(views: readonly Uint8Array[], offset: number, length: number): Uint8Array[] {
  checkOffset('scatterSlice', offset);
  const out: Uint8Array[] = [];
  let skip = offset;
  let left = length;
  for (let i = 0; i < views.length && left > 0; i++) {
    const view = views[i]!;
    if (skip >= view.length) {
      skip -= view.length;
      continue;
    }
    const n = Math.min(view.length - skip, left);
    out.push(skip === 0 && n === view.length ? view : view.subarray(skip, skip + n));
    left -= n;
    skip = 0;
  }
  return out;
}
