import { describe, expect, it } from 'vitest';
import { encodeLbaStatus, ProvisioningStatus } from './lba-status';

const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');

describe('GET LBA STATUS parameter data (SBC-4 §5.8.2)', () => {
  const descriptors = [
    { lba: 0n, length: 8, status: ProvisioningStatus.Mapped },
    { lba: 8n, length: 0x100, status: ProvisioningStatus.Deallocated },
  ];
  it('8-byte header with PARAMETER DATA LENGTH, then 16-byte descriptors', () => {
    expect(toHex(encodeLbaStatus(descriptors))).toBe(
      [
        '00 00 00 24 00 00 00 00',
        '00 00 00 00 00 00 00 00 00 00 00 08 00 00 00 00',
        '00 00 00 00 00 00 00 08 00 00 01 00 01 00 00 00',
      ].join(' '),
    );
  });
  it('truncation to the allocation length keeps PARAMETER DATA LENGTH (sg_get_lba_status asks for 24)', () => {
    const cut = encodeLbaStatus(descriptors, 24);
    expect(cut.length).toBe(24);
    expect(cut[3]).toBe(0x24);
  });
  it('an empty list is a bare header', () => {
    expect(toHex(encodeLbaStatus([]))).toBe('00 00 00 04 00 00 00 00');
  });
});
