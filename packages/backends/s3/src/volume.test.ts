// Volume administration (create, inspect, delete) against a real S3 server.
import { afterAll, expect, it } from 'vitest';
import { openS3Backend } from './s3-backend.ts';
import {
  bucket,
  endpoint,
  listKeys,
  pattern,
  removeTestVolumes,
  skipReason,
  testPrefix,
} from './test-support/environment.ts';
import { createS3Volume, deleteS3Volume, inspectS3Volume } from './volume.ts';

const codeOf = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: { code?: string }) => error.code,
  );

if (!endpoint) {
  it.skip(`s3 volume create/inspect/delete (skipped: ${skipReason})`, () => {});
} else {
  afterAll(removeTestVolumes);

  it('creates, inspects (chunks and bytes stored, writer) and deletes a volume', async () => {
    const prefix = testPrefix('admin');
    const location = { bucket, endpoint, prefix };
    const created = await createS3Volume({ ...location, size: 8 << 20, chunkSize: 256 << 10 });
    expect(created).toMatchObject({
      size: 8 << 20,
      chunkSize: 256 << 10,
      blockSize: 512,
      chunksStored: 0,
      bytesStored: 0,
      lease: null,
    });
    expect(await codeOf(createS3Volume({ ...location, size: 8 << 20 }))).toBe('TCMU_ERR_BACKEND_OPEN');

    const backend = await openS3Backend(location);
    await backend.write(100, [pattern(1, 600 << 10)]); // chunks 0, 1, 2
    await backend.flush();
    const busy = await inspectS3Volume(location);
    expect(busy).toMatchObject({ chunksStored: 3, bytesStored: 3 * (256 << 10) });
    expect(busy.lease).toMatchObject({ pid: process.pid });
    expect(await codeOf(deleteS3Volume(location))).toBe('TCMU_ERR_BACKEND_LOCKED');
    await backend.close();

    expect((await inspectS3Volume(location)).lease).toBeNull();
    expect(await deleteS3Volume(location)).toEqual({ objectsDeleted: 4 });
    expect(await listKeys(prefix)).toEqual([]);
    expect(await codeOf(inspectS3Volume(location))).toBe('TCMU_ERR_BACKEND_NOT_FOUND');
    expect(await codeOf(deleteS3Volume(location))).toBe('TCMU_ERR_BACKEND_NOT_FOUND');
  });

  it('refuses bad geometry before touching the server', async () => {
    const location = { bucket, endpoint, prefix: testPrefix('admin-bad') };
    expect(await codeOf(createS3Volume({ ...location, size: 1000 }))).toBe(
      'TCMU_ERR_BACKEND_INVALID_ARGUMENT',
    );
    expect(await codeOf(createS3Volume({ ...location, size: 1 << 20, chunkSize: 3000 }))).toBe(
      'TCMU_ERR_BACKEND_INVALID_ARGUMENT',
    );
    expect(await listKeys(location.prefix)).toEqual([]);
  });
}
