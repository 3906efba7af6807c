import { openMemoryBackend } from '@tcmu/backend-memory';
import { createFakeKernel, type FakeKernel } from '@tcmu/configfs/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { isCoreError } from './errors';
import { openDevice } from './open-device';

let kernel: FakeKernel | undefined;
afterEach(async () => {
  await kernel?.dispose();
  kernel = undefined;
});

describe('openDevice against a fake configfs', () => {
  it('rejects bad options before touching configfs', async () => {
    kernel = await createFakeKernel();
    const before = kernel.operations.length;
    const backend = await openMemoryBackend({ size: 1024 * 1024 });
    for (const options of [
      { name: 'a', backend, blockSize: 1000 },
      { name: 'b', backend, size: 1000 },
      { name: 'c' },
      { name: 'd', backend, queueDepth: 0 },
    ]) {
      const error = await openDevice({ ...kernel.roots, skipPreflight: true, ...options }).catch(
        (e: unknown) => e,
      );
      expect(isCoreError(error), String(error)).toBe(true);
    }
    expect(kernel.operations.slice(before).filter((o) => o.operation !== 'run')).toEqual([]);
  });

  it('rolls back everything it created when a later step fails (here: the ring cannot map the uio device)', async () => {
    kernel = await createFakeKernel();
    const before = await kernel.snapshot();
    const backend = await openMemoryBackend({ size: 8 * 1024 * 1024 });
    const error = await openDevice({
      ...kernel.roots,
      skipPreflight: true,
      name: 'rollback',
      backend,
      hba: 3,
    }).catch((e: unknown) => e);
    expect(isCoreError(error, 'TCMU_ERR_CORE_OPEN')).toBe(true);
    expect(kernel.operations.some((o) => o.operation === 'mkdir' && o.path.endsWith('user_3/rollback'))).toBe(
      true,
    );
    expect(await kernel.snapshot()).toEqual(before);
    // The backend was not closed: it is still the caller's.
    await backend.write(0, [new Uint8Array(512).fill(7)]);
  });
});
