import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { openMemoryBackend } from '@tcmu/backend-memory';
import { createFakeKernel, type FakeKernel } from '@tcmu/configfs/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { emulate } from './emulation/handler';
import { isCoreError } from './errors';
import { type OpenDeviceOptions, openDevice } from './open-device';

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
    const other = await openMemoryBackend({ size: 1024 * 1024 });
    // @ts-expect-error neither a backend nor a handler: a type error, and refused at run time too.
    const nothing: OpenDeviceOptions = { name: 'c' };
    for (const options of [
      { name: 'a', backend, blockSize: 1000 },
      { name: 'b', backend, size: 1000 },
      nothing,
      { name: 'd', backend, queueDepth: 0 },
      { name: 'e', backend, handler: emulate(other) },
      { name: 'f', backend, commandTimeoutSeconds: -1 },
      { name: 'g', backend, vendor: 'much too long a vendor name' },
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

describe('openDevice: data_pages_per_blk', () => {
  /** The control tokens an open wrote (it fails later: the fake kernel's uio cannot be mapped). */
  async function controlWrites(
    features: { dataPagesPerBlock?: boolean },
    options: Partial<OpenDeviceOptions>,
  ): Promise<{ tokens: string[]; error: unknown }> {
    kernel = await createFakeKernel({ features });
    const backend = await openMemoryBackend({ size: 8 * 1024 * 1024 });
    const error = await openDevice({ ...kernel.roots, name: 'dpb', backend, ...options }).catch(
      (e: unknown) => e,
    );
    const tokens = kernel.operations
      .filter((o) => o.operation === 'write' && o.path.endsWith('/dpb/control'))
      .map((o) => String(o.data));
    return { tokens, error };
  }

  it('asks for 64 KiB blocks by default where the kernel has the setting', async () => {
    const { tokens } = await controlWrites({}, {});
    expect(tokens).toContain('data_pages_per_blk=16');
  });

  it('leaves the kernel default on a kernel without the setting', async () => {
    const { tokens, error } = await controlWrites({ dataPagesPerBlock: false }, {});
    expect(tokens.some((t) => t.startsWith('data_pages_per_blk'))).toBe(false);
    expect(tokens.some((t) => t.startsWith('dev_size='))).toBe(true);
    expect(isCoreError(error, 'TCMU_ERR_CORE_OPEN')).toBe(true);
  });

  it('writes an explicit value, and refuses it on a kernel without the setting', async () => {
    expect((await controlWrites({}, { dataPagesPerBlock: 4 })).tokens).toContain('data_pages_per_blk=4');
    await kernel?.dispose();
    const { tokens, error } = await controlWrites({ dataPagesPerBlock: false }, { dataPagesPerBlock: 4 });
    expect(tokens).toEqual([]);
    expect(isCoreError(error, 'TCMU_ERR_CORE_OPEN')).toBe(true);
    expect((error as Error).cause).toMatchObject({ code: 'TCMU_ERR_KERNEL_FEATURE_MISSING' });
  });
});

describe('openDevice({ takeOver: true }) against a fake configfs', () => {
  let owner: ChildProcess | undefined;
  afterEach(() => {
    owner?.kill('SIGKILL');
    owner = undefined;
  });

  /** A device left in configfs by another process (a `sleep`), as `tcmu serve` would have left it. */
  async function orphanCandidate(fake: FakeKernel, name: string, size: number): Promise<string> {
    owner = spawn('sleep', ['600'], { stdio: 'ignore' });
    await new Promise((resolve) => owner!.once('spawn', resolve));
    const stat = await readFile(`/proc/${owner.pid}/stat`, 'utf8');
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    const s = fake.system;
    const dir = `${fake.configfsRoot}/target/core/user_0/${name}`;
    await s.mkdir(`${fake.configfsRoot}/target/core/user_0`);
    await s.mkdir(dir);
    await s.writeFile(`${dir}/control`, `dev_config=tcmu-ts/${name}/${owner.pid}/${start}`);
    await s.writeFile(`${dir}/control`, `dev_size=${size}`);
    await s.writeFile(`${dir}/control`, 'nl_reply_supported=-1');
    await s.writeFile(`${dir}/wwn/vpd_unit_serial`, 'old-serial');
    await s.writeFile(`${dir}/enable`, '1');
    return dir;
  }

  async function killOwner() {
    const exited = new Promise((resolve) => owner!.once('exit', resolve));
    owner!.kill('SIGKILL');
    await exited;
    owner = undefined;
  }

  it('refuses a device whose owner still runs (cause TCMU_ERR_DEVICE_IN_USE) and writes nothing', async () => {
    kernel = await createFakeKernel({ netlinkListener: true });
    await orphanCandidate(kernel, 'live', 1024 * 1024);
    const writes = kernel.operations.length;
    const backend = await openMemoryBackend({ size: 1024 * 1024 });
    const error = await openDevice({
      ...kernel.roots,
      skipPreflight: true,
      name: 'live',
      backend,
      takeOver: true,
    }).catch((e: unknown) => e);
    expect(isCoreError(error, 'TCMU_ERR_CORE_OPEN'), String(error)).toBe(true);
    expect(((error as Error).cause as { code?: string }).code).toBe('TCMU_ERR_DEVICE_IN_USE');
    expect(kernel.operations.slice(writes).filter((o) => o.operation === 'write')).toEqual([]);
  });

  it('refuses a take-over with another size, before touching the device', async () => {
    kernel = await createFakeKernel({ netlinkListener: true });
    await orphanCandidate(kernel, 'sized', 1024 * 1024);
    await killOwner();
    const writes = kernel.operations.length;
    const backend = await openMemoryBackend({ size: 2 * 1024 * 1024 });
    const error = await openDevice({
      ...kernel.roots,
      skipPreflight: true,
      name: 'sized',
      backend,
      takeOver: true,
    }).catch((e: unknown) => e);
    expect(isCoreError(error, 'TCMU_ERR_CORE_INVALID_OPTION'), String(error)).toBe(true);
    expect(kernel.operations.slice(writes).filter((o) => o.operation === 'write')).toEqual([]);
  });

  it('takes a dead owner’s device over with block_dev 1, reset_ring 1, block_dev 0; when serving then fails, the device stays for the next try', async () => {
    kernel = await createFakeKernel({ netlinkListener: true });
    const dir = await orphanCandidate(kernel, 'dead', 1024 * 1024);
    await killOwner();
    const start = kernel.operations.length;
    const backend = await openMemoryBackend({ size: 1024 * 1024 });
    // The fake kernel's uio device cannot be mapped, so the ring step fails after the configfs steps.
    const error = await openDevice({
      ...kernel.roots,
      skipPreflight: true,
      name: 'dead',
      backend,
      takeOver: true,
    }).catch((e: unknown) => e);
    expect(isCoreError(error, 'TCMU_ERR_CORE_OPEN'), String(error)).toBe(true);
    const actions = kernel.operations
      .slice(start)
      .filter((o) => o.operation === 'write' && o.path.includes('/action/'))
      .map((o) => `${o.path.split('/').pop()}=${o.data}`);
    expect(actions).toEqual(['block_dev=1', 'reset_ring=1', 'block_dev=0']);
    expect(await kernel.system.kind(dir)).toBe('directory');
  });

  it('rejects timeouts out of range before touching configfs', async () => {
    kernel = await createFakeKernel();
    const backend = await openMemoryBackend({ size: 1024 * 1024 });
    for (const options of [
      { commandTimeoutSeconds: -1 },
      { queueFullTimeoutSeconds: -2 },
      { scsiTimeoutSeconds: 0 },
    ]) {
      const error = await openDevice({
        ...kernel.roots,
        skipPreflight: true,
        name: 't',
        backend,
        ...options,
      }).catch((e: unknown) => e);
      expect(isCoreError(error, 'TCMU_ERR_CORE_INVALID_OPTION'), String(error)).toBe(true);
    }
    expect(kernel.operations.filter((o) => o.operation === 'write')).toEqual([]);
  });
});
