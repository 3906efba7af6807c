import { afterEach, describe, expect, it } from 'vitest';
import { createUserDevice, exportIscsi, isConfigfsError, removeDevice } from './index';
import { createFakeKernel, type FakeKernel } from './testing/index';
import { TreeState, treeState } from './tree-state';

const kernels: FakeKernel[] = [];
afterEach(async () => {
  for (const kernel of kernels.splice(0)) await kernel.dispose();
});
async function fakeKernel(): Promise<FakeKernel> {
  const kernel = await createFakeKernel();
  kernels.push(kernel);
  return kernel;
}

const disk = { hba: 1, size: 1 << 20, blockSize: 512, serial: 'serial-t' } as const;

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('TreeState.lock', () => {
  it('runs work queued on one tree one after the other, also after a failure', async () => {
    const state = new TreeState();
    const order: string[] = [];
    const gate = deferred();
    const first = state.lock(async () => {
      order.push('first starts');
      await gate.promise;
      order.push('first ends');
      throw new Error('first failed');
    });
    const second = state.lock(async () => {
      order.push('second');
      return 2;
    });
    await Promise.resolve();
    expect(order).toEqual(['first starts']);
    gate.resolve();
    await expect(first).rejects.toThrow('first failed');
    await expect(second).resolves.toBe(2);
    expect(order).toEqual(['first starts', 'first ends', 'second']);
  });

  it('is one per configfs root: the same root finds the same state, another root does not wait on it', async () => {
    expect(treeState('/tree-state-test/a')).toBe(treeState('/tree-state-test/a'));
    const blocked = deferred();
    void treeState('/tree-state-test/a').lock(() => blocked.promise);
    await expect(treeState('/tree-state-test/b').lock(async () => 'b ran')).resolves.toBe('b ran');
    blocked.resolve();
  });
});

describe('what this process made is recorded per configfs tree', () => {
  it('a device created through one set of roots is this process’s to removeDevice through another', async () => {
    const kernel = await fakeKernel();
    const before = await kernel.snapshot();
    const device = await createUserDevice({ ...kernel.roots, ...disk, name: 'mine' });
    // A fresh roots object: removeDevice resolves the tree anew and finds the live device there.
    await removeDevice({ ...kernel.roots, name: 'mine' });
    expect(await kernel.snapshot()).toEqual(before);
    const error = await device.setBlocked(true).catch((e: unknown) => e);
    expect(isConfigfsError(error, 'TCMU_ERR_REMOVED')).toBe(true);
  });

  it('the iscsi fabric folder made in one tree does not make this process remove another tree’s', async () => {
    const one = await fakeKernel();
    const two = await fakeKernel();
    // In tree two someone else made the iscsi fabric folder before this process exported anything.
    await two.system.mkdir(`${two.configfsRoot}/target/iscsi`);
    const allow = ['iqn.2004-10.com.example:client1'];
    await createUserDevice({ ...one.roots, ...disk, name: 'vol' });
    await createUserDevice({ ...two.roots, ...disk, name: 'vol' });
    const exportOne = await exportIscsi({ ...one.roots, hba: 1, name: 'vol', allow });
    const exportTwo = await exportIscsi({ ...two.roots, hba: 1, name: 'vol', allow });
    await exportTwo.remove();
    expect(await two.system.kind(`${two.configfsRoot}/target/iscsi`)).toBe('directory');
    await exportOne.remove();
    expect(await one.system.kind(`${one.configfsRoot}/target/iscsi`)).toBeUndefined();
  });

  it('a tcm_loop target this process made in one tree does not let it add LUNs to one of that WWN in another', async () => {
    const one = await fakeKernel();
    const two = await fakeKernel();
    const first = await createUserDevice({ ...one.roots, ...disk, name: 'a' });
    const attached = await first.attachLoopback();
    await two.system.mkdir(`${two.configfsRoot}/target/loopback`);
    await two.system.mkdir(`${two.configfsRoot}/target/loopback/${attached.wwn}`);
    const second = await createUserDevice({ ...two.roots, ...disk, name: 'b' });
    const error = await second.attachLoopback({ wwn: attached.wwn }).catch((e: unknown) => e);
    expect(isConfigfsError(error, 'TCMU_ERR_NOT_OWNER')).toBe(true);
    await first.remove();
    await second.remove();
  });
});
