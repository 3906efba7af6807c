import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeCdb } from './decode-cdb';

// CDBs the real Linux initiator stack sent (kernel tracepoint capture; see the file's header).
const captured = readFileSync(new URL('./__fixtures__/linux-captured-cdbs.txt', import.meta.url), 'utf8')
  .split('\n')
  .filter((line) => line.trim() && !line.startsWith('#'))
  .map((line) => {
    const [label, raw] = line.split('|').map((s) => s.trim());
    return {
      label: label!,
      raw: raw!,
      bytes: Uint8Array.from(raw!.split(' '), (b) => Number.parseInt(b, 16)),
    };
  });

const find = (raw: string) => decodeCdb(captured.find((c) => c.raw === raw)!.bytes);

describe('CDBs captured from Linux 6.1 and sg3_utils 1.46 (__fixtures__/linux-captured-cdbs.txt)', () => {
  it('holds a real capture', () => {
    expect(captured.length).toBeGreaterThan(100);
    expect(new Set(captured.map((c) => c.bytes[0])).size).toBeGreaterThan(20);
  });

  it('every captured CDB decodes, with its length as sent', () => {
    for (const { label, raw, bytes } of captured) {
      const d = decodeCdb(bytes);
      expect(d.ok, `${label}: ${raw}`).toBe(true);
      if (d.ok) expect(d.cdbLength, `${label}: ${raw}`).toBe(bytes.length);
    }
  });

  it('decodes what the kernel sends when a LUN appears', () => {
    expect(find('12 00 00 00 24 00')).toMatchObject({ name: 'INQUIRY', evpd: false, allocationLength: 36 });
    expect(find('12 01 00 00 04 00')).toMatchObject({
      name: 'INQUIRY',
      evpd: true,
      pageCode: 0,
      allocationLength: 4,
    });
    expect(find('9e 10 00 00 00 00 00 00 00 00 00 00 00 20 00 00')).toMatchObject({
      name: 'READ CAPACITY(16)',
      allocationLength: 32,
    });
    expect(find('1a 00 3f 00 04 00')).toMatchObject({
      name: 'MODE SENSE(6)',
      pageCode: 0x3f,
      allocationLength: 4,
    });
    expect(find('1a 00 08 00 20 00')).toMatchObject({
      name: 'MODE SENSE(6)',
      pageCode: 8,
      allocationLength: 32,
    });
    expect(find('a3 0c 01 12 00 00 00 00 00 0a 00 00')).toMatchObject({
      name: 'REPORT SUPPORTED OPERATION CODES',
      reportingOptions: 1,
      requestedOpcode: 0x12,
      allocationLength: 10,
    });
  });

  it('decodes what sg3_utils and mkfs send', () => {
    expect(find('5a 00 3f 00 00 00 00 10 00 00')).toMatchObject({
      name: 'MODE SENSE(10)',
      allocationLength: 4096,
    });
    expect(find('42 00 00 00 00 00 00 00 18 00')).toMatchObject({ name: 'UNMAP', parameterListLength: 24 });
    expect(find('93 08 00 00 00 00 00 00 10 00 00 00 00 10 00 00')).toMatchObject({
      name: 'WRITE SAME(16)',
      unmap: true,
      lba: 0x1000n,
      transferLength: 16,
    });
    expect(find('41 00 00 01 ff 80 00 00 80 00')).toMatchObject({
      name: 'WRITE SAME(10)',
      lba: 0x1ff80n,
      transferLength: 128,
      unmap: false,
    });
    expect(find('89 00 00 00 00 00 00 00 00 20 00 00 00 01 00 00')).toMatchObject({
      name: 'COMPARE AND WRITE',
      lba: 0x20n,
      transferLength: 1,
    });
    expect(find('91 02 00 00 00 00 00 00 10 00 00 00 00 08 00 00')).toMatchObject({
      name: 'SYNCHRONIZE CACHE(16)',
      immed: true,
    });
    expect(find('8f 00 00 00 00 00 00 00 01 00 00 00 00 08 00 00')).toMatchObject({
      name: 'VERIFY(16)',
      bytchk: 0,
      lba: 0x100n,
      transferLength: 8,
    });
    expect(find('9e 12 00 00 00 00 00 00 00 00 00 00 00 18 00 00')).toMatchObject({
      name: 'GET LBA STATUS',
      allocationLength: 24,
    });
    expect(find('a3 0c 80 00 00 00 00 00 20 00 00 00')).toMatchObject({ rctd: true, allocationLength: 8192 });
    expect(find('2a 00 00 00 00 00 00 00 80 00')).toMatchObject({ name: 'WRITE(10)', transferLength: 128 });
  });
});
