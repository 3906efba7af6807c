import { afterEach, describe, expect, it, vi } from 'vitest';
import { type ConfigfsError, isConfigfsError, mountConfigfs, preflight } from './index';
import { createFakeKernel, type FakeKernel, type FakeKernelOptions } from './testing/index';

let kernel: FakeKernel;
afterEach(async () => {
  await kernel?.dispose();
});

async function failure(
  options: FakeKernelOptions,
  extra: Record<string, unknown> = {},
): Promise<ConfigfsError> {
  kernel = await createFakeKernel(options);
  const error = await preflight({ ...kernel.roots, ...extra }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isConfigfsError(error), String(error)).toBe(true);
  return error as ConfigfsError;
}

describe('preflight', () => {
  it('passes on a complete kernel, reports features, and leaves the tree as it was', async () => {
    kernel = await createFakeKernel();
    const before = await kernel.snapshot();
    const report = await preflight(kernel.roots);
    expect(report).toEqual({
      modulesLoaded: [],
      features: {
        netlinkReplyOptOut: true,
        commandRingSize: true,
        dataPagesPerBlock: true,
        taskManagementNotification: true,
        devConfigAttribute: true,
        loopbackAddress: true,
      },
    });
    expect(await kernel.snapshot()).toEqual(before);
    // The probe device is marked as ours and never enabled.
    const writes = kernel.operations.filter((op) => op.operation === 'write');
    expect(writes.map((op) => op.data)).toEqual([
      expect.stringMatching(
        new RegExp(`^dev_config=tcmu-ts/tcmu-ts-probe-${process.pid}/${process.pid}/\\d+$`),
      ),
    ]);
    expect(writes[0]?.path).toMatch(/core\/user_0\/tcmu-ts-probe-\d+\/control$/);
  });

  it('says when it is not root, before touching anything', async () => {
    const getuid = vi.spyOn(process, 'getuid').mockReturnValue(1000);
    try {
      const error = await failure({});
      expect(error.code).toBe('TCMU_ERR_NOT_ROOT');
      expect(error.message).toMatch(/run as root/);
      expect(kernel.operations).toEqual([]);
      await expect(preflight({ ...kernel.roots, requireRoot: false })).resolves.toBeDefined();
    } finally {
      getuid.mockRestore();
    }
  });

  it('detects missing optional features by attribute existence', async () => {
    kernel = await createFakeKernel({ features: { commandRingSize: false, dataPagesPerBlock: false } });
    const { features } = await preflight(kernel.roots);
    expect(features.commandRingSize).toBe(false);
    expect(features.dataPagesPerBlock).toBe(false);
    expect(features.netlinkReplyOptOut).toBe(true);
  });

  it('loads missing modules with modprobe and says which it loaded', async () => {
    kernel = await createFakeKernel({ loadedModules: ['target_core_user', 'sd_mod'] });
    const report = await preflight(kernel.roots);
    expect(report.modulesLoaded).toEqual(['tcm_loop', 'sg']);
    expect(
      kernel.operations.filter((op) => op.operation === 'run').map((op) => `${op.path} ${op.data}`),
    ).toEqual(['modprobe tcm_loop', 'modprobe sg']);
  });

  it('names the modules modprobe could not load', async () => {
    const error = await failure({ loadedModules: ['sd_mod', 'sg'], loadableModules: ['target_core_user'] });
    expect(error.code).toBe('TCMU_ERR_MODULE_MISSING');
    expect(error.modules).toEqual(['tcm_loop']);
    expect(error.message).toMatch(/tcm_loop: modprobe: FATAL: Module tcm_loop not found/);
  });

  it('does not modprobe when told not to', async () => {
    const error = await failure({ loadedModules: [] }, { loadModules: false });
    expect(error.code).toBe('TCMU_ERR_MODULE_MISSING');
    expect(error.modules).toEqual(['target_core_user', 'tcm_loop', 'sd_mod', 'sg']);
    expect(kernel.operations).toEqual([]);
  });

  it('says configfs is not mounted, and mountConfigfs() fixes it', async () => {
    const error = await failure({ configfsMounted: false });
    expect(error.code).toBe('TCMU_ERR_CONFIGFS_NOT_MOUNTED');
    expect(error.message).toMatch(/mountConfigfs\(\)/);
    await mountConfigfs(kernel.roots);
    expect(kernel.operations.at(-1)).toMatchObject({
      operation: 'run',
      path: 'mount',
      data: `-t configfs configfs ${kernel.configfsRoot}`,
    });
    await mountConfigfs(kernel.roots); // already mounted: no second mount
    expect(kernel.operations.filter((op) => op.path === 'mount')).toHaveLength(1);
    await expect(preflight(kernel.roots)).resolves.toBeDefined();
  });

  it('refuses a kernel without nl_reply_supported', async () => {
    const error = await failure({ features: { netlinkReplyOptOut: false } });
    expect(error.code).toBe('TCMU_ERR_KERNEL_FEATURE_MISSING');
    expect(error.feature).toBe('nl_reply_supported');
    expect(await kernel.snapshot()).not.toContainEqual(expect.stringContaining('probe'));
  });

  it('refuses tcm_loop without the tpgt address', async () => {
    const error = await failure({ features: { loopbackAddress: false } });
    expect(error.code).toBe('TCMU_ERR_KERNEL_FEATURE_MISSING');
    expect(error.feature).toBe('tcm_loop address');
  });

  it('keeps an HBA and fabric folder someone else uses, and removes them when it leaves them empty', async () => {
    kernel = await createFakeKernel();
    await kernel.system.mkdir(`${kernel.configfsRoot}/target/core/user_0`);
    await kernel.system.mkdir(`${kernel.configfsRoot}/target/core/user_0/runner`);
    await kernel.system.mkdir(`${kernel.configfsRoot}/target/loopback`);
    await kernel.system.mkdir(`${kernel.configfsRoot}/target/loopback/naa.5001405000000001`);
    const before = await kernel.snapshot();
    await preflight(kernel.roots);
    expect(await kernel.snapshot()).toEqual(before);

    await kernel.system.rmdir(`${kernel.configfsRoot}/target/core/user_0/runner`);
    await kernel.system.rmdir(`${kernel.configfsRoot}/target/loopback/naa.5001405000000001`);
    await preflight(kernel.roots);
    const after = await kernel.snapshot();
    expect(after.some((p) => p.endsWith('target/core/user_0'))).toBe(false);
    expect(after.some((p) => p.endsWith('target/loopback'))).toBe(false);
  });

  it('skips the probe when asked', async () => {
    kernel = await createFakeKernel();
    const report = await preflight({ ...kernel.roots, probe: false });
    expect(report.features.loopbackAddress).toBeUndefined();
    expect(kernel.operations).toEqual([]);
  });
});
