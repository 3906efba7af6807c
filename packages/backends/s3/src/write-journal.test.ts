// The crash-safe cache file: unit tests of the file format, and kill -9 against a real S3 server.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openS3Backend, type S3BackendOptions } from './s3-backend.ts';
import {
  bucket,
  endpoint,
  listKeys,
  pattern,
  removeTestVolumes,
  runChild,
  skipReason,
  testPrefix,
} from './test-support/environment.ts';
import { parseJournal, WriteJournal } from './write-journal.ts';

const dir = mkdtempSync(join(tmpdir(), 'tcmu-journal-'));

describe('write journal file', () => {
  it('replays intact records in order and stops at a torn tail', async () => {
    const path = join(dir, 'unit');
    const { journal, records } = await WriteJournal.open(path, 'vol-a', 1 << 30);
    expect(records).toEqual([]);
    await journal.append('write', 4096, 3, [Uint8Array.of(1, 2), Uint8Array.of(3)]);
    await journal.append('zeroes', 0, 512);
    await journal.close();
    const bytes = readFileSync(path);
    writeFileSync(path, Buffer.concat([bytes, bytes.subarray(bytes.length - 20)])); // a torn append
    const again = await WriteJournal.open(path, 'vol-a', 1 << 30);
    expect(again.records).toEqual([
      { kind: 'write', offset: 4096, length: 3, data: Buffer.from([1, 2, 3]) },
      { kind: 'zeroes', offset: 0, length: 512 },
    ]);
    await again.journal.checkpoint();
    await again.journal.close();
    expect(parseJournal(readFileSync(path))?.records).toEqual([]);
  });

  it('refuses a file of another volume, and a file that is not a journal', async () => {
    const path = join(dir, 'other');
    const { journal } = await WriteJournal.open(path, 'vol-a', 1 << 30);
    await journal.append('zeroes', 0, 512);
    await journal.close();
    await expect(WriteJournal.open(path, 'vol-b', 1 << 30)).rejects.toMatchObject({
      code: 'TCMU_ERR_BACKEND_OPEN',
      message: expect.stringMatching(/holds writes of vol-a, not of vol-b/),
    });
    writeFileSync(join(dir, 'junk'), 'hello');
    await expect(WriteJournal.open(join(dir, 'junk'), 'vol-a', 1 << 30)).rejects.toMatchObject({
      code: 'TCMU_ERR_BACKEND_OPEN',
    });
  });

  it('compacts to the dirty data when it grows past its bound', async () => {
    const path = join(dir, 'compact');
    const { journal } = await WriteJournal.open(path, 'vol-a', 10_000);
    journal.setDirtySource(() => [{ kind: 'write', offset: 0, length: 2, data: Uint8Array.of(9, 9) }]);
    for (let i = 0; i < 5; i++) await journal.append('write', i * 4096, 4096, [new Uint8Array(4096).fill(i)]);
    await journal.close();
    // The third append passed the bound: the file became the dirty data, then took the last two.
    expect(parseJournal(readFileSync(path))?.records.map((r) => [r.offset, r.length])).toEqual([
      [0, 2],
      [3 * 4096, 4096],
      [4 * 4096, 4096],
    ]);
  });
});

const KiB = 1024;
const chunk = 64 * KiB;

if (!endpoint) {
  it.skip(`crash-safe cache file against a real server (skipped: ${skipReason})`, () => {});
} else {
  afterAll(removeTestVolumes);

  describe('crash-safe cache file', () => {
    it('keeps acknowledged writes across kill -9 before their upload; the next open uploads them', async () => {
      const prefix = testPrefix('journal');
      const cacheFile = join(dir, 'crash.journal');
      const options: S3BackendOptions = {
        bucket,
        endpoint,
        prefix,
        chunkSize: chunk,
        size: 16 * chunk,
        cacheFile,
        writeBackDelay: 600_000,
      };
      const writes = [
        { offset: 100, length: 4000, seed: 1 },
        { offset: 3 * chunk + 512, length: 8192, seed: 2 },
        { offset: 5 * chunk, length: chunk - 512, seed: 3 },
        { offset: 120, length: 50, seed: 4 }, // overwrites part of the first: order matters
      ];
      const child = await runChild({ action: 'kill-after-write', options, writes });
      expect(child.code).toBeNull(); // killed
      expect(child.result).toMatchObject({ acknowledged: 4, stats: { puts: 0 } });
      expect(await listKeys(`${prefix}data/`)).toEqual([]); // nothing reached S3
      expect(readFileSync(cacheFile).length).toBeGreaterThan(4000 + 8192 + chunk - 512 + 50);

      // The dead writer's lease stays behind: take it over, with the cache file.
      const backend = await openS3Backend({ ...options, force: true });
      expect(backend.stats().recoveredWrites).toBe(4);
      // What the core reads on a take-over: no lost-cache report needed.
      expect(backend.writesSurviveCrash).toBe(true);
      expect((await listKeys(`${prefix}data/`)).length).toBe(3);
      await backend.close();
      const reader = await openS3Backend({ bucket, endpoint, prefix, readOnly: true });
      const expected = new Uint8Array(16 * chunk);
      for (const w of writes) expected.set(pattern(w.seed, w.length), w.offset);
      const out = new Uint8Array(16 * chunk);
      await reader.read(0, out.length, [out]);
      await reader.close();
      expect(Buffer.compare(Buffer.from(out), Buffer.from(expected))).toBe(0);
      expect(parseJournal(readFileSync(cacheFile))?.records).toEqual([]);
    });

    it('without a cache file the same kill -9 loses the unflushed writes (what the option is for)', async () => {
      const prefix = testPrefix('journal-none');
      const options: S3BackendOptions = {
        bucket,
        endpoint,
        prefix,
        chunkSize: chunk,
        size: 16 * chunk,
        writeBackDelay: 600_000,
      };
      const child = await runChild({
        action: 'kill-after-write',
        options,
        writes: [{ offset: 100, length: 4000, seed: 1 }],
      });
      expect(child.result).toMatchObject({ acknowledged: 1 });
      expect(await listKeys(`${prefix}data/`)).toEqual([]);
      // So a take-over of such a device reports its first flush failed (the core reads this).
      const backend = await openS3Backend({ ...options, force: true });
      expect(backend.writesSurviveCrash).toBe(false);
      await backend.close();
    });
  });
}
