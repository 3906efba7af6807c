import { type ChildProcess, spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type ConfigfsErrorCode,
  createUserDevice,
  isConfigfsError,
  listDevices,
  reattachUserDevice,
  removeDevice,
  removeStale,
} from './index';
import { processStartTime } from './ownership';
import { createFakeKernel, type FakeKernel } from './testing/index';

let kernel: FakeKernel;
let child: ChildProcess | undefined;

beforeEach(async () => {
  kernel = await createFakeKernel();
});
afterEach(async () => {
  child?.kill('SIGKILL');
  child = undefined;
  await kernel.dispose();
});

async function expectCode(promise: Promise<unknown>, code: ConfigfsErrorCode) {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isConfigfsError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
}

/** Creates, through plain configfs operations, a device as another process would have left it. */
async function foreignDevice(
  hba: number,
  name: string,
  devConfig: string,
  lun?: { wwn: string; lun: number },
) {
  const s = kernel.system;
  const core = `${kernel.configfsRoot}/target/core`;
  if ((await s.kind(`${core}/user_${hba}`)) === undefined) await s.mkdir(`${core}/user_${hba}`);
  const dir = `${core}/user_${hba}/${name}`;
  await s.mkdir(dir);
  await s.writeFile(`${dir}/control`, `dev_config=${devConfig}`);
  await s.writeFile(`${dir}/control`, 'dev_size=1048576');
  await s.writeFile(`${dir}/control`, 'nl_reply_supported=-1');
  await s.writeFile(`${dir}/enable`, '1');
  if (lun) {
    const fabric = `${kernel.configfsRoot}/target/loopback`;
    if ((await s.kind(fabric)) === undefined) await s.mkdir(fabric);
    const tpgt = `${fabric}/${lun.wwn}/tpgt_1`;
    if ((await s.kind(`${fabric}/${lun.wwn}`)) === undefined) {
      await s.mkdir(`${fabric}/${lun.wwn}`);
      await s.mkdir(tpgt);
      await s.writeFile(`${tpgt}/nexus`, 'naa.5001405fffffffff');
    }
    await s.mkdir(`${tpgt}/lun/lun_${lun.lun}`);
    await s.symlink(dir, `${tpgt}/lun/lun_${lun.lun}/link`);
  }
  return dir;
}

/** A real process to own a device; returns its dev_config. */
async function spawnOwner(name: string): Promise<string> {
  child = spawn('sleep', ['600'], { stdio: 'ignore' });
  await new Promise((resolve) => child!.once('spawn', resolve));
  const start = await processStartTime(kernel.system, '/proc', child.pid!);
  return `tcmu-ts/${name}/${child.pid}/${start}`;
}

async function killOwner() {
  const exited = new Promise((resolve) => child!.once('exit', resolve));
  child!.kill('SIGKILL');
  await exited;
  child = undefined;
}

describe('listDevices', () => {
  it('lists only this toolkit’s devices with their state; all: true adds the others', async () => {
    await foreignDevice(1, 'runner', 'fbo/runner.img');
    const device = await createUserDevice({
      ...kernel.roots,
      hba: 2,
      name: 'mine',
      size: 1 << 20,
      blockSize: 512,
      serial: 's',
    });
    const lun = await device.attachLoopback({ lun: 3 });
    const mine = await listDevices(kernel.roots);
    expect(mine).toEqual([
      {
        hba: 2,
        name: 'mine',
        configfsPath: device.configfsPath,
        devConfig: device.devConfig,
        owned: true,
        owner: { pid: process.pid, startTime: Number(device.devConfig.split('/')[3]) },
        ownerAlive: true,
        uioHolders: [],
        stale: false,
        enabled: true,
        uio: device.uio,
        size: 1 << 20,
        luns: [
          {
            wwn: lun.wwn,
            tpgt: 1,
            lun: 3,
            address: lun.address,
            blockDevice: lun.blockDevice,
            devicePath: lun.devicePath,
            sgPath: lun.sgPath,
          },
        ],
      },
    ]);
    const all = await listDevices({ ...kernel.roots, all: true });
    expect(all.map((d) => [d.hba, d.name, d.owned, d.stale])).toEqual([
      [1, 'runner', false, false],
      [2, 'mine', true, false],
    ]);
    await device.remove();
  });

  it('reads an empty or missing tree as no devices', async () => {
    expect(await listDevices(kernel.roots)).toEqual([]);
    expect(await listDevices({ ...kernel.roots, configfsRoot: `${kernel.root}/nowhere` })).toEqual([]);
  });
});

describe('stale devices', () => {
  it('a device whose owner died is stale; removeStale removes it and its LUN, leaving the tree as before', async () => {
    const before = await kernel.snapshot();
    const devConfig = await spawnOwner('crashed');
    await foreignDevice(5, 'crashed', devConfig, { wwn: 'naa.5001405000000abc', lun: 0 });
    let [record] = await listDevices(kernel.roots);
    expect(record).toMatchObject({
      name: 'crashed',
      owned: true,
      ownerAlive: true,
      stale: false,
      enabled: true,
    });
    expect(record?.luns.map((l) => l.lun)).toEqual([0]);
    expect(await removeStale(kernel.roots)).toEqual([]);
    await expectCode(removeDevice({ ...kernel.roots, name: 'crashed' }), 'TCMU_ERR_DEVICE_IN_USE');

    await killOwner();
    [record] = await listDevices(kernel.roots);
    expect(record).toMatchObject({ ownerAlive: false, stale: true });
    const removed = await removeStale(kernel.roots);
    expect(removed.map((d) => d.name)).toEqual(['crashed']);
    expect(await kernel.snapshot()).toEqual(before);
    const order = kernel.operations
      .filter((op) => op.operation === 'write' || op.operation === 'unlink' || op.operation === 'rmdir')
      .slice(-10)
      .map((op) => `${op.operation} ${op.path.replace('config/target/', '')}${op.data ? ` ${op.data}` : ''}`);
    expect(order).toEqual([
      'write loopback/naa.5001405000000abc/tpgt_1/nexus naa.5001405fffffffff',
      'write core/user_5/crashed/action/reset_ring 2',
      'unlink loopback/naa.5001405000000abc/tpgt_1/lun/lun_0/link',
      'rmdir loopback/naa.5001405000000abc/tpgt_1/lun/lun_0',
      'write loopback/naa.5001405000000abc/tpgt_1/nexus NULL',
      'rmdir loopback/naa.5001405000000abc/tpgt_1',
      'rmdir loopback/naa.5001405000000abc',
      'rmdir loopback',
      'rmdir core/user_5/crashed',
      'rmdir core/user_5',
    ]);
  });

  it('removeStale leaves a target that still holds another process’s LUN', async () => {
    const alive = await spawnOwner('alive');
    await foreignDevice(5, 'alive', alive, { wwn: 'naa.5001405000000abc', lun: 1 });
    const dead = 'tcmu-ts/dead/999999999/1';
    await foreignDevice(5, 'dead', dead, { wwn: 'naa.5001405000000abc', lun: 0 });
    expect((await removeStale(kernel.roots)).map((d) => d.name)).toEqual(['dead']);
    const after = await kernel.snapshot();
    expect(
      after.some((p) =>
        p.endsWith('naa.5001405000000abc/tpgt_1/lun/lun_1/link -> config/target/core/user_5/alive'),
      ),
    ).toBe(true);
    expect(after.some((p) => p.includes('lun_0'))).toBe(false);
    expect(after.some((p) => p.endsWith('core/user_5/dead'))).toBe(false);
    expect(kernel.operations.some((op) => op.path.endsWith('nexus') && op.data === 'NULL')).toBe(false);
  });

  it('a reused pid (different start time) counts as dead', async () => {
    await foreignDevice(1, 'reused', `tcmu-ts/reused/${process.pid}/1`);
    const [record] = await listDevices(kernel.roots);
    expect(record).toMatchObject({ ownerAlive: false, stale: true });
  });

  it('never removes a device it did not create, even with force', async () => {
    await foreignDevice(1, 'runner', 'qcow/x.qcow2');
    await expectCode(removeDevice({ ...kernel.roots, name: 'runner', force: true }), 'TCMU_ERR_NOT_OWNER');
    expect(await removeStale(kernel.roots)).toEqual([]);
    expect((await listDevices({ ...kernel.roots, all: true })).map((d) => d.name)).toEqual(['runner']);
  });

  it('removeDevice: not found, ambiguous, force on a live owner, own device', async () => {
    await expectCode(removeDevice({ ...kernel.roots, name: 'nope' }), 'TCMU_ERR_NOT_FOUND');
    await expectCode(removeDevice({ ...kernel.roots, name: 'a/b' }), 'TCMU_ERR_INVALID_NAME');
    const owner = await spawnOwner('x');
    await foreignDevice(1, 'x', owner);
    await foreignDevice(2, 'x', owner.replace('/x/', '/x/'));
    await expectCode(removeDevice({ ...kernel.roots, name: 'x' }), 'TCMU_ERR_INVALID_ARGUMENT');
    await removeDevice({ ...kernel.roots, name: 'x', hba: 1, force: true });
    expect((await listDevices(kernel.roots)).map((d) => d.hba)).toEqual([2]);
    const mine = await createUserDevice({
      ...kernel.roots,
      hba: 7,
      name: 'mine',
      size: 1 << 20,
      blockSize: 512,
      serial: 's',
    });
    await mine.attachLoopback();
    await removeDevice({ ...kernel.roots, name: 'mine' });
    expect((await listDevices(kernel.roots)).map((d) => d.name)).toEqual(['x']);
    await expectCode(mine.resize(1 << 21), 'TCMU_ERR_REMOVED');
  });
});

describe('reattachUserDevice', () => {
  it('blocks, resets the ring, unblocks, takes ownership and adopts the LUN; remove() then cleans all', async () => {
    await kernel.dispose();
    kernel = await createFakeKernel({ netlinkListener: true });
    const before = await kernel.snapshot();
    const devConfig = await spawnOwner('again');
    await foreignDevice(4, 'again', devConfig, { wwn: 'naa.5001405000000def', lun: 2 });
    await expectCode(reattachUserDevice({ ...kernel.roots, name: 'again' }), 'TCMU_ERR_DEVICE_IN_USE');
    await killOwner();
    const start = kernel.operations.length;
    const device = await reattachUserDevice({ ...kernel.roots, name: 'again' });
    expect(
      kernel.operations.slice(start).map((op) => `${op.path.split('/').slice(-2).join('/')}=${op.data}`),
    ).toEqual([
      'action/block_dev=1',
      'action/reset_ring=1',
      'action/block_dev=0',
      `attrib/dev_config=${device.devConfig}`,
    ]);
    expect(device.devConfig.startsWith(`tcmu-ts/again/${process.pid}/`)).toBe(true);
    expect(device.uio).toBe('uio0');
    expect(device.size).toBe(1048576);
    expect(device.attachments.map((a) => [a.wwn, a.lun, a.blockDevice])).toEqual([
      ['naa.5001405000000def', 2, 'sdb'],
    ]);
    const [record] = await listDevices(kernel.roots);
    expect(record).toMatchObject({ ownerAlive: true, stale: false });
    await device.remove();
    // The dead owner's HBA was adopted too: everything is gone.
    expect(await kernel.snapshot()).toEqual(before);
  });

  it('without a netlink listener the owner mark stays, but holding the uio device open keeps it in use', async () => {
    const devConfig = await spawnOwner('held');
    await foreignDevice(4, 'held', devConfig);
    await killOwner();
    const device = await reattachUserDevice({ ...kernel.roots, name: 'held' });
    expect(device.devConfig).toBe(devConfig); // the kernel refused the new mark (ESRCH)
    let [record] = await listDevices(kernel.roots);
    expect(record).toMatchObject({ ownerAlive: false, uioHolders: [], stale: true });
    const handle = await open(device.uioPath, 'r'); // what the ring does
    try {
      [record] = await listDevices(kernel.roots);
      expect(record).toMatchObject({ ownerAlive: false, uioHolders: [process.pid], stale: false });
      expect(await removeStale(kernel.roots)).toEqual([]);
    } finally {
      await handle.close();
    }
    await device.remove();
    expect(await listDevices(kernel.roots)).toEqual([]);
  });

  it('refuses a device that is not ours', async () => {
    await foreignDevice(1, 'runner', 'fbo/runner');
    await expectCode(reattachUserDevice({ ...kernel.roots, name: 'runner' }), 'TCMU_ERR_NOT_OWNER');
  });
});
