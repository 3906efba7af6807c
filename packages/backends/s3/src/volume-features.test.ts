import { describe, expect, it } from 'vitest';
import { unneededGenerations } from './chunk-space.ts';
import { chunkKey, chunkKeyAt, parseChunkKeyAt } from './layout.ts';
import { splitSnapshotPrefix } from './volume-features.ts';

describe('generation keys', () => {
  it('generation 0 is the format-1 key; later generations add a suffix; both parse back', () => {
    expect(chunkKeyAt('v/', 5, 0)).toBe(chunkKey('v/', 5));
    expect(chunkKeyAt('v/', 5, 3)).toBe(`${chunkKey('v/', 5)}.00000003`);
    for (const [index, generation] of [
      [0, 0],
      [5, 3],
      [2 ** 32 + 1, 0xffffffff],
    ] as const) {
      expect(parseChunkKeyAt('v/', chunkKeyAt('v/', index, generation))).toEqual({ index, generation });
    }
    expect(parseChunkKeyAt('v/', `${chunkKey('v/', 5)}.00000000`)).toBeUndefined();
    expect(parseChunkKeyAt('v/', `${chunkKey('v/', 5)}.xyz`)).toBeUndefined();
    expect(parseChunkKeyAt('v/', 'v/tcmu-volume.json')).toBeUndefined();
  });

  it('vol@snap names a snapshot; other prefixes pass through', () => {
    expect(splitSnapshotPrefix('a/vol@s1/')).toEqual({ prefix: 'a/vol/', snapshot: 's1' });
    expect(splitSnapshotPrefix('a/vol/')).toEqual({ prefix: 'a/vol/' });
    expect(() => splitSnapshotPrefix('vol@bad name/')).toThrow(/snapshot name/);
    expect(splitSnapshotPrefix('a/@s1/')).toEqual({ prefix: 'a/@s1/' });
    expect(() => splitSnapshotPrefix('a/..@s1/')).toThrow(/"\.\." segment/);
    expect(() => splitSnapshotPrefix('.@s1/')).toThrow(/"\." segment/);
  });
});

describe('which generations a chunk still needs', () => {
  const snap = (generation: number) => ({ name: `s${generation}`, generation, created: '' });
  it('keeps the newest object of each view (current and every snapshot), drops the rest', () => {
    const g = (...gens: number[]) => new Map(gens.map((x) => [x, 1]));
    expect(unneededGenerations(g(0, 2), 2, [])).toEqual([0]);
    expect(unneededGenerations(g(0, 2), 2, [snap(0)])).toEqual([]);
    expect(unneededGenerations(g(0, 1, 3), 3, [snap(1)])).toEqual([0]);
    expect(unneededGenerations(g(0, 1, 3), 3, [snap(2)])).toEqual([0]);
    expect(unneededGenerations(g(0, 1, 3), 3, [snap(0), snap(2)])).toEqual([]);
    expect(unneededGenerations(g(4), 4, [snap(1)])).toEqual([]);
  });
});

describe('feature options on the volume URL', () => {
  it('parses compress, key_file, key_env, stats_file and cache_file (paths and names, never keys)', async () => {
    const { parseS3Url } = await import('./url.ts');
    expect(
      parseS3Url(
        's3://bkt/v@s1?compress=deflate&key_file=/etc/k&key_env=VOLKEY&stats_file=/run/s.json&cache_file=/var/c',
      ),
    ).toMatchObject({
      bucket: 'bkt',
      prefix: 'v@s1/',
      compression: 'deflate',
      keyFile: '/etc/k',
      keyEnv: 'VOLKEY',
      statsFile: '/run/s.json',
      cacheFile: '/var/c',
    });
    expect(() => parseS3Url('s3://bkt/v?compress=zstd')).toThrow(/zstd is not available/);
  });
});
