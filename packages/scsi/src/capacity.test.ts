import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeReadCapacity10, encodeReadCapacity16 } from './capacity';

const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');

describe('READ CAPACITY(10)', () => {
  it('returns the last LBA and block length', () => {
    expect(toHex(encodeReadCapacity10({ lastLba: 0x1fffffn, blockLength: 512 }))).toBe(
      '00 1f ff ff 00 00 02 00',
    );
  });
  it('saturates at 0xFFFFFFFF when the last LBA needs READ CAPACITY(16)', () => {
    expect(toHex(encodeReadCapacity10({ lastLba: 0xfffffffen, blockLength: 4096 }))).toBe(
      'ff ff ff fe 00 00 10 00',
    );
    expect(toHex(encodeReadCapacity10({ lastLba: 0xffffffffn, blockLength: 4096 }))).toBe(
      'ff ff ff ff 00 00 10 00',
    );
    expect(toHex(encodeReadCapacity10({ lastLba: 1n << 40n, blockLength: 512 }))).toBe(
      'ff ff ff ff 00 00 02 00',
    );
  });
});

describe('READ CAPACITY(16)', () => {
  it('lays out LBPME, LBPRZ, the physical block exponent and lowest aligned LBA; the rest is zero', () => {
    const data = encodeReadCapacity16({
      lastLba: 0x1_0000_0000n,
      blockLength: 512,
      logicalBlocksPerPhysicalBlockExponent: 3,
      lowestAlignedLba: 0x123,
      provisioningManagement: true,
      readZeros: true,
    });
    expect(toHex(data)).toBe(
      `00 00 00 01 00 00 00 00 00 00 02 00 00 03 c1 23 ${Array(16).fill('00').join(' ')}`,
    );
  });
  it('honours the allocation length (Linux asks for 32, some initiators for 12)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        fc.integer({ min: 0, max: 64 }),
        (lastLba, n) => {
          const full = encodeReadCapacity16({ lastLba, blockLength: 4096 });
          const cut = encodeReadCapacity16({ lastLba, blockLength: 4096 }, n);
          expect(full.length).toBe(32);
          expect([...cut]).toEqual([...full.subarray(0, n)]);
        },
      ),
    );
  });
  it('rejects impossible values with a coded error', () => {
    expect(() => encodeReadCapacity16({ lastLba: 1n << 64n, blockLength: 512 })).toThrow(
      expect.objectContaining({ code: 'TCMU_ERR_SCSI_FIELD_RANGE' }),
    );
    expect(() => encodeReadCapacity10({ lastLba: -1n, blockLength: 512 })).toThrow(
      expect.objectContaining({ code: 'TCMU_ERR_SCSI_FIELD_RANGE' }),
    );
  });
});
