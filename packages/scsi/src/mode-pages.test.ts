import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildCdb } from './build-cdb';
import type { ModeSelectCdb, ModeSenseCdb } from './cdb-types';
import { decodeCdb } from './decode-cdb';
import {
  decodeModePage,
  encodeModePage,
  encodeModeSense,
  type ModePageSets,
  parseModeSelect,
} from './mode-pages';

const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, '').match(/../g) ?? [], (b) => Number.parseInt(b, 16));
const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');
const zeros = (n: number) => Array(n).fill('00').join(' ');

const pages: ModePageSets = {
  current: {
    readWriteErrorRecovery: {},
    caching: { wce: true },
    control: { qerr: 0, busyTimeoutPeriod: 0xffff },
  },
  changeable: { caching: { wce: true }, control: { dSense: true } },
  default: { readWriteErrorRecovery: {}, caching: { wce: true }, control: {} },
};
const device = { pages, blockDescriptor: { numberOfBlocks: 0x800n, blockLength: 512 } };

function sense(cdbHex: string): ModeSenseCdb {
  const d = decodeCdb(hex(cdbHex));
  if (!d.ok || (d.name !== 'MODE SENSE(6)' && d.name !== 'MODE SENSE(10)')) throw new Error('bad test CDB');
  return d;
}

describe('mode page encodings (SBC-4 §6.5, SPC-5 §7.5.8)', () => {
  it('01h is 12 bytes, 08h 20 bytes, 0Ah 12 bytes, fields in place', () => {
    expect(toHex(encodeModePage('readWriteErrorRecovery', { awre: true, readRetryCount: 3 }))).toBe(
      `01 0a 80 03 ${zeros(8)}`,
    );
    expect(toHex(encodeModePage('caching', { wce: true, rcd: true }, { parametersSavable: true }))).toBe(
      `88 12 05 00 ${zeros(16)}`,
    );
    expect(toHex(encodeModePage('control', { dSense: true, qerr: 1, busyTimeoutPeriod: 0x1234 }))).toBe(
      '0a 0a 04 02 00 00 00 00 12 34 00 00',
    );
  });
  it('decodeModePage reads back what encodeModePage wrote', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 0xffff }), (wce, rcd, size) => {
        const decoded = decodeModePage(encodeModePage('caching', { wce, rcd, cacheSegmentSize: size }));
        expect(decoded).toMatchObject({ name: 'caching', values: { wce, rcd, cacheSegmentSize: size } });
      }),
    );
    expect(decodeModePage(hex('1c 0a 00'))).toBeUndefined();
  });
});

describe('encodeModeSense', () => {
  it('MODE SENSE(6) page 08h with a short block descriptor (sg_modes -6 -p 8)', () => {
    const r = encodeModeSense(sense('1a 00 08 00 ff 00'), device);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(toHex(r.data)).toBe(`1f 00 10 08 00 00 08 00 00 00 02 00 08 12 04 00 ${zeros(16)}`);
  });

  it('DBD drops the block descriptor; WP sets bit 7 of the device-specific parameter', () => {
    const r = encodeModeSense(sense('1a 08 08 00 ff 00'), { ...device, writeProtect: true });
    expect(r.ok && toHex(r.data.subarray(0, 6))).toBe('17 00 90 00 08 12');
  });

  it('MODE SENSE(10), all pages, LLBAA: long descriptor, pages in page-code order', () => {
    const r = encodeModeSense(sense('5a 10 3f 00 00 00 00 10 00 00'), device);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.data.length).toBe(8 + 16 + 12 + 20 + 12);
    expect(toHex(r.data.subarray(0, 24))).toBe(
      '00 42 00 10 01 00 00 10 00 00 00 00 00 00 08 00 00 00 00 00 00 00 02 00',
    );
    expect([r.data[24], r.data[36], r.data[56]]).toEqual([0x01, 0x08, 0x0a]);
    expect(toHex(r.data.subarray(56))).toBe('0a 0a 00 00 00 00 00 00 ff ff 00 00');
  });

  it('MODE SENSE(10) without LLBAA uses the short descriptor; above 32 bits the count saturates', () => {
    const r = encodeModeSense(sense('5a 00 08 00 00 00 00 02 00 00'), {
      ...device,
      blockDescriptor: { numberOfBlocks: 0x1_0000_0000n, blockLength: 4096 },
    });
    expect(r.ok && toHex(r.data.subarray(0, 16))).toBe('00 22 00 10 00 00 00 08 ff ff ff ff 00 00 10 00');
  });

  it('page control: changeable values are masks, default values, saved unsupported → 05/39 00', () => {
    const changeable = encodeModeSense(sense('1a 08 48 00 ff 00'), device);
    expect(changeable.ok && toHex(changeable.data)).toBe(`17 00 10 00 08 12 04 00 ${zeros(16)}`);
    const control = encodeModeSense(sense('1a 08 4a 00 ff 00'), device);
    expect(control.ok && toHex(control.data)).toBe('0f 00 10 00 0a 0a 04 00 00 00 00 00 00 00 00 00');
    const defaults = encodeModeSense(sense('1a 08 8a 00 ff 00'), device);
    expect(defaults.ok && toHex(defaults.data.subarray(4))).toBe(`0a 0a ${zeros(10)}`);
    expect(encodeModeSense(sense('1a 08 c8 00 ff 00'), device)).toEqual({
      ok: false,
      sense: { key: 5, asc: 0x39, ascq: 0, fieldPointer: { commandData: true, byte: 2, bit: 7 } },
    });
  });

  it('with saved values the pages carry PS', () => {
    const r = encodeModeSense(sense('1a 08 c8 00 ff 00'), {
      ...device,
      pages: { ...pages, saved: pages.current },
    });
    expect(r.ok && toHex(r.data.subarray(4, 7))).toBe('88 12 04');
  });

  it('subpages: 00h and FFh accepted, others and unknown pages rejected with the field pointer', () => {
    expect(encodeModeSense(sense('1a 08 08 ff ff 00'), device).ok).toBe(true);
    expect(encodeModeSense(sense('1a 08 3f ff ff 00'), device).ok).toBe(true);
    expect(encodeModeSense(sense('1a 08 08 01 ff 00'), device)).toMatchObject({
      ok: false,
      sense: { asc: 0x24, fieldPointer: { byte: 3, bit: 7 } },
    });
    expect(encodeModeSense(sense('1a 08 1c 00 ff 00'), device)).toMatchObject({
      ok: false,
      sense: { asc: 0x24, fieldPointer: { byte: 2, bit: 5 } },
    });
    expect(encodeModeSense(sense('1a 08 3f 01 ff 00'), device)).toMatchObject({ ok: false });
  });

  it('truncates to the allocation length without changing MODE DATA LENGTH (Linux asks for 4 bytes first)', () => {
    const r = encodeModeSense(sense('1a 00 3f 00 04 00'), device);
    expect(r.ok && toHex(r.data)).toBe('37 00 10 08');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), (n) => {
        const full = encodeModeSense(sense('5a 00 3f 00 00 00 00 ff ff 00'), device);
        const cdb = buildCdb({ name: 'MODE SENSE(10)', pageCode: 0x3f, allocationLength: n });
        const cut = encodeModeSense(sense(toHex(cdb)), device);
        if (!full.ok || !cut.ok) throw new Error('unexpected');
        expect([...cut.data]).toEqual([...full.data.subarray(0, n)]);
      }),
      { numRuns: 200 },
    );
  });
});

function select(cdbHex: string): ModeSelectCdb {
  const d = decodeCdb(hex(cdbHex));
  if (!d.ok || (d.name !== 'MODE SELECT(6)' && d.name !== 'MODE SELECT(10)')) throw new Error('bad test CDB');
  return d;
}

const selectDevice = {
  current: pages.current,
  changeable: pages.changeable,
  blockDescriptor: device.blockDescriptor,
};
// What Linux sd sends to turn the write cache off: MODE SELECT(6) PF, header + caching page (PS cleared).
const linuxCacheOff = hex(`00 00 00 00 08 12 00 00 ${zeros(16)}`);

describe('parseModeSelect', () => {
  it('accepts a change of a changeable bit (Linux sd cache_type "write through")', () => {
    const r = parseModeSelect(select('15 10 00 00 18 00'), linuxCacheOff, selectDevice);
    expect(r).toMatchObject({ ok: true, save: false, pages: { caching: { wce: false, rcd: false } } });
  });

  it('accepts a MODE SELECT(10) with a block descriptor of the right block length', () => {
    const list = hex(`00 00 00 00 00 00 00 08 00 00 08 00 00 00 02 00 0a 0a 04 00 00 00 00 00 ff ff 00 00`);
    const r = parseModeSelect(select('55 10 00 00 00 00 00 00 1c 00'), list, selectDevice);
    expect(r).toMatchObject({
      ok: true,
      blockDescriptor: { numberOfBlocks: 0x800n, blockLength: 512 },
      pages: { control: { dSense: true } },
    });
  });

  const errors: Array<[string, string, string, Record<string, unknown>]> = [
    [
      'a bit that is not changeable (RCD)',
      '15 10 00 00 18 00',
      `00 00 00 00 08 12 05 00 ${zeros(16)}`,
      { asc: 0x26, fieldPointer: { commandData: false, byte: 6, bit: 0 } },
    ],
    [
      'a wrong PAGE LENGTH',
      '15 10 00 00 18 00',
      `00 00 00 00 08 10 04 00 ${zeros(16)}`,
      { asc: 0x26, fieldPointer: { commandData: false, byte: 5, bit: 7 } },
    ],
    [
      'an unsupported page',
      '15 10 00 00 18 00',
      `00 00 00 00 1c 12 04 00 ${zeros(16)}`,
      { asc: 0x26, fieldPointer: { commandData: false, byte: 4, bit: 5 } },
    ],
    [
      'a subpage format page',
      '15 10 00 00 18 00',
      `00 00 00 00 48 01 00 10 ${zeros(16)}`,
      { asc: 0x26, fieldPointer: { commandData: false, byte: 4, bit: 6 } },
    ],
    [
      'a nonzero MODE DATA LENGTH',
      '15 10 00 00 18 00',
      `17 00 00 00 08 12 04 00 ${zeros(16)}`,
      { asc: 0x26, fieldPointer: { commandData: false, byte: 0, bit: 4 } },
    ],
    ['a truncated page', '15 10 00 00 14 00', `00 00 00 00 08 12 04 00 ${zeros(16)}`, { asc: 0x1a }],
    ['a list shorter than the header', '15 10 00 00 02 00', '00 00', { asc: 0x1a }],
    [
      'PF = 0',
      '15 00 00 00 18 00',
      `00 00 00 00 08 12 04 00 ${zeros(16)}`,
      { asc: 0x24, fieldPointer: { commandData: true, byte: 1, bit: 4 } },
    ],
    [
      'SP = 1 without saved pages',
      '15 11 00 00 18 00',
      `00 00 00 00 08 12 04 00 ${zeros(16)}`,
      { asc: 0x24, fieldPointer: { commandData: true, byte: 1, bit: 0 } },
    ],
    [
      'a bad BLOCK DESCRIPTOR LENGTH',
      '15 10 00 00 18 00',
      `00 00 00 04 00 00 00 00 ${zeros(16)}`,
      { asc: 0x26, fieldPointer: { commandData: false, byte: 3 } },
    ],
    [
      'a different block length',
      '55 10 00 00 00 00 00 00 10 00',
      '00 00 00 00 00 00 00 08 00 00 08 00 00 00 10 00',
      { asc: 0x26, fieldPointer: { commandData: false, byte: 13 } },
    ],
  ];
  for (const [label, cdb, list, expected] of errors) {
    it(`rejects ${label}`, () => {
      const r = parseModeSelect(select(cdb), hex(list), selectDevice);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.sense).toMatchObject({ key: 5, ...expected });
    });
  }

  it('an empty list is a no-op', () => {
    expect(parseModeSelect(select('15 10 00 00 00 00'), new Uint8Array(0), selectDevice)).toEqual({
      ok: true,
      pages: {},
      save: false,
    });
  });

  it('MODE SENSE data sent back through MODE SELECT (header cleared) round-trips', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), (wce, dSense) => {
        const current = { ...pages.current, caching: { wce }, control: { ...pages.current.control, dSense } };
        const r = encodeModeSense(sense('5a 08 3f 00 00 00 00 ff ff 00'), { pages: { ...pages, current } });
        if (!r.ok) throw new Error('unexpected');
        const list = r.data.slice();
        list.fill(0, 0, 4); // MODE DATA LENGTH is reserved in MODE SELECT; the device-specific byte is ignored
        const parsed = parseModeSelect(
          { name: 'MODE SELECT(10)', pf: true, sp: false, parameterListLength: list.length },
          list,
          { current, changeable: pages.changeable },
        );
        expect(parsed).toMatchObject({ ok: true, pages: { caching: { wce }, control: { dSense } } });
      }),
    );
  });

  it('never throws on random parameter lists', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.boolean(), (list, ten) => {
        const request = ten
          ? { name: 'MODE SELECT(10)' as const, pf: true, sp: false, parameterListLength: list.length }
          : { name: 'MODE SELECT(6)' as const, pf: true, sp: false, parameterListLength: list.length };
        const r = parseModeSelect(request, list, selectDevice);
        if (!r.ok) expect([0x1a, 0x26]).toContain(r.sense.asc);
      }),
      { numRuns: 2000 },
    );
  });
});
