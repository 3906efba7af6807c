import { spawnSync } from 'node:child_process';
import { createFakeKernel, type FakeKernel } from '@tcmu/configfs/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { captureIo } from '../test-support.js';
import { formatTable, listCommand, toListing } from './ls.js';
import { removeCommand, skipCacheFlushOnRemoval } from './rm.js';

let kernel: FakeKernel;
beforeEach(async () => {
  kernel = await createFakeKernel();
});
afterEach(async () => {
  await kernel.dispose();
});

/** A pid that no process has now (a child that already exited). */
const deadPid = () => spawnSync('true').pid!;

/** Creates a device the way another process would (by hand through configfs), owned by `pid`. */
async function makeDevice(name: string, devConfig: string, hba = 1, size = 64 * 1024 * 1024) {
  const path = `${kernel.configfsRoot}/target/core/user_${hba}/${name}`;
  await kernel.system.mkdir(`${kernel.configfsRoot}/target/core/user_${hba}`).catch(() => {});
  await kernel.system.mkdir(path);
  for (const token of [`dev_config=${devConfig}`, `dev_size=${size}`, 'nl_reply_supported=-1'])
    await kernel.system.writeFile(`${path}/control`, token);
  await kernel.system.writeFile(`${path}/enable`, '1');
  return path;
}
const owned = (name: string, pid: number) => `tcmu-ts/${name}/${pid}/0`;

describe('tcmu ls', () => {
  it('lists only this toolkit’s devices, with their state', async () => {
    await makeDevice('alive', owned('alive', process.pid));
    await makeDevice('gone', owned('gone', deadPid()), 2, 1024 * 1024);
    await makeDevice('foreign', 'file//var/lib/x.img');
    const { io, stdout } = captureIo();
    expect(await listCommand(['--json'], io, kernel.roots)).toBe(0);
    const listed = JSON.parse(stdout()) as {
      name: string;
      state: string;
      hba: number;
      size: number;
      pid: number;
    }[];
    expect(
      listed
        .map(({ name, state, hba, size }) => ({ name, state, hba, size }))
        .sort((a, b) => a.name.localeCompare(b.name)),
    ).toEqual([
      { name: 'alive', state: 'starting', hba: 1, size: 64 * 1024 * 1024 },
      { name: 'gone', state: 'stale', hba: 2, size: 1024 * 1024 },
    ]);
    const table = captureIo();
    expect(await listCommand([], table.io, kernel.roots)).toBe(0);
    expect(table.stdout()).toMatch(/^NAME\s+HBA\s+STATE\s+SIZE\s+DEVICE\s+PID\n/);
    expect(table.stdout()).toMatch(/gone\s+2\s+stale\s+1 MiB\s+-/);
  });

  it('says so when there are no devices', async () => {
    const { io, stdout } = captureIo();
    expect(await listCommand([], io, kernel.roots)).toBe(0);
    expect(stdout()).toBe('no devices\n');
  });

  it('formats a serving device with its disk', () => {
    const listing = toListing({
      hba: 0,
      name: 'db',
      configfsPath: '/x',
      devConfig: 'tcmu-ts/db/10/0',
      owned: true,
      owner: { pid: 10, startTime: 0 },
      ownerAlive: true,
      uioHolders: [],
      stale: false,
      enabled: true,
      uio: 'uio0',
      size: 1024 ** 3,
      luns: [
        {
          wwn: 'naa.5001405000000000',
          tpgt: 1,
          lun: 0,
          address: undefined,
          blockDevice: 'sdb',
          devicePath: '/dev/sdb',
          sgPath: '/dev/sg1',
        },
      ],
    });
    expect(listing).toMatchObject({
      state: 'serving',
      devices: ['/dev/sdb'],
      genericDevices: ['/dev/sg1'],
      pid: 10,
    });
    expect(formatTable([listing])).toBe(
      'NAME  HBA  STATE    SIZE   DEVICE    PID\ndb    0    serving  1 GiB  /dev/sdb  10',
    );
  });
});

describe('tcmu rm', () => {
  it('--stale removes the devices whose server is gone and nothing else', async () => {
    await makeDevice('alive', owned('alive', process.pid));
    const stalePath = await makeDevice('gone', owned('gone', deadPid()), 2);
    const foreignPath = await makeDevice('foreign', 'file//x.img', 3);
    const { io, stdout } = captureIo();
    expect(await removeCommand(['--stale'], io, kernel.roots)).toBe(0);
    expect(stdout()).toBe('removed gone (stale, hba 2)\n');
    const left = await kernel.snapshot();
    expect(left.some((path) => path.includes('user_2'))).toBe(false);
    expect(left.some((path) => path.includes(foreignPath.slice(kernel.root.length + 1)))).toBe(true);
    expect(left.some((path) => path.includes(stalePath.slice(kernel.root.length + 1)))).toBe(false);
    const again = captureIo();
    expect(await removeCommand(['--stale'], again.io, kernel.roots)).toBe(0);
    expect(again.stdout()).toBe('no stale devices\n');
  });

  it('removes a stale device by name', async () => {
    await makeDevice('gone', owned('gone', deadPid()));
    const { io, stdout } = captureIo();
    expect(await removeCommand(['gone'], io, kernel.roots)).toBe(0);
    expect(stdout()).toBe('removed gone (stale, hba 1)\n');
    expect((await kernel.snapshot()).some((path) => path.includes('/gone'))).toBe(false);
  });

  it('asks a live server to stop (SIGTERM) and waits until its device is gone', async () => {
    const path = await makeDevice('alive', owned('alive', process.pid));
    const signals: [number, string][] = [];
    const { io, stdout } = captureIo();
    let sleeps = 0;
    const code = await removeCommand(['alive'], io, kernel.roots, {
      kill: (pid, signal) => {
        signals.push([pid, signal]);
      },
      sleep: async () => {
        // The "server" tears its device down after a few polls.
        if (++sleeps === 3) {
          await kernel.system.writeFile(`${path}/enable`, '0').catch(() => {});
          await kernel.system.rmdir(path);
        }
      },
    });
    expect(code).toBe(0);
    expect(signals).toEqual([[process.pid, 'SIGTERM']]);
    expect(sleeps).toBe(3);
    expect(stdout()).toBe(`removed alive (stopped pid ${process.pid})\n`);
  });

  it('gives up on a server that does not stop, leaving its device alone', async () => {
    await makeDevice('stuck', owned('stuck', process.pid));
    const error = await removeCommand(['stuck', '--timeout', '1'], captureIo().io, kernel.roots, {
      kill: () => {},
      sleep: async () => {},
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'TCMU_ERR_CLI_DEVICE_BUSY',
      message: expect.stringMatching(/still served by pid/),
    });
    expect((await kernel.snapshot()).some((path) => path.endsWith('/stuck'))).toBe(true);
  });

  it('refuses unknown names (and foreign devices) before removing anything', async () => {
    await makeDevice('gone', owned('gone', deadPid()));
    await makeDevice('foreign', 'file//x.img', 3);
    for (const name of ['nope', 'foreign']) {
      const error = await removeCommand(['gone', name], captureIo().io, kernel.roots).catch(
        (e: unknown) => e,
      );
      expect(error).toMatchObject({
        code: 'TCMU_ERR_CLI_NO_SUCH_DEVICE',
        message: `no device named "${name}" created by tcmu`,
      });
    }
    expect((await kernel.snapshot()).some((path) => path.endsWith('/gone'))).toBe(true);
  });
});

describe('skipCacheFlushOnRemoval', () => {
  it('marks each attached disk write-through in sysfs (kernel view only), ignoring failures', async () => {
    const writes: [string, string][] = [];
    const system = {
      ...kernel.system,
      writeFile: async (path: string, text: string) => {
        writes.push([path, text]);
        if (path.includes(':9:')) throw Object.assign(new Error('gone'), { code: 'ENOENT' });
      },
    };
    const lun = (host: number, target: number, blockDevice: string | undefined) => ({
      wwn: 'naa.5001405000000000',
      tpgt: 1,
      lun: 0,
      address: { host, channel: 0, target, lun: 0 },
      blockDevice,
      devicePath: blockDevice && `/dev/${blockDevice}`,
      sgPath: undefined,
    });
    const record = {
      hba: 0,
      name: 'gone',
      configfsPath: '/x',
      devConfig: 'tcmu-ts/gone/1/0',
      owned: true,
      owner: { pid: 1, startTime: 0 },
      ownerAlive: false,
      uioHolders: [],
      stale: true,
      enabled: true,
      uio: 'uio0',
      size: 1024,
      luns: [lun(3, 1, 'sdb'), lun(4, 9, 'sdc'), lun(5, 1, undefined)],
    };
    await skipCacheFlushOnRemoval([record], { system, sysfsRoot: '/fake-sys' });
    expect(writes).toEqual([
      ['/fake-sys/class/scsi_disk/3:0:1:0/cache_type', 'temporary write through'],
      ['/fake-sys/class/scsi_disk/4:0:9:0/cache_type', 'temporary write through'],
    ]);
  });
});
