import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { firstDifference, isAllZero } from './bytes';

// Sizes around the byte-loop threshold (64) and the memcmp window (64 KiB), at odd offsets too.
const sizes = [0, 1, 7, 63, 64, 65, 255, 256, 257, 4095, 4096, 65535, 65536, 65537, 3 * 65536 + 5];

describe('isAllZero', () => {
  it('is true for zeros and false for one non-zero byte anywhere, at any alignment', () => {
    for (const size of sizes) {
      for (const shift of [0, 1, 3]) {
        const bytes = new Uint8Array(size + shift).subarray(shift);
        expect(isAllZero(bytes), `size ${size} shift ${shift}`).toBe(true);
        for (const at of [0, size >> 1, size - 1]) {
          if (at < 0 || at >= size) continue;
          bytes[at] = 0x80;
          expect(isAllZero(bytes), `size ${size} shift ${shift} byte ${at}`).toBe(false);
          bytes[at] = 0;
        }
      }
    }
  });

  it('only looks at its own view, not the rest of the buffer', () => {
    const buffer = new Uint8Array(300).fill(1);
    buffer.fill(0, 100, 200);
    expect(isAllZero(buffer.subarray(100, 200))).toBe(true);
    expect(isAllZero(buffer.subarray(99, 200))).toBe(false);
  });
});

describe('firstDifference', () => {
  it('finds the first differing byte at any size and alignment', () => {
    for (const size of sizes) {
      const a = new Uint8Array(size + 1).subarray(1).map((_, i) => i * 7);
      const b = a.slice();
      expect(firstDifference(a, b), `size ${size}`).toBe(-1);
      for (const at of [0, 1, size >> 1, size - 2, size - 1]) {
        if (at < 0 || at >= size) continue;
        const c = b.slice();
        c[at] = c[at]! ^ 1;
        if (at + 1 < size) c[size - 1] = c[size - 1]! ^ 2; // a later difference must not win
        expect(firstDifference(a, c), `size ${size} byte ${at}`).toBe(at);
      }
    }
  });

  it('names the shorter length when one is a prefix of the other', () => {
    expect(firstDifference(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 3))).toBe(2);
    expect(firstDifference(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2))).toBe(2);
  });

  it('agrees with a byte loop (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 2000 }),
        fc.array(fc.nat(), { maxLength: 3 }),
        (bytes, flips) => {
          const other = bytes.slice();
          for (const flip of flips) if (bytes.length > 0) other[flip % bytes.length]! ^= 0x10;
          const expected = bytes.findIndex((byte, i) => byte !== other[i]);
          expect(firstDifference(bytes, other)).toBe(expected);
        },
      ),
    );
  });
});
