import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isRingError } from './errors';
import { scatterCopyFrom, scatterCopyTo, scatterLength, scatterSlice, scatterZero } from './scatter';

/** A scatter list over one backing buffer (so the flat model is the backing buffer itself, minus gaps). */
function scatterOver(lengths: number[]): { views: Uint8Array[]; flat: () => Uint8Array } {
  const views = lengths.map((length, i) => new Uint8Array(length).fill(i + 1));
  return {
    views,
    flat: () => {
      const out = new Uint8Array(scatterLength(views));
      let at = 0;
      for (const view of views) {
        out.set(view, at);
        at += view.length;
      }
      return out;
    },
  };
}

const lengthsArbitrary = fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 8 });

describe('scatter helpers', () => {
  it('scatterLength sums the views', () => {
    expect(scatterLength([])).toBe(0);
    expect(scatterLength([new Uint8Array(3), new Uint8Array(0), new Uint8Array(5)])).toBe(8);
  });

  it('scatterCopyFrom writes like a flat buffer would, and returns what fitted', () => {
    fc.assert(
      fc.property(
        lengthsArbitrary,
        fc.nat(120),
        fc.uint8Array({ maxLength: 100 }),
        (lengths, offset, source) => {
          const { views, flat } = scatterOver(lengths);
          const model = flat();
          const expected = Math.max(0, Math.min(source.length, model.length - offset));
          if (expected > 0) model.set(source.subarray(0, expected), offset);
          expect(scatterCopyFrom(views, offset, source)).toBe(expected);
          expect(flat()).toEqual(model);
        },
      ),
    );
  });

  it('scatterCopyTo reads like a flat buffer would', () => {
    fc.assert(
      fc.property(lengthsArbitrary, fc.nat(120), fc.nat(100), (lengths, offset, length) => {
        const { views, flat } = scatterOver(lengths);
        const model = flat();
        const target = new Uint8Array(length);
        const expected = Math.max(0, Math.min(length, model.length - offset));
        expect(scatterCopyTo(views, offset, target)).toBe(expected);
        expect(target.subarray(0, expected)).toEqual(model.subarray(offset, offset + expected));
        expect(target.subarray(expected).every((b) => b === 0)).toBe(true);
      }),
    );
  });

  it('scatterZero zeroes a range and nothing else', () => {
    fc.assert(
      fc.property(lengthsArbitrary, fc.nat(120), fc.option(fc.nat(100)), (lengths, offset, length) => {
        const { views, flat } = scatterOver(lengths);
        const model = flat();
        const end = length === null ? model.length : Math.min(model.length, offset + length);
        if (offset < end) model.fill(0, offset, end);
        expect(scatterZero(views, offset, length ?? undefined)).toBe(Math.max(0, end - offset));
        expect(flat()).toEqual(model);
      }),
    );
  });

  it('scatterSlice returns views of the same memory', () => {
    fc.assert(
      fc.property(lengthsArbitrary, fc.nat(120), fc.nat(100), (lengths, offset, length) => {
        const { views, flat } = scatterOver(lengths);
        const model = flat();
        const slice = scatterSlice(views, offset, length);
        const bytes = new Uint8Array(scatterLength(slice));
        scatterCopyTo(slice, 0, bytes);
        expect(bytes).toEqual(model.subarray(offset, offset + length));
        // Writing through the slice writes the original views.
        scatterZero(slice, 0);
        if (bytes.length > 0) model.fill(0, offset, offset + bytes.length);
        expect(flat()).toEqual(model);
      }),
    );
  });

  it('rejects negative offsets with a coded error', () => {
    try {
      scatterCopyFrom([new Uint8Array(4)], -1, new Uint8Array(1));
      expect.unreachable();
    } catch (error) {
      expect(isRingError(error, 'TCMU_ERR_RING_INVALID_ARGUMENT')).toBe(true);
    }
  });
});
