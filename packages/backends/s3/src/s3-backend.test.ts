// S3-specific behaviour of the backend, against a real S3 server (the local Ceph RGW).
import { afterAll, describe, expect, it } from 'vitest';
import { openObjectStore } from './http-object-store.ts';
import { chunkKey, leaseName, md5MetadataKey, metadataName, segmentMd5MetadataKey } from './layout.ts';
import { openS3Backend, type S3BackendOptions } from './s3-backend.ts';
import {
  bucket,
  code,
  endpoint,
  getObject,
  listKeys,
  pattern,
  putObject,
  removeTestVolumes,
  runChild,
  skipReason,
  testPrefix,
} from './test-support/environment.ts';
import { FaultyStore } from './test-support/faulty-store.ts';

const KiB = 1024;
const chunk = 64 * KiB;

function options(prefix: string, extra: Partial<S3BackendOptions> = {}): S3BackendOptions {
  return { bucket, endpoint: endpoint!, prefix, chunkSize: chunk, size: 4 * 1024 * KiB, ...extra };
}

const chunkKeys = (prefix: string) => listKeys(`${prefix}data/`);

if (!endpoint) {
  it.skip(`s3 backend against a real server (skipped: ${skipReason})`, () => {});
} else {
  afterAll(removeTestVolumes);

  describe('s3 backend: sparse layout', () => {
    it('stores only chunks with non-zero data, verified by listing the bucket', async () => {
      const prefix = testPrefix('sparse');
      const backend = await openS3Backend(options(prefix));
      try {
        await backend.write(chunk + 100, [pattern(1, 1000)]); // chunk 1, partial
        await backend.write(3 * chunk, [new Uint8Array(chunk)]); // chunk 3, all zeros: never stored
        await backend.write(5 * chunk, [pattern(2, chunk)]); // chunk 5, whole
        await backend.write(7 * chunk + 5, [new Uint8Array(100)]); // chunk 7, zeros into nothing
        await backend.flush();
        expect(await chunkKeys(prefix)).toEqual([chunkKey(prefix, 1), chunkKey(prefix, 5)].sort());
        expect(await backend.getAllocation(0, 8 * chunk)).toEqual([
          { offset: 0, length: chunk, state: 'deallocated' },
          { offset: chunk, length: chunk, state: 'mapped' },
          { offset: 2 * chunk, length: 3 * chunk, state: 'deallocated' },
          { offset: 5 * chunk, length: chunk, state: 'mapped' },
          { offset: 6 * chunk, length: 2 * chunk, state: 'deallocated' },
        ]);
        // Writing zeros over everything that was written deletes the objects.
        await backend.write(5 * chunk, [new Uint8Array(chunk)]);
        await backend.write(chunk + 100, [new Uint8Array(1000)]);
        await backend.flush();
        expect(await chunkKeys(prefix)).toEqual([]);
        expect(await backend.getAllocation(0, backend.size)).toEqual([
          { offset: 0, length: backend.size, state: 'deallocated' },
        ]);
        const stored = await listKeys(prefix);
        expect(stored).toEqual([`${prefix}${leaseName}`, `${prefix}${metadataName}`].sort());
      } finally {
        await backend.close();
      }
      expect(await listKeys(prefix)).toEqual([`${prefix}${metadataName}`]);
    });

    it('unmap deletes whole chunks and zero-writes partial ones (objects freed, verified by listing)', async () => {
      const prefix = testPrefix('unmap');
      const backend = await openS3Backend(options(prefix));
      try {
        const data = pattern(3, 4 * chunk);
        await backend.write(0, [data]);
        await backend.flush();
        expect(await chunkKeys(prefix)).toHaveLength(4);
        await backend.unmap(chunk + 10, 2 * chunk); // tail of 1, all of 2, head of 3
        await backend.flush();
        expect(await chunkKeys(prefix)).toEqual([0, 1, 3].map((i) => chunkKey(prefix, i)).sort());
        // The partial chunk's object itself now holds zeros after byte 10.
        const object = await getObject(chunkKey(prefix, 1));
        const expectedChunk1 = data.slice(chunk, 2 * chunk).fill(0, 10);
        expect(Buffer.compare(Buffer.from(object.body), Buffer.from(expectedChunk1))).toBe(0);
        const expected = data.slice();
        expected.fill(0, chunk + 10, 3 * chunk + 10);
        const out = new Uint8Array(4 * chunk);
        await backend.read(0, out.length, [out]);
        expect(Buffer.compare(Buffer.from(out), Buffer.from(expected))).toBe(0);
        await backend.unmap(0, backend.size);
        await backend.flush();
        expect(await chunkKeys(prefix)).toEqual([]);
        expect(backend.stats().storedChunks).toBe(0);
      } finally {
        await backend.close();
      }
    });

    it('each chunk object carries its MD5; a damaged object is refused on read, not returned', async () => {
      const prefix = testPrefix('integrity');
      const backend = await openS3Backend(options(prefix));
      const data = pattern(4, chunk);
      await backend.write(2 * chunk, [data]);
      await backend.close();
      const key = chunkKey(prefix, 2);
      const original = await getObject(key);
      expect(original.metadata[md5MetadataKey]).toMatch(/^[0-9a-f]{32}$/);
      const damaged = original.body.slice();
      damaged[1234]! ^= 1;
      await putObject(key, damaged, original.metadata); // same claimed MD5, different bytes
      const reader = await openS3Backend(options(prefix, { readOnly: true, retry: { totalTimeout: 300 } }));
      try {
        const failure = await reader.read(2 * chunk, 512, [new Uint8Array(512)]).catch((e: unknown) => e);
        expect((failure as { code?: string }).code).toBe('TCMU_ERR_BACKEND_READ');
        expect(String((failure as Error).message)).toMatch(/MD5/);
        expect(reader.stats().integrityFailures).toBeGreaterThan(0);
      } finally {
        await reader.close();
      }
    });
  });

  describe('s3 backend: part-chunk reads (ranged GETs)', () => {
    const MiB = 1024 * KiB;
    const big = (prefix: string, extra: Partial<S3BackendOptions> = {}) =>
      options(prefix, { chunkSize: MiB, readAhead: 0, ...extra });
    const readAt = async (
      backend: Awaited<ReturnType<typeof openS3Backend>>,
      offset: number,
      length: number,
    ) => {
      const out = new Uint8Array(length);
      await backend.read(offset, length, [out]);
      return out;
    };

    it('a small read of a plain chunk fetches only its 64 KiB segments, each checked against its MD5', async () => {
      const prefix = testPrefix('ranged');
      const data = pattern(9, MiB);
      const writer = await openS3Backend(big(prefix));
      await writer.write(MiB, [data]);
      await writer.close();
      const key = chunkKey(prefix, 1);
      const stored = await getObject(key);
      expect(stored.metadata[segmentMd5MetadataKey]).toMatch(/^65536:[0-9a-f]{512}$/);

      const reader = await openS3Backend(big(prefix, { readOnly: true, retry: { totalTimeout: 300 } }));
      try {
        expect(await readAt(reader, MiB + 70_000, 4 * KiB)).toEqual(data.subarray(70_000, 70_000 + 4 * KiB));
        expect(reader.stats()).toMatchObject({ gets: 1, bytesDownloaded: 64 * KiB });
        // Across a segment boundary: two segments in one GET.
        expect(await readAt(reader, MiB + 130_000, 4 * KiB)).toEqual(
          data.subarray(130_000, 130_000 + 4 * KiB),
        );
        expect(reader.stats()).toMatchObject({ gets: 2, bytesDownloaded: 3 * 64 * KiB });
      } finally {
        await reader.close();
      }

      // A damaged byte in segment 1: a read there fails; a read of segment 5 is still served.
      const damaged = stored.body.slice();
      damaged[70_000]! ^= 1;
      await putObject(key, damaged, stored.metadata);
      const checker = await openS3Backend(big(prefix, { readOnly: true, retry: { totalTimeout: 300 } }));
      try {
        const failure = await readAt(checker, MiB + 69_632, 4 * KiB).catch((e: unknown) => e);
        expect((failure as { code?: string }).code).toBe('TCMU_ERR_BACKEND_READ');
        expect(String((failure as Error).message)).toMatch(/MD5/);
        expect(checker.stats().integrityFailures).toBeGreaterThan(0);
        expect(await readAt(checker, MiB + 5 * 64 * KiB, 4 * KiB)).toEqual(
          data.subarray(5 * 64 * KiB, 5 * 64 * KiB + 4 * KiB),
        );
      } finally {
        await checker.close();
      }

      // An object written before segment MD5s existed: read whole, checked by its whole MD5.
      const { [segmentMd5MetadataKey]: _, ...older } = stored.metadata;
      await putObject(key, stored.body, older);
      const old = await openS3Backend(big(prefix, { readOnly: true }));
      try {
        expect(await readAt(old, MiB + 70_000, 4 * KiB)).toEqual(data.subarray(70_000, 70_000 + 4 * KiB));
        expect(old.stats().bytesDownloaded).toBe(64 * KiB + MiB);
      } finally {
        await old.close();
      }
    });

    it('a compressed volume reads whole chunks (its objects carry no segment MD5s)', async () => {
      const prefix = testPrefix('ranged-deflate');
      const writer = await openS3Backend(big(prefix, { compression: 'deflate' }));
      await writer.write(0, [pattern(3, MiB)]);
      await writer.close();
      expect((await getObject(chunkKey(prefix, 0))).metadata[segmentMd5MetadataKey]).toBeUndefined();
      const reader = await openS3Backend(big(prefix, { readOnly: true }));
      try {
        expect(await readAt(reader, 4 * KiB, 4 * KiB)).toEqual(pattern(3, MiB).subarray(4 * KiB, 8 * KiB));
        expect(reader.stats().gets).toBe(1);
        expect(reader.stats().cacheMisses).toBe(1);
      } finally {
        await reader.close();
      }
    });
  });

  describe('s3 backend: geometry and format', () => {
    it('refuses a mismatching geometry, a missing volume, an unknown format version and a missing bucket', async () => {
      const prefix = testPrefix('geometry');
      const backend = await openS3Backend(options(prefix));
      await backend.close();
      expect(await code(openS3Backend(options(prefix, { chunkSize: 2 * chunk })))).toBe(
        'TCMU_ERR_BACKEND_OPEN',
      );
      expect(await code(openS3Backend(options(prefix, { size: 8 * 1024 * KiB })))).toBe(
        'TCMU_ERR_BACKEND_SIZE_MISMATCH',
      );
      expect(await code(openS3Backend(options(prefix, { blockSize: 4096 })))).toBe('TCMU_ERR_BACKEND_OPEN');
      const reopened = await openS3Backend({ bucket, endpoint: endpoint!, prefix });
      expect([reopened.size, reopened.chunkSize, reopened.blockSize]).toEqual([4 * 1024 * KiB, chunk, 512]);
      await reopened.close();

      const missing = testPrefix('missing');
      expect(await code(openS3Backend({ bucket, endpoint: endpoint!, prefix: missing }))).toBe(
        'TCMU_ERR_BACKEND_NOT_FOUND',
      );
      expect(await listKeys(missing)).toEqual([]); // nothing left behind (the lease was released)

      const future = testPrefix('future');
      await putObject(
        `${future}${metadataName}`,
        Buffer.from(
          JSON.stringify({ format: 'tcmu-s3-volume', version: 99, size: 1 << 20, chunkSize: chunk }),
        ),
      );
      const failure = await openS3Backend({ bucket, endpoint: endpoint!, prefix: future }).catch(
        (e: Error) => e,
      );
      expect((failure as { code?: string }).code).toBe('TCMU_ERR_BACKEND_OPEN');
      expect((failure as Error).message).toMatch(/version 99/);

      expect(
        await code(openS3Backend({ ...options(testPrefix('nobucket')), bucket: 'tcmu-no-such-bucket-here' })),
      ).toBe('TCMU_ERR_BACKEND_NOT_FOUND');
    });
  });

  describe('s3 backend: one writer', () => {
    it('refuses a second writer (same process and a new process), allows readers, releases on close', async () => {
      const prefix = testPrefix('lease');
      const writer = await openS3Backend(options(prefix));
      try {
        const failure = await openS3Backend(options(prefix)).catch((e: Error) => e);
        expect((failure as { code?: string }).code).toBe('TCMU_ERR_BACKEND_LOCKED');
        expect((failure as Error).message).toContain(`process ${process.pid}`);
        const child = await runChild({ action: 'open', options: options(prefix) });
        expect(child.result).toMatchObject({ opened: false, code: 'TCMU_ERR_BACKEND_LOCKED' });
        await writer.write(0, [pattern(5, 4096)]);
        await writer.flush();
        const reader = await openS3Backend(options(prefix, { readOnly: true }));
        const out = new Uint8Array(4096);
        await reader.read(0, 4096, [out]);
        expect(Buffer.compare(Buffer.from(out), Buffer.from(pattern(5, 4096)))).toBe(0);
        expect(await code(reader.write(0, [out]))).toBe('TCMU_ERR_BACKEND_READ_ONLY');
        await reader.close();
      } finally {
        await writer.close();
      }
      const next = await runChild({ action: 'open', options: options(prefix) });
      expect(next.result).toEqual({ opened: true });
    });

    it('a lease left by a dead process of this host is taken without force; flushed data survives', async () => {
      const prefix = testPrefix('stale');
      const writes = [{ offset: 3 * chunk + 7, length: 2 * chunk, seed: 6 }];
      const crashed = await runChild({ action: 'crash-after-write', options: options(prefix), writes });
      expect(crashed.code).toBe(0);
      expect(await listKeys(prefix)).toContain(`${prefix}${leaseName}`);
      const reopened = await runChild({ action: 'verify', options: options(prefix), writes });
      expect(reopened.result).toMatchObject({ opened: true, mismatches: [] });
    });

    it('a live lease of another host blocks opens until taken with force (--force-lease)', async () => {
      const prefix = testPrefix('other-host');
      const now = new Date().toISOString();
      const lease = {
        id: 'x',
        host: 's3safe-other.example',
        pid: 4242,
        since: now,
        renewed: now,
        duration: 600_000,
      };
      await putObject(`${prefix}${leaseName}`, Buffer.from(JSON.stringify(lease)));
      const failure = await openS3Backend(options(prefix, { size: 1 << 20 })).catch((e: Error) => e);
      expect((failure as { code?: string }).code).toBe('TCMU_ERR_BACKEND_LOCKED');
      expect((failure as Error).message).toMatch(/process 4242 on s3safe-other\.example.*--force-lease/);
      const forced = await openS3Backend(options(prefix, { size: 1 << 20, force: true }));
      await forced.close();
      expect(await listKeys(prefix)).not.toContain(`${prefix}${leaseName}`);
    });
  });

  describe('s3 backend: a forced take-over fences the old writer', () => {
    it('the old writer notices at its next flush and stops writing; the new writer keeps its data', async () => {
      const prefix = testPrefix('fence');
      const old = await openS3Backend(options(prefix, { writeBackDelay: 60_000 }));
      await old.write(0, [pattern(70, 4096)]);
      await old.flush();
      await new Promise((resolve) => setTimeout(resolve, 1100)); // past the once-a-second lease check
      const taker = await openS3Backend(options(prefix, { force: true }));
      await taker.write(0, [pattern(71, 4096)]);
      await taker.flush();
      await old.write(0, [pattern(72, 4096)]); // cached only: write-back is slow here
      const fenced = await old.flush().catch((e: Error) => e);
      expect((fenced as { code?: string }).code).toBe('TCMU_ERR_BACKEND_LOCKED');
      expect((fenced as Error).message).toMatch(/taken over/);
      expect(await code(old.write(0, [pattern(73, 4096)]))).toBe('TCMU_ERR_BACKEND_LOCKED');
      expect(await code(old.close())).toBe('TCMU_ERR_BACKEND_LOCKED');
      const out = new Uint8Array(4096);
      await taker.read(0, 4096, [out]);
      expect(Buffer.compare(Buffer.from(out), Buffer.from(pattern(71, 4096)))).toBe(0);
      await taker.close();
      const check = await openS3Backend(options(prefix, { readOnly: true }));
      await check.read(0, 4096, [out]);
      expect(Buffer.compare(Buffer.from(out), Buffer.from(pattern(71, 4096)))).toBe(0);
      await check.close();
    });
  });

  describe('s3 backend: persistence across processes', () => {
    it('data written and closed in one process reads back intact in a NEW process, and the other way round', async () => {
      const prefix = testPrefix('process');
      const writes = [
        { offset: 0, length: 4096, seed: 10 },
        { offset: chunk - 100, length: 300, seed: 11 }, // straddles a chunk boundary
        { offset: 10 * chunk, length: 5 * chunk + 17, seed: 12 },
        { offset: 4 * 1024 * KiB - 512, length: 512, seed: 13 }, // the last block
      ];
      const written = await runChild({ action: 'write', options: options(prefix), writes });
      expect(written.result).toEqual({ opened: true, written: writes.length });
      const backend = await openS3Backend(options(prefix));
      for (const w of writes) {
        const out = new Uint8Array(w.length);
        await backend.read(w.offset, w.length, [out]);
        expect(Buffer.compare(Buffer.from(out), Buffer.from(pattern(w.seed, w.length)))).toBe(0);
      }
      const more = [{ offset: 20 * chunk + 1, length: 3 * chunk, seed: 14 }];
      for (const w of more) await backend.write(w.offset, [pattern(w.seed, w.length)]);
      await backend.close();
      const verified = await runChild({
        action: 'verify',
        options: options(prefix),
        writes: [...writes, ...more],
      });
      expect(verified.result).toMatchObject({ opened: true, mismatches: [] });
    });
  });

  describe('s3 backend: cache', () => {
    it('coalesces concurrent reads of one chunk into one GET', async () => {
      const prefix = testPrefix('coalesce');
      const writer = await openS3Backend(options(prefix));
      await writer.write(chunk * 6, [pattern(20, chunk)]);
      await writer.close();
      const backend = await openS3Backend(options(prefix, { readAhead: 0 }));
      try {
        const reads = Array.from({ length: 16 }, (_, i) => {
          const out = new Uint8Array(1024);
          return backend.read(chunk * 6 + i * 1024, 1024, [out]).then(() => out);
        });
        const results = await Promise.all(reads);
        expect(backend.stats().gets).toBe(1);
        const expected = pattern(20, chunk);
        results.forEach((out, i) => {
          expect(
            Buffer.compare(Buffer.from(out), Buffer.from(expected.subarray(i * 1024, (i + 1) * 1024))),
          ).toBe(0);
        });
      } finally {
        await backend.close();
      }
    });

    it('reads ahead of a sequential reader', async () => {
      const prefix = testPrefix('readahead');
      const writer = await openS3Backend(options(prefix));
      await writer.write(0, [pattern(21, 32 * chunk)]);
      await writer.close();
      // A cache of 8 chunks for 32 chunks of data: read-ahead must keep going once the cache is full.
      const backend = await openS3Backend(options(prefix, { readAhead: 4 * chunk, cacheSize: 8 * chunk }));
      try {
        const out = new Uint8Array(16 * KiB);
        for (let offset = 0; offset < 32 * chunk; offset += out.length)
          await backend.read(offset, out.length, [out]);
        const stats = backend.stats();
        // 32 chunks were fetched, nearly all before the reader asked for them.
        expect(stats.gets).toBe(32);
        expect(stats.cacheMisses).toBeLessThan(6);
      } finally {
        await backend.close();
      }
    });

    it('keeps memory bounded: clean chunks are evicted and dirty ones are capped by the dirty limit', async () => {
      const prefix = testPrefix('bounded');
      const cacheSize = 8 * chunk;
      const backend = await openS3Backend(options(prefix, { cacheSize, dirtyLimit: 4 * chunk }));
      try {
        let peakDirty = 0;
        for (let i = 0; i < 40; i++) {
          await backend.write(i * chunk + 1, [pattern(30 + i, chunk - 2)]); // partial: stays until the delay or the limit
          peakDirty = Math.max(peakDirty, backend.stats().dirtyChunks);
        }
        expect(peakDirty).toBeLessThanOrEqual(5);
        await backend.flush();
        const out = new Uint8Array(chunk - 2);
        for (let i = 0; i < 40; i++) {
          await backend.read(i * chunk + 1, out.length, [out]);
          expect(Buffer.compare(Buffer.from(out), Buffer.from(pattern(30 + i, chunk - 2)))).toBe(0);
        }
        await new Promise((resolve) => setImmediate(resolve));
        expect(backend.stats().cachedBytes).toBeLessThanOrEqual(cacheSize);
      } finally {
        await backend.close();
      }
    });

    it('writes into stored chunks do not wait for a GET: a chunk overwritten piecewise is never fetched, a partly overwritten one is fetched once at upload and merged', async () => {
      const prefix = testPrefix('deferred');
      const before = pattern(80, 4 * chunk);
      const writer = await openS3Backend(options(prefix));
      await writer.write(0, [before]);
      await writer.close();
      const backend = await openS3Backend(options(prefix, { readAhead: 0 }));
      try {
        // Chunk 0: overwritten in 4 KiB pieces, in order (a sequential rewrite). Chunk 2: 100 bytes.
        const after = pattern(81, chunk);
        for (let offset = 0; offset < chunk; offset += 4096) {
          await backend.write(offset, [after.subarray(offset, offset + 4096)]);
        }
        await backend.write(2 * chunk + 1000, [pattern(82, 100)]);
        const inside = new Uint8Array(100);
        await backend.read(2 * chunk + 1000, 100, [inside]); // only written bytes: no GET either
        expect(backend.stats().gets).toBe(0);
        await backend.flush();
        expect(backend.stats().gets).toBe(1); // chunk 2, to merge before its upload
        const expected = before.slice();
        expected.set(after, 0);
        expected.set(pattern(82, 100), 2 * chunk + 1000);
        const out = new Uint8Array(4 * chunk);
        await backend.read(0, out.length, [out]);
        expect(Buffer.compare(Buffer.from(out), Buffer.from(expected))).toBe(0);
        const stored = await getObject(chunkKey(prefix, 2));
        expect(
          Buffer.compare(Buffer.from(stored.body), Buffer.from(expected.subarray(2 * chunk, 3 * chunk))),
        ).toBe(0);
      } finally {
        await backend.close();
      }
    });

    it('flush makes writes durable without close: the objects are on the server when flush resolves', async () => {
      const prefix = testPrefix('flush');
      const backend = await openS3Backend(options(prefix, { writeBackDelay: 60_000 }));
      try {
        await backend.write(2 * chunk + 3, [pattern(40, 100)]);
        expect(await chunkKeys(prefix)).toEqual([]); // still in the write-back cache
        await backend.flush();
        const object = await getObject(chunkKey(prefix, 2));
        expect(Buffer.compare(Buffer.from(object.body.subarray(3, 103)), Buffer.from(pattern(40, 100)))).toBe(
          0,
        );
      } finally {
        await backend.close();
      }
    });
  });

  describe('s3 backend: failures', () => {
    const faulty = (prefix: string, retry: S3BackendOptions['retry'] = {}) => {
      const store = new FaultyStore(
        openObjectStore({ bucket, prefix, endpoint: endpoint! }, { maxSockets: 20 }),
      );
      return { store, open: () => openS3Backend(options(prefix, { store, retry })) };
    };

    it('retries resets and throttling with back-off and loses nothing', async () => {
      const prefix = testPrefix('flaky');
      const { store, open } = faulty(prefix);
      const backend = await open();
      try {
        store.throttleEvery = 3;
        store.failNext = 5;
        for (let i = 0; i < 12; i++) await backend.write(i * chunk + 11, [pattern(50 + i, chunk)]);
        await backend.flush();
        expect(store.faults).toBeGreaterThan(5);
        expect(backend.stats().retries).toBeGreaterThanOrEqual(store.faults);
      } finally {
        await backend.close();
      }
      const check = await openS3Backend(options(prefix, { readOnly: true }));
      const out = new Uint8Array(chunk);
      for (let i = 0; i < 12; i++) {
        await check.read(i * chunk + 11, chunk, [out]);
        expect(Buffer.compare(Buffer.from(out), Buffer.from(pattern(50 + i, chunk)))).toBe(0);
      }
      await check.close();
    });

    it('gives up after the bounded total wait with a BackendError instead of hanging, and recovers after', async () => {
      const prefix = testPrefix('down');
      const { store, open } = faulty(prefix, { totalTimeout: 400, maxDelay: 100 });
      const backend = await open();
      try {
        await backend.write(0, [pattern(60, chunk)]);
        await backend.flush();
        const readerSide = faulty(prefix);
        const reader = await openS3Backend(
          options(prefix, { readOnly: true, store: readerSide.store, retry: { totalTimeout: 400 } }),
        );
        store.down = true;
        readerSide.store.down = true;
        await backend.write(chunk, [pattern(61, 100)]);
        expect(await code(backend.flush())).toBe('TCMU_ERR_BACKEND_WRITE');
        expect(await code(reader.read(0, 100, [new Uint8Array(100)]))).toBe('TCMU_ERR_BACKEND_READ');
        readerSide.store.down = false;
        await reader.close();
        store.down = false;
        await backend.flush(); // the dirty chunk was kept and goes out now
        const check = await openS3Backend(options(prefix, { readOnly: true }));
        const out = new Uint8Array(100);
        await check.read(chunk, 100, [out]);
        expect(Buffer.compare(Buffer.from(out), Buffer.from(pattern(61, 100)))).toBe(0);
        await check.close();
      } finally {
        store.down = false;
        await backend.close();
      }
    });
  });
}
