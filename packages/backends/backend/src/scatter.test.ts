import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isBackendError } from './errors';
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

/** A scatter list of views filled with 1, 2, …, and its contents flattened (the model). */
function scatterOver(lengths: number[]): { views: Uint8Array[]; flat: () => Uint8Array } {
  const views = lengths.map((length, i) => new Uint8Array(length).fill(i + 1));
  return { views, flat: () => scatterConcat(views) };
}

const lengthsArbitrary = fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 8 });

function expectInvalid(call: () => unknown): void {
  let thrown: unknown;
  try {
    call();
  } catch (error) {
    thrown = error;
  }
  expect(isBackendError(thrown, 'TCMU_ERR_BACKEND_INVALID_ARGUMENT'), String(thrown)).toBe(true);
}

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

  it('scatterLength sums the views', () => {
    expect(scatterLength([])).toBe(0);
    expect(scatterLength([new Uint8Array(3), new Uint8Array(0), new Uint8Array(5)])).toBe(8);
  });

  it('copies, zeroes and slices like a flat buffer would, and refuses what does not fit (property)', () => {
    fc.assert(
      fc.property(
        lengthsArbitrary,
        fc.nat(120),
        fc.uint8Array({ maxLength: 100 }),
        (lengths, offset, source) => {
          const { views, flat } = scatterOver(lengths);
          const model = flat();
          const fits = offset + source.length <= model.length;
          if (!fits) {
            expectInvalid(() => scatterCopyFrom(views, offset, source));
            expectInvalid(() => scatterCopyTo(views, offset, new Uint8Array(source.length)));
            expectInvalid(() => scatterZero(views, offset, source.length));
            expectInvalid(() => scatterSlice(views, offset, source.length));
            expect(flat()).toEqual(model); // a refused call writes nothing
            return;
          }
          scatterCopyFrom(views, offset, source);
          model.set(source, offset);
          expect(flat()).toEqual(model);
          const out = new Uint8Array(source.length);
          scatterCopyTo(views, offset, out);
          expect(out).toEqual(source);
          // A slice is views of the same memory: zeroing it zeroes the original list.
          scatterZero(scatterSlice(views, offset, source.length));
          model.fill(0, offset, offset + source.length);
          expect(flat()).toEqual(model);
          scatterZero(views, offset);
          model.fill(0, offset);
          expect(flat()).toEqual(model);
        },
      ),
    );
  });

  it('refuses short lists, negative and non-integer offsets with TCMU_ERR_BACKEND_INVALID_ARGUMENT', () => {
    expectInvalid(() => scatterCopyFrom([new Uint8Array(4)], 2, new Uint8Array(3)));
    expectInvalid(() => scatterCopyTo([new Uint8Array(4)], 0, new Uint8Array(5)));
    expectInvalid(() => scatterSlice([new Uint8Array(4)], 0, 5));
    expectInvalid(() => scatterCopyFrom([new Uint8Array(4)], -1, new Uint8Array(1)));
    expectInvalid(() => scatterZero([new Uint8Array(4)], 1.5));
    expectInvalid(() => scatterZero([new Uint8Array(4)], 5));
  });

  it('scatterCompare finds the first difference across unequal splits (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 600 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.option(fc.nat()),
        (bytes, cutsA, cutsB, flip) => {
          const other = bytes.slice();
          const at = flip === null ? -1 : flip % bytes.length;
          if (at >= 0) other[at] = other[at]! ^ 0xff;
          expect(scatterCompare(split(bytes.slice(), cutsA), split(other, cutsB), bytes.length)).toBe(at);
        },
      ),
    );
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
    expectInvalid(() => writer.fill(Uint8Array.of(1)));
    const reader = new ScatterCursor(views);
    reader.skip(1);
    const out = new Uint8Array(4);
    reader.take(out);
    expect(out).toEqual(Uint8Array.of(2, 0, 0, 9));
    expect(scatterConcat(reader.views(3))).toEqual(Uint8Array.of(9, 9, 9));
  });
});
