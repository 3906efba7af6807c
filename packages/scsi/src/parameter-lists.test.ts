import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildUnmapParameterList,
  encodeRequestSense,
  parseFormatUnitParameterList,
  parseUnmapParameterList,
} from './parameter-lists';
import { formatInProgress } from './sense';

const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, '').match(/../g) ?? [], (b) => Number.parseInt(b, 16));
const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');

// sg_unmap --lba=0x1000 --num=8 / Linux sd_setup_unmap_cmnd: header + one descriptor (24 bytes).
const linuxUnmap = '00 16 00 10 00 00 00 00 00 00 00 00 00 00 10 00 00 00 00 08 00 00 00 00';

describe('UNMAP parameter list', () => {
  it('parses what Linux sd / sg_unmap send', () => {
    expect(parseUnmapParameterList(hex(linuxUnmap), 24)).toEqual({
      ok: true,
      descriptors: [{ lba: 0x1000n, count: 8 }],
    });
  });
  it('builds the same bytes', () => {
    expect(toHex(buildUnmapParameterList([{ lba: 0x1000n, count: 8 }]))).toBe(linuxUnmap);
  });
  it('round-trips any descriptor list', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ lba: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), count: fc.nat() }), {
          maxLength: 20,
        }),
        (descriptors) => {
          const list = buildUnmapParameterList(descriptors);
          expect(parseUnmapParameterList(list, list.length)).toEqual({ ok: true, descriptors });
        },
      ),
    );
  });
  it('rejects with the right sense', () => {
    expect(parseUnmapParameterList(hex('00 06 00 00'), 4)).toMatchObject({ ok: false, sense: { asc: 0x1a } });
    expect(parseUnmapParameterList(hex(linuxUnmap), 24, { capacityBlocks: 0x1004n })).toMatchObject({
      ok: false,
      sense: { asc: 0x21, information: 0x1000n },
    });
    expect(parseUnmapParameterList(hex(linuxUnmap), 24, { maximumLbaCount: 4 })).toMatchObject({
      ok: false,
      sense: { asc: 0x26, fieldPointer: { commandData: false, byte: 16 } },
    });
    expect(parseUnmapParameterList(hex(linuxUnmap.replace('00 16 00 10', '00 16 00 20')), 24)).toMatchObject({
      ok: false,
      sense: { asc: 0x1a },
    });
    const three = buildUnmapParameterList([
      { lba: 0n, count: 3 },
      { lba: 10n, count: 3 },
      { lba: 20n, count: 3 },
    ]);
    expect(parseUnmapParameterList(three, three.length, { maximumLbaCount: 6 })).toMatchObject({
      ok: false,
      sense: { asc: 0x26, fieldPointer: { commandData: false, byte: 8 + 32 + 8 } },
    });
    const two = buildUnmapParameterList([
      { lba: 0n, count: 1 },
      { lba: 2n, count: 1 },
    ]);
    expect(parseUnmapParameterList(two, two.length, { maximumDescriptors: 1 })).toMatchObject({ ok: false });
    expect(parseUnmapParameterList(new Uint8Array(0), 0)).toEqual({ ok: true, descriptors: [] });
  });
  it('never throws', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat(200), (data, n) => {
        parseUnmapParameterList(data, n, {
          capacityBlocks: 100n,
          maximumDescriptors: 3,
          maximumLbaCount: 10,
        });
      }),
    );
  });
});

describe('FORMAT UNIT parameter list', () => {
  it('parses the short header sg_format sends (IMMED)', () => {
    expect(parseFormatUnitParameterList(hex('00 02 00 00'), false)).toMatchObject({
      ok: true,
      header: { immed: true, formatOptionsValid: false, defectListLength: 0 },
    });
  });
  it('parses a long header', () => {
    expect(parseFormatUnitParameterList(hex('00 82 00 00 00 00 00 00'), true)).toMatchObject({
      ok: true,
      header: { immed: true, formatOptionsValid: true },
    });
  });
  it('rejects a defect list, an initialization pattern, protection, and a short list', () => {
    expect(parseFormatUnitParameterList(hex('00 00 00 08'), false)).toMatchObject({
      ok: false,
      sense: { asc: 0x26, fieldPointer: { byte: 2 } },
    });
    expect(parseFormatUnitParameterList(hex('00 08 00 00'), false)).toMatchObject({
      ok: false,
      sense: { asc: 0x26, fieldPointer: { byte: 1, bit: 3 } },
    });
    expect(parseFormatUnitParameterList(hex('01 00 00 00'), false)).toMatchObject({ ok: false });
    expect(parseFormatUnitParameterList(hex('00 20 00 00'), false)).toMatchObject({
      ok: false,
      sense: { asc: 0x26, fieldPointer: { byte: 1, bit: 5 } },
    });
    expect(parseFormatUnitParameterList(hex('00 a0 00 00'), false)).toMatchObject({
      ok: true,
      header: { dcrt: true },
    });
    expect(parseFormatUnitParameterList(hex('00 00'), false)).toMatchObject({
      ok: false,
      sense: { asc: 0x1a },
    });
  });
});

describe('REQUEST SENSE data', () => {
  it('returns NO SENSE when nothing is pending, in the requested format', () => {
    expect(toHex(encodeRequestSense(undefined, { desc: false, allocationLength: 252 }))).toBe(
      '70 00 00 00 00 00 00 0a 00 00 00 00 00 00 00 00 00 00',
    );
    expect(toHex(encodeRequestSense(undefined, { desc: true, allocationLength: 252 }))).toBe(
      '72 00 00 00 00 00 00 00',
    );
  });
  it('reports format progress and honours the allocation length', () => {
    expect(toHex(encodeRequestSense(formatInProgress(0.5), { desc: false, allocationLength: 18 }))).toBe(
      '70 00 02 00 00 00 00 0a 00 00 00 00 04 04 00 80 80 00',
    );
    expect(encodeRequestSense(formatInProgress(0.5), { desc: false, allocationLength: 8 }).length).toBe(8);
  });
});
