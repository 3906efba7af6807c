import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  deriveNaaIdentifier,
  encodeBlockDeviceCharacteristicsVpd,
  encodeBlockLimitsVpd,
  encodeDeviceIdentificationVpd,
  encodeLogicalBlockProvisioningVpd,
  encodeNaaIdentifier,
  encodeStandardInquiry,
  encodeSupportedVpdPages,
  encodeUnitSerialNumberVpd,
} from './inquiry';

const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');
const ascii = (b: Uint8Array) => String.fromCharCode(...b);

const identity = { vendor: 'TCMU', product: 'memory disk', revision: '0.1' };

describe('standard INQUIRY', () => {
  it('lays out the fields, claims SPC-4 (VERSION 06h) with SAM-5/SPC-4/SBC-3/SBC-4 descriptors, zeroes the rest', () => {
    const data = encodeStandardInquiry(identity);
    expect(data.length).toBe(96);
    expect(toHex(data.subarray(0, 8))).toBe('00 00 06 12 5b 00 00 02');
    expect(ascii(data.subarray(8, 36))).toBe('TCMU    memory disk     0.1 ');
    expect([...data.subarray(36, 58)].every((b) => b === 0)).toBe(true);
    expect(toHex(data.subarray(58, 66))).toBe('00 a0 04 60 04 c0 06 00');
    expect([...data.subarray(66)].every((b) => b === 0)).toBe(true);
  });

  it('takes another VERSION and other descriptors when asked', () => {
    const data = encodeStandardInquiry({ ...identity, version: 0x07, versionDescriptors: [0x05c0] });
    expect(data[2]).toBe(0x07);
    expect(toHex(data.subarray(58, 62))).toBe('05 c0 00 00');
  });

  it('sets TPGS, 3PC, RMB, PROTECT, MULTIP, the peripheral byte and a 36-byte length on request', () => {
    const data = encodeStandardInquiry({
      ...identity,
      targetPortGroupSupport: 1,
      thirdPartyCopy: true,
      removable: true,
      multiPort: true,
      peripheralQualifier: 1,
      length: 36,
    });
    expect(data.length).toBe(36);
    expect(toHex(data.subarray(0, 8))).toBe('20 80 06 12 1f 18 10 02');
  });

  it('truncates to the allocation length without changing ADDITIONAL LENGTH', () => {
    const full = encodeStandardInquiry(identity);
    for (const n of [0, 1, 5, 36, 95, 96, 255]) {
      const cut = encodeStandardInquiry(identity, n);
      expect(cut.length).toBe(Math.min(n, 96));
      expect([...cut]).toEqual([...full.subarray(0, n)]);
    }
  });

  it('rejects text that is not printable ASCII or too long, with a coded error', () => {
    expect(() => encodeStandardInquiry({ ...identity, vendor: 'TOOLONGVENDOR' })).toThrow(
      expect.objectContaining({ code: 'TCMU_ERR_SCSI_FIELD_RANGE' }),
    );
    expect(() => encodeStandardInquiry({ ...identity, product: 'dïsk' })).toThrow(
      expect.objectContaining({ code: 'TCMU_ERR_SCSI_FIELD_RANGE' }),
    );
    expect(() => encodeStandardInquiry({ ...identity, length: 20 })).toThrow(
      expect.objectContaining({ code: 'TCMU_ERR_SCSI_FIELD_RANGE' }),
    );
  });
});

describe('VPD pages', () => {
  it('00h lists pages ascending, de-duplicated, with 00h', () => {
    expect(toHex(encodeSupportedVpdPages([0xb2, 0x80, 0x83, 0xb0, 0xb1, 0x83]))).toBe(
      '00 00 00 06 00 80 83 b0 b1 b2',
    );
  });

  it('80h carries the serial as ASCII', () => {
    expect(toHex(encodeUnitSerialNumberVpd('abc123'))).toBe('00 80 00 06 61 62 63 31 32 33');
  });

  it('83h: NAA 6 (IEEE Registered Extended) then T10 vendor ID, relative port, port group', () => {
    const data = encodeDeviceIdentificationVpd({
      naa: {
        naa: 6,
        companyId: 0x001405,
        vendorSpecificIdentifier: 0x123456789n,
        vendorSpecificIdentifierExtension: 0x0102030405060708n,
      },
      t10VendorId: { vendor: 'LIO-ORG', vendorSpecific: 'disk0' },
      relativeTargetPort: 1,
      targetPortGroup: 0,
    });
    const expected = [
      '00 83 00 35',
      '01 03 00 10 60 01 40 51 23 45 67 89 01 02 03 04 05 06 07 08',
      '02 01 00 0d 4c 49 4f 2d 4f 52 47 20 64 69 73 6b 30',
      '01 14 00 04 00 00 00 01',
      '01 15 00 04 00 00 00 00',
    ].join(' ');
    expect(toHex(data)).toBe(expected);
  });

  it('83h: NAA 5 is 8 bytes', () => {
    expect(
      toHex(encodeNaaIdentifier({ naa: 5, companyId: 0xabcdef, vendorSpecificIdentifier: 0xf00000001n })),
    ).toBe('5a bc de ff 00 00 00 01');
  });

  it('deriveNaaIdentifier is stable and distinct per device', () => {
    expect(deriveNaaIdentifier('disk-a')).toEqual(deriveNaaIdentifier('disk-a'));
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        fc.pre(a !== b);
        const x = encodeNaaIdentifier(deriveNaaIdentifier(a));
        const y = encodeNaaIdentifier(deriveNaaIdentifier(b));
        expect(toHex(x)).not.toBe(toHex(y));
        expect(x[0]! >> 4).toBe(6);
      }),
    );
  });

  it('B0h block limits: 64 bytes, fields at their SBC-4 offsets', () => {
    const data = encodeBlockLimitsVpd({
      maximumCompareAndWriteLength: 1,
      optimalTransferLengthGranularity: 8,
      maximumTransferLength: 0x2000,
      optimalTransferLength: 0x800,
      maximumUnmapLbaCount: 0xffffffff,
      maximumUnmapBlockDescriptorCount: 0x100,
      optimalUnmapGranularity: 8,
      unmapGranularityAlignment: 0,
      maximumWriteSameLength: 0x10000n,
    });
    expect(data.length).toBe(64);
    expect(toHex(data.subarray(0, 20))).toBe('00 b0 00 3c 00 01 00 08 00 00 20 00 00 00 08 00 00 00 00 00');
    expect(toHex(data.subarray(20, 48))).toBe(
      'ff ff ff ff 00 00 01 00 00 00 00 08 80 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00',
    );
    expect([...data.subarray(48)].every((b) => b === 0)).toBe(true);
  });

  it('B1h block device characteristics: non-rotating by default', () => {
    const data = encodeBlockDeviceCharacteristicsVpd();
    expect(data.length).toBe(64);
    expect(toHex(data.subarray(0, 9))).toBe('00 b1 00 3c 00 01 00 00 00');
    expect([...data.subarray(6)].every((b) => b === 0)).toBe(true);
  });

  it('B2h logical block provisioning: LBPU, LBPWS, LBPWS10, LBPRZ, thin', () => {
    expect(
      toHex(
        encodeLogicalBlockProvisioningVpd({
          unmap: true,
          writeSameUnmap: true,
          writeSame10Unmap: true,
          readZeros: 1,
        }),
      ),
    ).toBe('00 b2 00 04 00 e4 02 00');
    expect(toHex(encodeLogicalBlockProvisioningVpd({}))).toBe('00 b2 00 04 00 00 00 00');
  });

  it('every page keeps PAGE LENGTH when truncated', () => {
    const pages = [
      encodeSupportedVpdPages([0x80, 0x83]),
      encodeUnitSerialNumberVpd('serial-0001'),
      encodeDeviceIdentificationVpd({
        naa: deriveNaaIdentifier('x'),
        t10VendorId: { vendor: 'A', vendorSpecific: 'B' },
      }),
      encodeBlockLimitsVpd({ maximumTransferLength: 1 }),
      encodeBlockDeviceCharacteristicsVpd(),
      encodeLogicalBlockProvisioningVpd({ unmap: true }),
    ];
    for (const page of pages) {
      expect((page[2]! << 8) | page[3]!).toBe(page.length - 4);
    }
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), (n) => {
        const cut = encodeBlockLimitsVpd({ maximumTransferLength: 1 }, n);
        expect(cut.length).toBe(Math.min(n, 64));
        if (n >= 4) expect(cut[3]).toBe(0x3c);
      }),
    );
  });
});
