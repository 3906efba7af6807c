import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ScatterCursor,
  scatterCompare,
  scatterConcat,
  scatterCopyFrom,
  scatterCopyTo,
  scatterIsZero,
  scatterLength,
  scatterSlice,
  scatterZero,
} from './scatter';

const split = (bytes: Uint8Array, cuts: number[]): Uint8Array[] => {
  const points = [...new Set(cuts.map((c) => c % (bytes.byteLength + 1)))].sort((a, b) => a - b);
  const views: Uint8Array[] = [];
  let previous = 0;
  for (const point of [...points, bytes.byteLength]) {
    views.push(bytes.subarray(previous, point));
    previous = point;
  }
  return views;
};

describe('scatter helpers', () => {
  it('copy from/to round-trips at any offset over any split (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.nat(),
        fc.nat(),
        (backing, cuts, a, b) => {
          const views = split(new Uint8Array(backing.byteLength), cuts);
          const offset = a % backing.byteLength;
          const length = b % (backing.byteLength - offset + 1);
          const source = backing.subarray(0, length);
          scatterCopyFrom(views, offset, source);
          const out = new Uint8Array(length);
          scatterCopyTo(views, offset, out);
          expect(out).toEqual(source);
          expect(scatterConcat(scatterSlice(views, offset, length))).toEqual(source);
          expect(scatterLength(views)).toBe(backing.byteLength);
        },
      ),
    );
  });

  it('zero, isZero and compare', () => {
    const a = [Uint8Array.of(1, 2), Uint8Array.of(3), new Uint8Array(0), Uint8Array.of(4, 5)];
    const b = [Uint8Array.of(1), Uint8Array.of(2, 3, 4), Uint8Array.of(9)];
    expect(scatterCompare(a, b, 4)).toBe(-1);
    expect(scatterCompare(a, b, 5)).toBe(4);
    scatterZero(a, 1, 3);
    expect(scatterConcat(a)).toEqual(Uint8Array.of(1, 0, 0, 0, 5));
    expect(scatterIsZero(a)).toBe(false);
    scatterZero(a);
    expect(scatterIsZero(a)).toBe(true);
  });

  it('throws RangeError when the scatter list is too short', () => {
    expect(() => scatterCopyFrom([new Uint8Array(4)], 2, new Uint8Array(3))).toThrow(RangeError);
    expect(() => scatterSlice([new Uint8Array(4)], 0, 5)).toThrow(RangeError);
  });
});

describe('ScatterCursor', () => {
  it('fills, takes, zeroes and skips across view boundaries', () => {
    const views = [new Uint8Array(3), new Uint8Array(0), new Uint8Array(5)];
    const writer = new ScatterCursor(views);
    writer.fill(Uint8Array.of(1, 2));
    writer.zero(2);
    writer.fill(Uint8Array.of(9, 9, 9, 9));
    expect(writer.position).toBe(8);
    expect(scatterConcat(views)).toEqual(Uint8Array.of(1, 2, 0, 0, 9, 9, 9, 9));
    expect(() => writer.fill(Uint8Array.of(1))).toThrow(RangeError);
    const reader = new ScatterCursor(views);
    reader.skip(1);
    const out = new Uint8Array(4);
    reader.take(out);
    expect(out).toEqual(Uint8Array.of(2, 0, 0, 9));
    expect(scatterConcat(reader.views(3))).toEqual(Uint8Array.of(9, 9, 9));
  });
});
