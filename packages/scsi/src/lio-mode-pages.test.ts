import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeModePage, encodeModePage, encodeModeSense, type ModePageName } from './mode-pages';

// Pages a real target (LIO, Linux 6.1) returned; see the fixture's header.
const lio = new Map(
  readFileSync(new URL('./__fixtures__/lio-mode-pages.txt', import.meta.url), 'utf8')
    .split('\n')
    .filter((line) => line.trim() && !line.startsWith('#'))
    .map((line) => {
      const [name, raw] = line.split('|').map((s) => s.trim());
      return [name!, Uint8Array.from(raw!.split(' '), (b) => Number.parseInt(b, 16))] as const;
    }),
);
const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');

describe("LIO's mode pages through our layouts", () => {
  for (const name of ['readWriteErrorRecovery', 'caching', 'control'] as const) {
    it(`${name}: decode then encode reproduces LIO's bytes`, () => {
      const bytes = lio.get(name)!;
      const decoded = decodeModePage(bytes);
      expect(decoded?.name).toBe(name);
      expect(toHex(encodeModePage(name as ModePageName, decoded!.values))).toBe(toHex(bytes));
    });
  }

  it("names LIO's control and caching fields", () => {
    expect(decodeModePage(lio.get('control')!)?.values).toMatchObject({
      gltsd: true,
      queueAlgorithmModifier: 1,
      tas: true,
      busyTimeoutPeriod: 0xffff,
      extendedSelfTestCompletionTime: 30,
      dSense: false,
    });
    expect(decodeModePage(lio.get('caching')!)?.values).toMatchObject({ dra: true, wce: false, rcd: false });
  });

  it('our MODE SENSE(6) page 08h response has the header and block descriptor LIO sends', () => {
    // LIO: mode data length 31 (sg_modes prints the total, 32), medium 0, no WP/DPOFUA, 8-byte descriptor.
    // LIO writes its last LBA (0x1FFFF) as NUMBER OF LOGICAL BLOCKS; passing that value reproduces its bytes
    // (a device should pass the block count, 0x20000).
    const caching = decodeModePage(lio.get('caching')!)!.values;
    const r = encodeModeSense(
      {
        name: 'MODE SENSE(6)',
        dbd: false,
        llbaa: false,
        pc: 0,
        pageCode: 8,
        subpageCode: 0,
        allocationLength: 252,
      },
      {
        pages: { current: { caching }, changeable: {}, default: { caching } },
        dpoFua: false,
        blockDescriptor: { numberOfBlocks: 0x1ffffn, blockLength: 512 },
      },
    );
    expect(r.ok && toHex(r.data)).toBe(
      `1f 00 00 08 ${toHex(lio.get('block-descriptor')!)} ${toHex(lio.get('caching')!)}`,
    );
  });
});
