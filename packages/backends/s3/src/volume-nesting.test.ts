// Volumes never nest, and deleting one removes only its own objects: over the in-memory store
// (every machine) and the real RGW (when configured).
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { openObjectStore } from './http-object-store.ts';
import { chunkKeyAt } from './layout.ts';
import { MemoryObjectStore } from './memory-object-store.ts';
import { openS3Backend } from './s3-backend.ts';
import { bucket, endpoint, listKeys, pattern, skipReason } from './test-support/environment.ts';
import {
  cloneS3Volume,
  createS3Volume,
  deleteS3Volume,
  type S3VolumeAdminOptions,
  snapshotS3Volume,
} from './volume.ts';

const codeAndMessage = (promise: Promise<unknown>) =>
  promise.then(
    () => 'ok',
    (error: { code?: string; message?: string }) => `${error.code}: ${error.message}`,
  );

interface Target {
  readonly name: string;
  readonly at: (prefix: string) => S3VolumeAdminOptions;
  readonly keys: (prefix: string) => Promise<string[]>;
}

const memory = new MemoryObjectStore({ maxKeys: 4 });
const targets: Target[] = [
  {
    name: 'in memory',
    at: (prefix) => ({ bucket: 'in-memory', prefix, store: memory }),
    keys: async (prefix) => memory.keys().filter((k) => k.startsWith(prefix)),
  },
];
if (endpoint) {
  targets.push({
    name: 'RGW',
    at: (prefix) => ({ bucket, prefix, endpoint }),
    keys: listKeys,
  });
} else {
  it.skip(`volume nesting on RGW (skipped: ${skipReason})`, () => {});
}

for (const target of targets) {
  describe(`volumes do not nest (${target.name})`, () => {
    const root = `s3safe-nest/${randomBytes(4).toString('hex')}/`;
    const at = (p: string) => target.at(`${root}${p}`);

    it('refuses a volume inside another (also in its data/ area) or around one', async () => {
      await createS3Volume({ ...at('a/'), size: 1 << 20 });
      expect(await codeAndMessage(createS3Volume({ ...at('a/b/c/'), size: 1 << 20 }))).toMatch(
        /^TCMU_ERR_BACKEND_OPEN: .*inside the volume s3:\/\/.*\/a\/; volumes cannot nest/,
      );
      expect(await codeAndMessage(createS3Volume({ ...at('a/data/x/'), size: 1 << 20 }))).toMatch(
        /TCMU_ERR_BACKEND_OPEN: .*inside the volume/,
      );
      // Opening with a size creates too: the same refusal, and nothing left behind.
      expect(await codeAndMessage(openS3Backend({ ...at('a/data/y/'), size: 1 << 20 }))).toMatch(
        /TCMU_ERR_BACKEND_OPEN: .*inside the volume/,
      );
      expect(await target.keys(`${root}a/data/`)).toEqual([]);
      await createS3Volume({ ...at('outer/inner/'), size: 1 << 20 });
      expect(await codeAndMessage(createS3Volume({ ...at('outer/'), size: 1 << 20 }))).toMatch(
        /TCMU_ERR_BACKEND_OPEN: .*outer\/inner\/ lies inside this prefix/,
      );
      // A sibling whose name merely starts the same is not nested.
      await createS3Volume({ ...at('ab/'), size: 1 << 20 });
    });

    it('delete removes only the volume’s own objects, never a volume below it or foreign keys', async () => {
      // An older version could create a volume under another one: build that by hand.
      const outer = at('old/');
      const inner = at('old/b/c/');
      const direct =
        target.at('').store ??
        openObjectStore({ bucket, prefix: '', endpoint: endpoint! }, { maxSockets: 4 });
      await createS3Volume({ ...inner, size: 1 << 20, chunkSize: 64 << 10 });
      const innerBackend = await openS3Backend({ ...inner });
      await innerBackend.write(0, [pattern(3, 100_000)]);
      await innerBackend.close();
      const signal = AbortSignal.timeout(30_000);
      const metadata = (await direct.get(`${root}old/b/c/tcmu-volume.json`, signal))!.body;
      await direct.put(`${root}old/tcmu-volume.json`, metadata, {}, signal);
      await direct.put(`${root}old/notes.txt`, Buffer.from('not the volume’s'), {}, signal);
      const outerBackend = await openS3Backend({ ...outer });
      await outerBackend.write(0, [pattern(4, 70_000)]);
      await outerBackend.close();
      const innerKeys = await target.keys(`${root}old/b/`);
      expect(innerKeys.length).toBe(3); // description + 2 chunks

      const { objectsDeleted } = await deleteS3Volume(outer);
      expect(objectsDeleted).toBe(3); // its description + its 2 chunks
      expect(await target.keys(`${root}old/b/`)).toEqual(innerKeys);
      const utf8 = (x: string, y: string) => Buffer.compare(Buffer.from(x), Buffer.from(y));
      expect(await target.keys(`${root}old/`)).toEqual([...innerKeys, `${root}old/notes.txt`].sort(utf8));
      const reopened = await openS3Backend({ ...inner });
      const out = new Uint8Array(100_000);
      await reopened.read(0, out.length, [out]);
      await reopened.close();
      expect(Buffer.from(out).equals(Buffer.from(pattern(3, 100_000)))).toBe(true);
      await deleteS3Volume(inner);
      await direct.delete(`${root}old/notes.txt`, signal);
      await deleteS3Volume({ ...at('a/') });
      await deleteS3Volume({ ...at('ab/') });
      await deleteS3Volume({ ...at('outer/inner/') });
    });

    it('format 2: delete removes generations, tombstones, requests and clone markers; clones do not nest', async () => {
      const store =
        target.at('').store ??
        openObjectStore({ bucket, prefix: '', endpoint: endpoint! }, { maxSockets: 4 });
      const signal = AbortSignal.timeout(30_000);
      const chunk = 64 << 10;
      const origin = at('f2/');
      const prefix = `${root}f2/`;
      await createS3Volume({ ...origin, size: 1 << 20, chunkSize: chunk, compression: 'deflate' });
      let backend = await openS3Backend({ ...origin });
      await backend.write(0, [pattern(5, 2 * chunk)]);
      await backend.close();
      // Not served: taken under the lease (s3safe's WriterLease), released after.
      await snapshotS3Volume({ ...origin, name: 's1' });
      expect(await target.keys(`${prefix}tcmu-lease`)).toEqual([]);
      backend = await openS3Backend({ ...origin });
      await backend.write(0, [pattern(6, chunk)]); // generation 1 of chunk 0
      await backend.writeZeroes!(chunk, chunk); // a tombstone hides chunk 1 of generation 0
      await backend.close();
      const keys = await target.keys(`${prefix}data/`);
      expect(keys).toContain(chunkKeyAt(prefix, 0, 1));
      expect(keys).toContain(chunkKeyAt(prefix, 1, 1));
      expect((await store.get(chunkKeyAt(prefix, 1, 1), signal))!.body.byteLength).toBe(0);
      // A snapshot request and a reply left behind by an interrupted `tcmu volume snapshot`.
      await store.put(`${prefix}tcmu-request.json`, Buffer.from('{}'), {}, signal);
      await store.put(`${prefix}tcmu-reply-x.json`, Buffer.from('{}'), {}, signal);

      // A clone is a volume: never inside or around another one.
      await createS3Volume({ ...at('host/'), size: 1 << 20 });
      expect(
        await codeAndMessage(cloneS3Volume({ ...origin, snapshot: 's1', target: `${root}host/c/` })),
      ).toMatch(/TCMU_ERR_BACKEND_OPEN: .*inside the volume/);
      await cloneS3Volume({ ...origin, snapshot: 's1', target: `${root}f2-clone/` });
      expect(await target.keys(`${prefix}tcmu-clones/`)).toHaveLength(1);
      // The clone marker is not mistaken for a volume below f2/.
      expect(await codeAndMessage(createS3Volume({ ...at('f2/tcmu-clones/x/'), size: 1 << 20 }))).toMatch(
        /TCMU_ERR_BACKEND_OPEN: .*inside the volume s3:\/\/.*\/f2\/;/,
      );
      expect(await codeAndMessage(deleteS3Volume(origin))).toMatch(/TCMU_ERR_BACKEND_LOCKED: .*clones/);
      await deleteS3Volume(at('f2-clone/'));
      expect(await target.keys(`${prefix}tcmu-clones/`)).toEqual([]);

      await store.put(`${prefix}notes.txt`, Buffer.from('not the volume’s'), {}, signal);
      const own = (await target.keys(prefix)).length - 1;
      expect(await deleteS3Volume(origin)).toEqual({ objectsDeleted: own });
      expect(await target.keys(prefix)).toEqual([`${prefix}notes.txt`]);
      await store.delete(`${prefix}notes.txt`, signal);
      await deleteS3Volume(at('host/'));
    });
  });
}
