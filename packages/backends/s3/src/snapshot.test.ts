// Snapshots and clones against a real S3 server (the local Ceph RGW).
import { afterAll, describe, expect, it } from 'vitest';
import { chunkKey, chunkKeyAt, metadataName } from './layout.ts';
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
import {
  cloneS3Volume,
  deleteS3Snapshot,
  deleteS3Volume,
  inspectS3Volume,
  snapshotS3Volume,
} from './volume.ts';

const KiB = 1024;
const chunk = 64 * KiB;
const size = 16 * chunk;

function options(prefix: string, extra: Partial<S3BackendOptions> = {}): S3BackendOptions {
  return { bucket, endpoint: endpoint!, prefix, chunkSize: chunk, size, ...extra };
}

const admin = (prefix: string) => ({ bucket, endpoint: endpoint!, prefix });

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

if (!endpoint) {
  it.skip(`snapshots and clones against a real server (skipped: ${skipReason})`, () => {});
} else {
  afterAll(removeTestVolumes);

  describe('snapshots', () => {
    it('freeze the volume without copying: later writes and unmaps go to new keys, the snapshot reads the old data', async () => {
      const prefix = testPrefix('snap');
      let backend = await openS3Backend(options(prefix));
      await backend.write(0, [pattern(1, chunk)]);
      await backend.write(chunk, [pattern(2, chunk)]);
      await backend.close();
      const before = await listKeys(`${prefix}data/`);
      const taken = await snapshotS3Volume({ ...admin(prefix), name: 's1' });
      expect(taken).toMatchObject({ name: 's1', generation: 0 });
      expect(await listKeys(`${prefix}data/`)).toEqual(before); // nothing copied

      backend = await openS3Backend(options(prefix));
      await backend.write(0, [pattern(3, chunk)]);
      await backend.unmap(chunk, chunk);
      await backend.write(2 * chunk, [pattern(4, chunk)]);
      expect(backend.stats().generation).toBe(1);
      await backend.close();
      expect(await listKeys(`${prefix}data/`)).toEqual(
        [
          chunkKeyAt(prefix, 0, 0),
          chunkKeyAt(prefix, 0, 1),
          chunkKeyAt(prefix, 1, 0),
          chunkKeyAt(prefix, 1, 1), // tombstone over the snapshot's chunk
          chunkKeyAt(prefix, 2, 1),
        ].sort(),
      );
      expect((await getObject(chunkKeyAt(prefix, 1, 1))).body.byteLength).toBe(0);

      const head = await openS3Backend(options(prefix, { readOnly: true }));
      expect(same(await readAt(head, 0, chunk), pattern(3, chunk))).toBe(true);
      expect((await readAt(head, chunk, chunk)).every((b) => b === 0)).toBe(true);
      expect(same(await readAt(head, 2 * chunk, chunk), pattern(4, chunk))).toBe(true);
      await head.close();

      const snap = await openS3Backend(options(`${prefix.slice(0, -1)}@s1`, { readOnly: true }));
      expect(snap.readOnly).toBe(true);
      expect(same(await readAt(snap, 0, chunk), pattern(1, chunk))).toBe(true);
      expect(same(await readAt(snap, chunk, chunk), pattern(2, chunk))).toBe(true);
      expect((await readAt(snap, 2 * chunk, chunk)).every((b) => b === 0)).toBe(true);
      expect(await code(snap.write(0, [new Uint8Array(512)]))).toBe('TCMU_ERR_BACKEND_READ_ONLY');
      expect(await snap.getAllocation(0, 4 * chunk)).toEqual([
        { offset: 0, length: 2 * chunk, state: 'mapped' },
        { offset: 2 * chunk, length: 2 * chunk, state: 'deallocated' },
      ]);
      await snap.close();

      const info = await inspectS3Volume(admin(prefix));
      expect(info.formatVersion).toBe(2);
      expect(info.generation).toBe(1);
      expect(info.snapshots.map((s) => s.name)).toEqual(['s1']);
    });

    it('keep the size the volume had: a resize after the snapshot does not change it', async () => {
      const prefix = testPrefix('snap-size');
      const backend = await openS3Backend(options(prefix));
      await backend.write(0, [pattern(1, 4096)]);
      await backend.close();
      await snapshotS3Volume({ ...admin(prefix), name: 'small' });
      const grown = await openS3Backend(options(prefix, { size: undefined }));
      await grown.resize(2 * size);
      await grown.close();
      const snap = await openS3Backend(
        options(`${prefix.slice(0, -1)}@small`, { readOnly: true, size: undefined }),
      );
      expect(snap.size).toBe(size);
      await snap.close();
      const clone = testPrefix('snap-size-clone');
      expect((await cloneS3Volume({ ...admin(prefix), snapshot: 'small', target: clone })).size).toBe(size);
    });

    it('are refused read-write, unknown names are not found, duplicate names are refused', async () => {
      const prefix = testPrefix('snap-refuse');
      await (await openS3Backend(options(prefix))).close();
      await snapshotS3Volume({ ...admin(prefix), name: 'a' });
      expect(await code(openS3Backend(options(`${prefix.slice(0, -1)}@a`)))).toBe(
        'TCMU_ERR_BACKEND_READ_ONLY',
      );
      expect(await code(openS3Backend(options(`${prefix.slice(0, -1)}@nope`, { readOnly: true })))).toBe(
        'TCMU_ERR_BACKEND_NOT_FOUND',
      );
      expect(await code(snapshotS3Volume({ ...admin(prefix), name: 'a' }))).toBe(
        'TCMU_ERR_BACKEND_INVALID_ARGUMENT',
      );
      expect(await code(snapshotS3Volume({ ...admin(prefix), name: '../x' }))).toBe(
        'TCMU_ERR_BACKEND_INVALID_ARGUMENT',
      );
    });

    it('of a served volume go through its server: acknowledged writes are in, later writes are not', async () => {
      const prefix = testPrefix('snap-served');
      const backend = await openS3Backend(options(prefix, { controlInterval: 100, writeBackDelay: 60_000 }));
      try {
        await backend.write(0, [pattern(5, chunk)]);
        await backend.write(3 * chunk + 512, [pattern(6, 4096)]); // partial, still dirty in memory
        expect(backend.stats().dirtyChunks).toBeGreaterThan(0);
        const taken = await snapshotS3Volume({ ...admin(prefix), name: 'live', timeout: 20_000 });
        expect(taken.name).toBe('live');
        expect(backend.stats().dirtyChunks).toBe(0); // flushed before the freeze
        await backend.write(0, [pattern(7, chunk)]);
        await backend.flush();
        const snap = await openS3Backend(options(`${prefix.slice(0, -1)}@live`, { readOnly: true }));
        expect(same(await readAt(snap, 0, chunk), pattern(5, chunk))).toBe(true);
        expect(same(await readAt(snap, 3 * chunk + 512, 4096), pattern(6, 4096))).toBe(true);
        await snap.close();
        expect(same(await readAt(backend, 0, chunk), pattern(7, chunk))).toBe(true);
      } finally {
        await backend.close();
      }
    });

    it('of a served volume whose server does not answer fail with LOCKED and take nothing', async () => {
      const prefix = testPrefix('snap-noanswer');
      const backend = await openS3Backend(options(prefix, { controlInterval: 0 }));
      try {
        expect(await code(snapshotS3Volume({ ...admin(prefix), name: 'x', timeout: 1000 }))).toBe(
          'TCMU_ERR_BACKEND_LOCKED',
        );
        expect(await listKeys(`${prefix}tcmu-request`)).toEqual([]);
      } finally {
        await backend.close();
      }
      expect((await inspectS3Volume(admin(prefix))).snapshots).toEqual([]);
    });

    it('keep only what they need: rewrites without a snapshot in between leave one object per chunk', async () => {
      const prefix = testPrefix('snap-gc');
      let backend = await openS3Backend(options(prefix));
      await backend.write(0, [pattern(1, chunk)]);
      await backend.close();
      await snapshotS3Volume({ ...admin(prefix), name: 's' });
      backend = await openS3Backend(options(prefix));
      for (let i = 0; i < 3; i++) {
        await backend.write(0, [pattern(10 + i, chunk)]);
        await backend.flush();
      }
      await backend.close();
      expect(await listKeys(`${prefix}data/`)).toEqual(
        [chunkKeyAt(prefix, 0, 0), chunkKeyAt(prefix, 0, 1)].sort(),
      );
      // Deleting the snapshot deletes the objects only it needed.
      expect(await deleteS3Snapshot({ ...admin(prefix), name: 's' })).toEqual({ objectsDeleted: 1 });
      expect(await listKeys(`${prefix}data/`)).toEqual([chunkKeyAt(prefix, 0, 1)]);
      backend = await openS3Backend(options(prefix, { readOnly: true }));
      expect(same(await readAt(backend, 0, chunk), pattern(12, chunk))).toBe(true);
      await backend.close();
    });
  });

  describe('clones', () => {
    it('read the origin snapshot, write their own chunks, and protect the origin from deletion', async () => {
      const origin = testPrefix('origin');
      const clonePrefix = testPrefix('clone');
      let backend = await openS3Backend(options(origin));
      await backend.write(0, [pattern(1, chunk)]);
      await backend.write(chunk, [pattern(2, chunk)]);
      await backend.close();
      await snapshotS3Volume({ ...admin(origin), name: 'base' });
      const info = await cloneS3Volume({ ...admin(`${origin.slice(0, -1)}@base`), target: clonePrefix });
      expect(info.origin).toBe(`s3://${bucket}/${origin.slice(0, -1)}@base`);
      expect(info.chunksStored).toBe(0); // instant: nothing copied
      expect(await listKeys(`${clonePrefix}data/`)).toEqual([]);

      // The origin moves on; the clone still sees the snapshot.
      backend = await openS3Backend(options(origin));
      await backend.write(chunk, [pattern(9, chunk)]);
      await backend.close();

      const clone = await openS3Backend(options(clonePrefix));
      expect(same(await readAt(clone, 0, chunk), pattern(1, chunk))).toBe(true);
      expect(same(await readAt(clone, chunk, chunk), pattern(2, chunk))).toBe(true);
      await clone.write(100, [pattern(3, 1000)]); // copy-on-write of a partial chunk
      await clone.unmap(chunk, chunk); // hides the origin's chunk
      await clone.close();
      expect(await listKeys(`${clonePrefix}data/`)).toEqual(
        [chunkKey(clonePrefix, 0), chunkKey(clonePrefix, 1)].sort(),
      );
      const reopened = await openS3Backend(options(clonePrefix, { readOnly: true }));
      const expected = Buffer.from(pattern(1, chunk));
      expected.set(pattern(3, 1000), 100);
      expect(same(await readAt(reopened, 0, chunk), expected)).toBe(true);
      expect((await readAt(reopened, chunk, chunk)).every((b) => b === 0)).toBe(true);
      await reopened.close();
      const originSnap = await openS3Backend(options(`${origin.slice(0, -1)}@base`, { readOnly: true }));
      expect(same(await readAt(originSnap, 0, chunk), pattern(1, chunk))).toBe(true);
      await originSnap.close();

      // Neither the snapshot nor the origin can go while the clone reads them.
      expect(await code(deleteS3Snapshot({ ...admin(origin), name: 'base' }))).toBe(
        'TCMU_ERR_BACKEND_LOCKED',
      );
      expect(await code(deleteS3Volume({ ...admin(origin), force: true }))).toBe('TCMU_ERR_BACKEND_LOCKED');
      expect((await inspectS3Volume(admin(origin))).snapshots[0]!.clones).toEqual([
        `s3://${bucket}/${clonePrefix}`,
      ]);
      // Once the clone is gone, they can.
      await deleteS3Volume(admin(clonePrefix));
      expect(await listKeys(`${origin}tcmu-clones/`)).toEqual([]);
      expect((await deleteS3Snapshot({ ...admin(origin), name: 'base' })).objectsDeleted).toBe(1);
      expect(await code(openS3Backend(options(`${origin.slice(0, -1)}@base`, { readOnly: true })))).toBe(
        'TCMU_ERR_BACKEND_NOT_FOUND',
      );
    });

    it('chain: a clone of a clone reads through both origins', async () => {
      const a = testPrefix('chain-a');
      const b = testPrefix('chain-b');
      const c = testPrefix('chain-c');
      let backend = await openS3Backend(options(a));
      await backend.write(0, [pattern(1, chunk)]);
      await backend.write(chunk, [pattern(2, chunk)]);
      await backend.close();
      await snapshotS3Volume({ ...admin(a), name: 's' });
      await cloneS3Volume({ ...admin(a), snapshot: 's', target: b });
      backend = await openS3Backend(options(b));
      await backend.write(chunk, [pattern(3, chunk)]);
      await backend.close();
      await snapshotS3Volume({ ...admin(b), name: 't' });
      await cloneS3Volume({ ...admin(b), snapshot: 't', target: c });
      backend = await openS3Backend(options(c, { readOnly: true }));
      expect(same(await readAt(backend, 0, chunk), pattern(1, chunk))).toBe(true);
      expect(same(await readAt(backend, chunk, chunk), pattern(3, chunk))).toBe(true);
      await backend.close();
      expect(await code(deleteS3Volume(admin(b)))).toBe('TCMU_ERR_BACKEND_LOCKED');
      await deleteS3Volume(admin(c));
      await deleteS3Volume(admin(b));
      await deleteS3Volume(admin(a));
    });
  });

  describe('format 1', () => {
    it('a format-1 volume (as written before format 2) opens, reads, and becomes format 2 at its first snapshot', async () => {
      const prefix = testPrefix('format1');
      const description = {
        format: 'tcmu-s3-volume',
        version: 1,
        size,
        chunkSize: chunk,
        blockSize: 512,
        created: '2026-01-01T00:00:00.000Z',
      };
      await putObject(`${prefix}${metadataName}`, Buffer.from(JSON.stringify(description)));
      await putObject(chunkKey(prefix, 2), pattern(8, chunk));
      let backend = await openS3Backend(options(prefix));
      expect(same(await readAt(backend, 2 * chunk, chunk), pattern(8, chunk))).toBe(true);
      await backend.write(0, [pattern(9, chunk)]);
      await backend.close();
      // Still format 1 (no format-2 feature used), and its keys are format 1's.
      expect(
        JSON.parse(Buffer.from((await getObject(`${prefix}${metadataName}`)).body).toString()).version,
      ).toBe(1);
      expect(await listKeys(`${prefix}data/`)).toEqual([chunkKey(prefix, 0), chunkKey(prefix, 2)].sort());
      await snapshotS3Volume({ ...admin(prefix), name: 'first' });
      expect((await inspectS3Volume(admin(prefix))).formatVersion).toBe(2);
      backend = await openS3Backend(options(prefix));
      expect(same(await readAt(backend, 0, chunk), pattern(9, chunk))).toBe(true);
      expect(same(await readAt(backend, 2 * chunk, chunk), pattern(8, chunk))).toBe(true);
      await backend.close();
    });

    it('a volume created by this code without format-2 features is format 1', async () => {
      const prefix = testPrefix('format1-new');
      await (await openS3Backend(options(prefix))).close();
      expect((await inspectS3Volume(admin(prefix))).formatVersion).toBe(1);
    });
  });
}
