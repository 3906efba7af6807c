// Compression, encryption and the stats file of real volumes on a real S3 server (the local Ceph RGW).
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chunkKeyAt, md5, md5MetadataKey } from './layout.ts';
import { openS3Backend, type S3BackendOptions } from './s3-backend.ts';
import {
  bucket,
  code,
  endpoint,
  getObject,
  listKeys,
  pattern,
  putObject,
  readAt,
  removeTestVolumes,
  skipReason,
  testPrefix,
} from './test-support/environment.ts';
import { cloneS3Volume, createS3Volume, inspectS3Volume, snapshotS3Volume } from './volume.ts';

const KiB = 1024;
const chunk = 64 * KiB;
const size = 16 * chunk;
const dir = mkdtempSync(join(tmpdir(), 'tcmu-codec-'));
const keyFile = join(dir, 'key');
const otherKeyFile = join(dir, 'other-key');
writeFileSync(keyFile, Buffer.alloc(32, 0x5a));
writeFileSync(otherKeyFile, Buffer.alloc(32, 0xa5));

function options(prefix: string, extra: Partial<S3BackendOptions> = {}): S3BackendOptions {
  return { bucket, endpoint: endpoint!, prefix, chunkSize: chunk, size, ...extra };
}

const text = Buffer.alloc(chunk, 'a compressible line of a file system\n');

if (!endpoint) {
  it.skip(`chunk codec against a real server (skipped: ${skipReason})`, () => {});
} else {
  afterAll(removeTestVolumes);

  describe('compression', () => {
    it('deflates chunks that shrink, stores the others raw, reads both back; inspect says so', async () => {
      const prefix = testPrefix('deflate');
      const backend = await openS3Backend(options(prefix, { compression: 'deflate' }));
      await backend.write(0, [text]);
      await backend.write(chunk, [pattern(3, chunk)]);
      await backend.close();
      expect((await getObject(chunkKeyAt(prefix, 0, 0))).body.byteLength).toBeLessThan(chunk / 10);
      expect((await getObject(chunkKeyAt(prefix, 1, 0))).body.byteLength).toBe(chunk + 1);
      const info = await inspectS3Volume({ bucket, endpoint: endpoint!, prefix });
      expect(info).toMatchObject({ compression: 'deflate', encryption: 'none', formatVersion: 2 });
      expect(info.bytesStored).toBeLessThan(chunk + chunk / 10 + 1);
      const again = await openS3Backend(options(prefix, { readOnly: true }));
      expect((await readAt(again, 0, chunk)).equals(text)).toBe(true);
      expect((await readAt(again, chunk, chunk)).equals(Buffer.from(pattern(3, chunk)))).toBe(true);
      await again.close();
    });
  });

  describe('encryption', () => {
    it('stores ciphertext, refuses a missing or wrong key at open, and reads a tampered or swapped chunk as an error', async () => {
      const prefix = testPrefix('aes');
      const admin = { bucket, endpoint: endpoint!, prefix };
      const info = await createS3Volume({
        ...admin,
        size,
        chunkSize: chunk,
        compression: 'deflate',
        keyFile,
      });
      expect(info).toMatchObject({ encryption: 'aes-256-gcm', compression: 'deflate' });
      const backend = await openS3Backend(options(prefix, { keyFile }));
      await backend.write(0, [text]);
      await backend.write(chunk, [pattern(4, chunk)]);
      await backend.close();
      const stored = await getObject(chunkKeyAt(prefix, 0, 0));
      expect(Buffer.from(stored.body).includes(Buffer.from('compressible'))).toBe(false);

      expect(await code(openS3Backend(options(prefix, { readOnly: true })))).toBe('TCMU_ERR_BACKEND_OPEN');
      expect(await code(openS3Backend(options(prefix, { readOnly: true, keyFile: otherKeyFile })))).toBe(
        'TCMU_ERR_BACKEND_OPEN',
      );
      expect(await listKeys(`${prefix}tcmu-lease`)).toEqual([]); // a refused open leaves no lease

      process.env.TCMU_TEST_VOLUME_KEY = Buffer.alloc(32, 0x5a).toString('hex');
      const viaEnv = await openS3Backend(options(prefix, { readOnly: true, keyEnv: 'TCMU_TEST_VOLUME_KEY' }));
      expect((await readAt(viaEnv, 0, chunk)).equals(text)).toBe(true);
      await viaEnv.close();
      delete process.env.TCMU_TEST_VOLUME_KEY;

      // One flipped byte, with a matching MD5 so only the authentication can notice.
      const damaged = Buffer.from(stored.body);
      damaged[damaged.length - 40] = (damaged[damaged.length - 40] ?? 0) ^ 0x01;
      await putObject(chunkKeyAt(prefix, 0, 0), damaged, { [md5MetadataKey]: md5(damaged).toString('hex') });
      // Chunk 1's object copied over chunk 2: a valid ciphertext in the wrong place.
      const one = await getObject(chunkKeyAt(prefix, 1, 0));
      await putObject(chunkKeyAt(prefix, 2, 0), one.body, one.metadata);
      const reader = await openS3Backend(options(prefix, { readOnly: true, keyFile }));
      expect(await code(readAt(reader, 0, 512))).toBe('TCMU_ERR_BACKEND_READ');
      expect(await code(readAt(reader, 2 * chunk, 512))).toBe('TCMU_ERR_BACKEND_READ');
      expect((await readAt(reader, chunk, chunk)).equals(Buffer.from(pattern(4, chunk)))).toBe(true);
      expect(reader.stats().integrityFailures).toBeGreaterThanOrEqual(2);
      await reader.close();
    });

    it('snapshots and clones of an encrypted volume use the same key', async () => {
      const prefix = testPrefix('aes-snap');
      const clone = testPrefix('aes-clone');
      const backend = await openS3Backend(options(prefix, { keyFile }));
      await backend.write(0, [pattern(5, chunk)]);
      await backend.close();
      await snapshotS3Volume({ bucket, endpoint: endpoint!, prefix, name: 's' });
      await cloneS3Volume({ bucket, endpoint: endpoint!, prefix, snapshot: 's', target: clone });
      expect(await code(openS3Backend(options(clone, { keyFile: otherKeyFile })))).toBe(
        'TCMU_ERR_BACKEND_OPEN',
      );
      const c = await openS3Backend(options(clone, { keyFile }));
      expect((await readAt(c, 0, chunk)).equals(Buffer.from(pattern(5, chunk)))).toBe(true);
      await c.write(chunk, [pattern(6, chunk)]);
      await c.close();
      const again = await openS3Backend(options(clone, { keyFile, readOnly: true }));
      expect((await readAt(again, chunk, chunk)).equals(Buffer.from(pattern(6, chunk)))).toBe(true);
      await again.close();
    });
  });

  describe('stats file', () => {
    it('is written while serving and at close, with requests, bytes, cache and dirty figures', async () => {
      const prefix = testPrefix('stats');
      const statsFile = join(dir, 'stats.json');
      const backend = await openS3Backend(options(prefix, { statsFile, statsInterval: 100 }));
      await backend.write(0, [pattern(1, chunk)]);
      await backend.flush();
      await backend.read(0, 512, [new Uint8Array(512)]);
      // Written every 100 ms: wait for a write that shows the read above (no time limit asserted).
      let during: Record<string, number> = {};
      for (let i = 0; i < 200 && !((during.cacheHits ?? 0) >= 1); i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        during = existsSync(statsFile) ? JSON.parse(readFileSync(statsFile, 'utf8')) : {};
      }
      expect(during).toMatchObject({ puts: 1, dirtyChunks: 0, bytesUploaded: chunk });
      expect(during.cacheHits).toBeGreaterThanOrEqual(1);
      for (const field of ['gets', 'retries', 'cacheMisses', 'deletes', 'lists', 'time'])
        expect(during).toHaveProperty(field);
      await backend.write(chunk, [pattern(2, chunk)]);
      await backend.close();
      const after = JSON.parse(readFileSync(statsFile, 'utf8'));
      expect(after.puts).toBe(2);
    });
  });
}
