import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  capacityChanged,
  decodeSense,
  encodeSense,
  formatInProgress,
  hardwareError,
  invalidFieldInCdb,
  invalidFieldInParameterList,
  invalidOpcode,
  lbaOutOfRange,
  maximumSenseLength,
  miscompare,
  parameterListLengthError,
  powerOnReset,
  type SenseInfo,
  SenseKey,
  unrecoveredReadError,
  writeError,
} from './sense';

const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, '').match(/../g) ?? [], (b) => Number.parseInt(b, 16));
const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');

describe('encodeSense: fixed format (SPC-5 §4.4.3)', () => {
  // Byte-exact expectations built from the SPC-5 field tables.
  const cases: Array<[string, SenseInfo, { descriptor?: boolean; deferred?: boolean }, string]> = [
    [
      'INVALID FIELD IN CDB at byte 1 bit 5 (SKSV, C/D, BPV)',
      invalidFieldInCdb(1, 5),
      {},
      '70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 cd 00 01',
    ],
    [
      'INVALID FIELD IN PARAMETER LIST at byte 0x112, no bit',
      invalidFieldInParameterList(0x112),
      {},
      '70 00 05 00 00 00 00 0a 00 00 00 00 26 00 00 80 01 12',
    ],
    [
      'INVALID COMMAND OPERATION CODE (byte 0 bit 7)',
      invalidOpcode(),
      {},
      '70 00 05 00 00 00 00 0a 00 00 00 00 20 00 00 cf 00 00',
    ],
    [
      'UNRECOVERED READ ERROR with LBA 0x1234 (VALID + INFORMATION)',
      unrecoveredReadError(0x1234n),
      {},
      'f0 00 03 00 00 12 34 0a 00 00 00 00 11 00 00 00 00 00',
    ],
    [
      'WRITE ERROR, deferred',
      writeError(),
      { deferred: true },
      '71 00 03 00 00 00 00 0a 00 00 00 00 0c 00 00 00 00 00',
    ],
    [
      'FORMAT IN PROGRESS at one half (progress indication 0x8000)',
      formatInProgress(0.5),
      {},
      '70 00 02 00 00 00 00 0a 00 00 00 00 04 04 00 80 80 00',
    ],
    [
      'MISCOMPARE at byte offset 0x200',
      miscompare(0x200),
      {},
      'f0 00 0e 00 00 02 00 0a 00 00 00 00 1d 00 00 00 00 00',
    ],
    [
      'LBA above 32 bits: fixed format cannot carry it, VALID = 0',
      lbaOutOfRange(0x1_0000_0000n),
      {},
      '70 00 05 00 00 00 00 0a 00 00 00 00 21 00 00 00 00 00',
    ],
    [
      'CAPACITY DATA HAS CHANGED',
      capacityChanged(),
      {},
      '70 00 06 00 00 00 00 0a 00 00 00 00 2a 09 00 00 00 00',
    ],
    ['INTERNAL TARGET FAILURE', hardwareError(), {}, '70 00 04 00 00 00 00 0a 00 00 00 00 44 00 00 00 00 00'],
  ];
  for (const [label, info, options, bytes] of cases) {
    it(label, () => {
      expect(toHex(encodeSense(info, options))).toBe(bytes);
    });
  }
});

describe('encodeSense: descriptor format (SPC-5 §4.4.2)', () => {
  it('INVALID FIELD IN CDB: sense key specific descriptor (02h)', () => {
    expect(toHex(encodeSense(invalidFieldInCdb(1, 5), { descriptor: true }))).toBe(
      '72 05 24 00 00 00 00 08 02 06 00 00 cd 00 01 00',
    );
  });
  it('UNRECOVERED READ ERROR: information descriptor (00h) with a 64-bit LBA', () => {
    expect(toHex(encodeSense(unrecoveredReadError(0x1_0000_0001n), { descriptor: true }))).toBe(
      '72 03 11 00 00 00 00 0c 00 0a 80 00 00 00 00 01 00 00 00 01',
    );
  });
  it('deferred, no descriptors', () => {
    expect(toHex(encodeSense(powerOnReset(), { descriptor: true, deferred: true }))).toBe(
      '73 06 29 00 00 00 00 00',
    );
  });
  it('information, command-specific and sense-key specific together, in order', () => {
    const bytes = encodeSense(
      {
        key: 5,
        asc: 0x24,
        ascq: 0,
        information: 7n,
        commandSpecificInformation: 9n,
        fieldPointer: { commandData: true, byte: 2 },
      },
      { descriptor: true },
    );
    expect(bytes.length).toBe(8 + 12 + 12 + 8);
    expect(bytes[7]).toBe(32);
    expect([bytes[8], bytes[20], bytes[32]]).toEqual([0x00, 0x01, 0x02]);
    expect(bytes.length).toBeLessThanOrEqual(maximumSenseLength);
  });
});

describe('sense constructors follow the scsi-coverage.md mapping', () => {
  it.each([
    [lbaOutOfRange(), SenseKey.IllegalRequest, 0x21, 0x00],
    [invalidFieldInCdb(0), SenseKey.IllegalRequest, 0x24, 0x00],
    [invalidFieldInParameterList(0), SenseKey.IllegalRequest, 0x26, 0x00],
    [parameterListLengthError(), SenseKey.IllegalRequest, 0x1a, 0x00],
    [invalidOpcode(), SenseKey.IllegalRequest, 0x20, 0x00],
    [unrecoveredReadError(), SenseKey.MediumError, 0x11, 0x00],
    [writeError(), SenseKey.MediumError, 0x0c, 0x00],
    [hardwareError(), SenseKey.HardwareError, 0x44, 0x00],
    [miscompare(0), SenseKey.Miscompare, 0x1d, 0x00],
    [capacityChanged(), SenseKey.UnitAttention, 0x2a, 0x09],
    [formatInProgress(0), SenseKey.NotReady, 0x04, 0x04],
    [powerOnReset(), SenseKey.UnitAttention, 0x29, 0x00],
  ])('%o', (info, key, asc, ascq) => {
    expect(info).toMatchObject({ key, asc, ascq });
  });
  it('formatInProgress accepts a fraction or a raw 0..65535 value and clamps', () => {
    expect(formatInProgress(1).progress).toBe(0xffff);
    expect(formatInProgress(0.25).progress).toBe(0x4000);
    expect(formatInProgress(1234).progress).toBe(1234);
    expect(formatInProgress(1e9).progress).toBe(0xffff);
  });
});

describe('decodeSense', () => {
  it('reads back fixed and descriptor sense', () => {
    expect(decodeSense(hex('70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 cd 00 01'))).toMatchObject({
      responseCode: 0x70,
      descriptor: false,
      key: 5,
      asc: 0x24,
      fieldPointer: { commandData: true, byte: 1, bit: 5 },
    });
    expect(decodeSense(hex('72 02 04 04 00 00 00 08 02 06 00 00 80 40 00 00'))).toMatchObject({
      descriptor: true,
      key: 2,
      asc: 4,
      ascq: 4,
      progress: 0x4000,
    });
  });
  it('returns undefined for non-sense and never throws', () => {
    expect(decodeSense(new Uint8Array(0))).toBeUndefined();
    expect(decodeSense(hex('00 00 00'))).toBeUndefined();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        decodeSense(bytes);
      }),
    );
  });

  const senseInfo = fc.record(
    {
      key: fc.integer({ min: 0, max: 15 }),
      asc: fc.integer({ min: 0, max: 255 }),
      ascq: fc.integer({ min: 0, max: 255 }),
      information: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      commandSpecificInformation: fc.bigInt({ min: 1n, max: 0xffff_ffffn }),
    },
    { requiredKeys: ['key', 'asc', 'ascq'] },
  );
  it('encode → decode round trip (descriptor format keeps 64-bit information)', () => {
    fc.assert(
      fc.property(senseInfo, fc.boolean(), (info, deferred) => {
        const decoded = decodeSense(encodeSense(info, { descriptor: true, deferred }));
        expect(decoded).toMatchObject({ ...info, deferred, descriptor: true });
      }),
    );
  });
  it('encode → decode round trip of the field pointer, both formats', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.integer({ min: 0, max: 0xffff }),
        fc.option(fc.integer({ min: 0, max: 7 }), { nil: undefined }),
        fc.boolean(),
        (commandData, byte, bit, descriptor) => {
          const fieldPointer = bit === undefined ? { commandData, byte } : { commandData, byte, bit };
          const decoded = decodeSense(
            encodeSense({ key: 5, asc: 0x24, ascq: 0, fieldPointer }, { descriptor }),
          );
          expect(decoded?.fieldPointer).toEqual(fieldPointer);
        },
      ),
    );
  });
});
