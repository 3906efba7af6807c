/**
 * Byte-array checks the emulation and the backends share: the all-zero test (WRITE SAME's unmap
 * shortcut, sparse pages, all-zero chunks) and the first-difference search (COMPARE AND WRITE,
 * VERIFY). Both compare through `Buffer.compare` (memcmp) a window at a time and look at single
 * bytes only inside a window that differs: on equal 1 MiB arrays 14-19 GB/s against 0.2-0.3 GB/s for
 * a byte loop and about 5 GB/s for 8-byte words (tools/bench/bytes.mjs, loaded 2-core machine).
 */

/** Bytes compared per memcmp call; also the size of the shared zero buffer. */
const window = 64 * 1024;
/** Below this a plain byte loop beats the call into memcmp. */
const small = 64;
const zeros = new Uint8Array(window);

/** True when every byte of `bytes` is zero (an empty array is all zero). */
export function isAllZero(bytes: Uint8Array): boolean {
  const length = bytes.byteLength;
  if (length <= small) {
    for (let i = 0; i < length; i++) if (bytes[i] !== 0) return false;
    return true;
  }
  for (let at = 0; at < length; at += window) {
    const n = Math.min(window, length - at);
    const part = at === 0 && n === length ? bytes : bytes.subarray(at, at + n);
    if (Buffer.compare(part, n === window ? zeros : zeros.subarray(0, n)) !== 0) return false;
  }
  return true;
}

/**
 * Index of the first byte where `a` and `b` differ, or -1 when they are equal. When one is a prefix
 * of the other, the index is the shorter one's length.
 */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength);
  const at = firstDifferenceIn(a, b, 0, n, window);
  if (at >= 0) return at;
  return a.byteLength === b.byteLength ? -1 : n;
}

/** First difference in `[from, to)`, narrowing windows of `step` bytes down to single bytes. */
function firstDifferenceIn(a: Uint8Array, b: Uint8Array, from: number, to: number, step: number): number {
  if (to - from <= small) {
    for (let i = from; i < to; i++) if (a[i] !== b[i]) return i;
    return -1;
  }
  for (let at = from; at < to; at += step) {
    const end = Math.min(to, at + step);
    if (Buffer.compare(a.subarray(at, end), b.subarray(at, end)) === 0) continue;
    return firstDifferenceIn(a, b, at, end, step > small * 4 ? step >> 4 : small);
  }
  return -1;
}
