import { describe, expect, it } from 'vitest';
import {
  checkChunkSize,
  chunkHash,
  chunkKey,
  chunkKeyAt,
  chunkListPrefixes,
  encodeMetadata,
  formatName,
  isVolumeObjectKey,
  parseChunkKey,
  parseMetadata,
} from './layout.ts';

describe('chunk keys', () => {
  it('round-trip through parseChunkKey and reject foreign keys', () => {
    for (const index of [0, 1, 255, 256, 65535, 2 ** 32 + 7, 2 ** 40 - 1]) {
      const key = chunkKey('vol/', index);
      expect(key).toMatch(/^vol\/data\/[0-9a-f]{4}\/[0-9a-f]{12}$/);
      expect(parseChunkKey('vol/', key)).toBe(index);
    }
    expect(parseChunkKey('vol/', 'vol/data/0000/000000000001')).toBeUndefined(); // wrong hash
    expect(parseChunkKey('vol/', 'other/data/x')).toBeUndefined();
    expect(parseChunkKey('vol/', 'vol/tcmu-volume.json')).toBeUndefined();
  });

  it('spread evenly over the 16 listing prefixes', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 16_000; i++) {
      const first = chunkHash(i)[0]!;
      counts.set(first, (counts.get(first) ?? 0) + 1);
    }
    expect(counts.size).toBe(16);
    for (const count of counts.values()) expect(count).toBeGreaterThan(800);
    const prefixes = chunkListPrefixes('vol/');
    for (let i = 0; i < 100; i++) expect(prefixes.some((p) => chunkKey('vol/', i).startsWith(p))).toBe(true);
  });
});

describe('isVolumeObjectKey', () => {
  it("counts every object of format 1 and 2 as the volume's own, and nothing else", () => {
    const own = [
      'vol/tcmu-volume.json',
      'vol/tcmu-lease.json',
      'vol/tcmu-request.json',
      'vol/tcmu-reply-1234.json',
      chunkKey('vol/', 7),
      chunkKeyAt('vol/', 7, 3),
      chunkKeyAt('vol/', 2 ** 40 - 1, 0xffffffff),
      `vol/tcmu-clones/snap1/${encodeURIComponent('clones/c1/')}`,
    ];
    for (const key of own) expect(isVolumeObjectKey('vol/', key), key).toBe(true);
    const foreign = [
      'other/tcmu-volume.json',
      'vol/inner/tcmu-volume.json',
      'vol/inner/data/0000/000000000001',
      `${chunkKey('vol/', 7)}.00000000`, // generation 0 is never suffixed
      `${chunkKey('vol/', 7)}.0000001`,
      'vol/data/0000/000000000001', // wrong hash
      'vol/tcmu-clones/snap1/a/b',
      'vol/tcmu-clones/snap1',
      'vol/notes.txt',
    ];
    for (const key of foreign) expect(isVolumeObjectKey('vol/', key), key).toBe(false);
  });
});

describe('volume metadata', () => {
  const good = {
    format: formatName,
    version: 1,
    size: 1 << 20,
    chunkSize: 65536,
    blockSize: 512,
    created: 'now',
  } as const;
  it('round-trips', () => {
    expect(parseMetadata(encodeMetadata(good), 'here')).toEqual(good);
  });
  it('refuses other formats, versions and broken geometry with an Open error', () => {
    const bad = [
      Buffer.from('not json'),
      encodeMetadata({ ...good, format: 'other' as typeof formatName }),
      encodeMetadata({ ...good, version: 3 }),
      encodeMetadata({ ...good, version: 2, compression: 'zstd' as 'deflate' }),
      encodeMetadata({ ...good, version: 2, snapshots: 'x' as unknown as [] }),
      encodeMetadata({ ...good, chunkSize: 3000 }),
      encodeMetadata({ ...good, size: 1000 }),
    ];
    for (const body of bad) {
      expect(() => parseMetadata(body, 'here')).toThrow(
        expect.objectContaining({ code: expect.stringMatching(/OPEN|INVALID/) }),
      );
    }
  });
  it('accepts power-of-two chunk sizes from 4 KiB to 64 MiB only', () => {
    expect(() => checkChunkSize(4096)).not.toThrow();
    expect(() => checkChunkSize(64 << 20)).not.toThrow();
    for (const bad of [2048, 128 << 20, 12288, 0]) expect(() => checkChunkSize(bad)).toThrow(/power of two/);
  });
});
