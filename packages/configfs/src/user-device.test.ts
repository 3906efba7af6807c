import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type ConfigfsErrorCode,
  createUserDevice,
  isConfigfsError,
  listDevices,
  type UserDevice,
} from './index';
import {
  createFakeKernel,
  type FakeKernel,
  type FakeKernelOptions,
  type FakeOperation,
} from './testing/index';

let kernel: FakeKernel;

async function withKernel(options: FakeKernelOptions = {}) {
  kernel = await createFakeKernel(options);
  return kernel;
}

afterEach(async () => {
  await kernel?.dispose();
});

const base = { hba: 3, name: 'disk0', size: 64 * 1024 * 1024, blockSize: 512, serial: 'serial-0' };

async function expectCode(promise: Promise<unknown>, code: ConfigfsErrorCode) {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isConfigfsError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
  return error as Error;
}

describe('createUserDevice', () => {
  beforeEach(async () => {
    await withKernel();
  });

  it('writes one control token per write, the ownership mark first, then enables and finds the uio device', async () => {
    const device = await createUserDevice({
      ...kernel.roots,
      ...base,
      blockSize: 4096,
      maxSectors: 2048,
      maxDataAreaMb: 64,
      commandRingSizeMb: 16,
      attributes: { cmd_time_out: 10, emulate_write_cache: true, tmr_notification: true },
    });
    const tokens = kernel.controlWrites.get('config/target/core/user_3/disk0');
    expect(tokens).toEqual([
      `dev_config=tcmu-ts/disk0/${process.pid}/${device.devConfig.split('/')[3]}`,
      'nl_reply_supported=-1',
      `dev_size=${64 * 1024 * 1024}`,
      'hw_block_size=4096',
      'hw_max_sectors=2048',
      'max_data_area_mb=64',
      'cmd_ring_size_mb=16',
    ]);
    const writes = kernel.operations
      .filter((op) => op.operation === 'write')
      .map((op) => op.path.split('/').slice(-2).join('/'));
    // serial and attributes after the control tokens, enable last
    expect(writes.slice(7)).toEqual([
      'wwn/vpd_unit_serial',
      'attrib/cmd_time_out',
      'attrib/emulate_write_cache',
      'attrib/tmr_notification',
      'disk0/enable',
    ]);
    expect(kernel.operations.find((op) => op.path.endsWith('emulate_write_cache'))?.data).toBe('1');
    expect(device.uio).toBe('uio0');
    expect(device.uioPath).toBe(`${kernel.devRoot}/uio0`);
    expect(device.mapSize).toBe(0x40800000);
    expect(device.configfsPath).toBe(`${kernel.configfsRoot}/target/core/user_3/disk0`);
    expect(device.devConfig.startsWith(`tcmu-ts/disk0/${process.pid}/`)).toBe(true);
    expect(device.size).toBe(64 * 1024 * 1024);
    await device.remove();
  });

  it('does not hang enable while a netlink daemon (tcmu-runner) is registered', async () => {
    await kernel.dispose();
    await withKernel({ netlinkDaemon: true });
    const device = await createUserDevice({ ...kernel.roots, ...base });
    expect(device.uio).toBeDefined();
    await device.remove();
  });

  it('the fake kernel itself refuses enable without the opt-out while a daemon runs (the test above can fail)', async () => {
    await kernel.dispose();
    await withKernel({ netlinkDaemon: true });
    const s = kernel.system;
    const dir = `${kernel.configfsRoot}/target/core/user_9`;
    await s.mkdir(dir);
    await s.mkdir(`${dir}/x`);
    await s.writeFile(`${dir}/x/control`, 'dev_config=fbo/x');
    await expect(s.writeFile(`${dir}/x/enable`, '1')).rejects.toMatchObject({ code: 'ETIMEDOUT' });
  });

  it('removes everything it made, in order, leaving the tree as before', async () => {
    const before = await kernel.snapshot();
    const device = await createUserDevice({ ...kernel.roots, ...base });
    const lun = await device.attachLoopback({ lun: 0 });
    expect(lun.devicePath).toMatch(new RegExp(`^${kernel.devRoot}/sd[a-z]+$`));
    const start = kernel.operations.length;
    await device.detachLoopback();
    await device.remove();
    const teardown = kernel.operations.slice(start).map((op) => {
      const p = op.path.replace('config/target/', '').replace(lun.wwn, 'naa');
      return `${op.operation} ${p}${op.data ? ` ${op.data}` : ''}`;
    });
    expect(teardown).toEqual([
      'unlink loopback/naa/tpgt_1/lun/lun_0/disk0',
      'rmdir loopback/naa/tpgt_1/lun/lun_0',
      'write loopback/naa/tpgt_1/nexus NULL',
      'rmdir loopback/naa/tpgt_1',
      'rmdir loopback/naa',
      'rmdir loopback',
      'rmdir core/user_3/disk0',
      'rmdir core/user_3',
    ]);
    expect(await kernel.snapshot()).toEqual(before);
  });

  it('remove() alone detaches first, and is idempotent', async () => {
    const before = await kernel.snapshot();
    const device = await createUserDevice({ ...kernel.roots, ...base });
    await device.attachLoopback();
    await device.remove();
    await device.remove();
    expect(await kernel.snapshot()).toEqual(before);
    await expectCode(device.resize(1024 * 1024), 'TCMU_ERR_REMOVED');
    await expectCode(device.attachLoopback(), 'TCMU_ERR_REMOVED');
  });

  it('keeps an HBA that existed before and a device it did not create', async () => {
    const s = kernel.system;
    const hba = `${kernel.configfsRoot}/target/core/user_3`;
    await s.mkdir(hba);
    await s.mkdir(`${hba}/runner`);
    await s.writeFile(`${hba}/runner/control`, 'dev_config=fbo/runner');
    await s.writeFile(`${hba}/runner/control`, 'dev_size=1048576');
    await s.writeFile(`${hba}/runner/enable`, '1');
    const before = await kernel.snapshot();
    const device = await createUserDevice({ ...kernel.roots, ...base });
    await device.remove();
    expect(await kernel.snapshot()).toEqual(before);
    expect(kernel.operations.filter((op) => op.path.includes('runner') && op.operation === 'rmdir')).toEqual(
      [],
    );
  });

  it('refuses an existing device name', async () => {
    const device = await createUserDevice({ ...kernel.roots, ...base });
    const before = await kernel.snapshot();
    await expectCode(createUserDevice({ ...kernel.roots, ...base }), 'TCMU_ERR_ALREADY_EXISTS');
    expect(await kernel.snapshot()).toEqual(before);
    await device.remove();
  });

  it('resizes through attrib/dev_size and validates the size', async () => {
    await kernel.dispose();
    await withKernel({ netlinkListener: true });
    const device = await createUserDevice({ ...kernel.roots, ...base });
    expect(await device.resize(128 * 1024 * 1024)).toEqual({ size: 128 * 1024 * 1024, kernelUpdated: true });
    expect(kernel.operations.at(-1)).toMatchObject({ operation: 'write', data: String(128 * 1024 * 1024) });
    expect(kernel.operations.at(-1)?.path.endsWith('attrib/dev_size')).toBe(true);
    expect(device.size).toBe(128 * 1024 * 1024);
    await expectCode(device.resize(1000), 'TCMU_ERR_INVALID_ARGUMENT');
    await expectCode(device.resize(0), 'TCMU_ERR_INVALID_ARGUMENT');
    await device.remove();
  });

  it('resize listens to TCM-USER/config during the write, so the kernel takes the new size', async () => {
    const device = await createUserDevice({ ...kernel.roots, ...base });
    expect(await device.resize(96 * 1024 * 1024)).toEqual({ size: 96 * 1024 * 1024, kernelUpdated: true });
    expect((await readFile(`${device.configfsPath}/attrib/dev_size`, 'utf8')).trim()).toBe(
      String(96 * 1024 * 1024),
    );
    // The membership was closed afterwards: a plain write is refused again.
    await expect(
      kernel.system.writeFile(`${device.configfsPath}/attrib/dev_size`, String(64 * 1024 * 1024)),
    ).rejects.toMatchObject({ code: 'ESRCH' });
    await device.remove();
  });

  it('resize when it cannot join the netlink group keeps the new size but says the kernel kept its own (ESRCH)', async () => {
    await kernel.dispose();
    await withKernel({ netlinkJoinable: false });
    const device = await createUserDevice({ ...kernel.roots, ...base });
    expect(await device.resize(96 * 1024 * 1024)).toEqual({ size: 96 * 1024 * 1024, kernelUpdated: false });
    expect(device.size).toBe(96 * 1024 * 1024);
    await device.remove();
  });

  it('writes block_dev and reset_ring', async () => {
    const device = await createUserDevice({ ...kernel.roots, ...base });
    await device.setBlocked(true);
    await device.resetRing('check-condition');
    await device.setBlocked(false);
    expect(kernel.operations.slice(-3).map((op) => `${op.path.split('/').at(-1)}=${op.data}`)).toEqual([
      'block_dev=1',
      'reset_ring=2',
      'block_dev=0',
    ]);
    await device.remove();
  });

  it('creates several devices on one HBA and removes the HBA only after the last', async () => {
    const before = await kernel.snapshot();
    const a = await createUserDevice({ ...kernel.roots, ...base, name: 'a' });
    const b = await createUserDevice({ ...kernel.roots, ...base, name: 'b' });
    expect(a.uio).not.toBe(b.uio);
    await a.remove();
    expect((await kernel.snapshot()).some((p) => p.endsWith('core/user_3/b'))).toBe(true);
    await b.remove();
    expect(await kernel.snapshot()).toEqual(before);
  });

  it('creates them concurrently without tripping over the shared HBA', async () => {
    const before = await kernel.snapshot();
    const devices = await Promise.all(
      ['a', 'b', 'c'].map((name) => createUserDevice({ ...kernel.roots, ...base, name })),
    );
    expect(new Set(devices.map((d) => d.uio)).size).toBe(3);
    await Promise.all(devices.map((d) => d.remove()));
    expect(await kernel.snapshot()).toEqual(before);
  });
});

describe('rollback on failure', () => {
  it.each([
    ['the enable write', (op: { operation: string; path: string }) => op.path.endsWith('/enable')],
    [
      'an attribute write',
      (op: { operation: string; path: string }) => op.path.endsWith('attrib/cmd_time_out'),
    ],
    ['the serial write', (op: { operation: string; path: string }) => op.path.endsWith('vpd_unit_serial')],
    ['a control write', (op: { operation: string; path: string }) => op.path.endsWith('control')],
  ])('leaves nothing when %s fails', async (_label, match) => {
    await withKernel({ fail: (op) => (op.operation === 'write' && match(op) ? 'EIO' : undefined) });
    const before = await kernel.snapshot();
    const error = await expectCode(
      createUserDevice({ ...kernel.roots, ...base, attributes: { cmd_time_out: 5 } }),
      'TCMU_ERR_CONFIGFS_IO',
    );
    expect(error.message).toMatch(/EIO/);
    expect(await kernel.snapshot()).toEqual(before);
    expect(await listDevices(kernel.roots)).toEqual([]);
  });

  it('times out and rolls back when no uio device appears', async () => {
    await withKernel({ createsUio: false });
    const before = await kernel.snapshot();
    await expectCode(createUserDevice({ ...kernel.roots, ...base, uioTimeoutMs: 50 }), 'TCMU_ERR_TIMEOUT');
    expect(await kernel.snapshot()).toEqual(before);
  });

  it('refuses cmd_ring_size_mb on a kernel without it, before enable', async () => {
    await withKernel({ features: { commandRingSize: false } });
    const before = await kernel.snapshot();
    const error = await expectCode(
      createUserDevice({ ...kernel.roots, ...base, commandRingSizeMb: 16 }),
      'TCMU_ERR_KERNEL_FEATURE_MISSING',
    );
    expect((error as { feature?: string }).feature).toBe('cmd_ring_size_mb');
    expect(kernel.operations.some((op) => op.path.endsWith('enable'))).toBe(false);
    expect(await kernel.snapshot()).toEqual(before);
  });

  it('refuses a kernel without nl_reply_supported', async () => {
    await withKernel({ features: { netlinkReplyOptOut: false } });
    const before = await kernel.snapshot();
    await expectCode(createUserDevice({ ...kernel.roots, ...base }), 'TCMU_ERR_KERNEL_FEATURE_MISSING');
    expect(await kernel.snapshot()).toEqual(before);
  });

  it('refuses an attribute the kernel does not have', async () => {
    await withKernel();
    const before = await kernel.snapshot();
    await expectCode(
      createUserDevice({ ...kernel.roots, ...base, attributes: { no_such_thing: 1 } }),
      'TCMU_ERR_KERNEL_FEATURE_MISSING',
    );
    expect(await kernel.snapshot()).toEqual(before);
  });

  it('reports configfs missing clearly', async () => {
    await withKernel({ configfsMounted: false });
    await expectCode(createUserDevice({ ...kernel.roots, ...base }), 'TCMU_ERR_CONFIGFS_NOT_MOUNTED');
  });
});

describe('a failure at every step of a creation rolls back everything it made, in reverse order', () => {
  // Count the mutating operations of a successful run, then make each one fail in turn (EIO): the call
  // must reject and leave configfs, sysfs and /dev as they were. `seen` counts only while armed.
  let failAt = -1;
  let seen = Number.NEGATIVE_INFINITY;
  const fail = (op: FakeOperation) => (op.operation !== 'run' && seen++ === failAt ? 'EIO' : undefined);
  const request = { ...base, maxSectors: 128, attributes: { cmd_time_out: 5 } };

  it('createUserDevice (HBA made, uio node made with mknod)', async () => {
    await withKernel({ fail, devtmpfs: false });
    const before = await kernel.snapshot();
    seen = 0;
    const device = await createUserDevice({ ...kernel.roots, ...request });
    const steps = seen;
    seen = Number.NEGATIVE_INFINITY;
    await device.remove();
    expect(steps).toBeGreaterThan(8);
    for (failAt = 0; failAt < steps; failAt++) {
      seen = 0;
      await expectCode(createUserDevice({ ...kernel.roots, ...request }), 'TCMU_ERR_CONFIGFS_IO');
      seen = Number.NEGATIVE_INFINITY;
      expect(await kernel.snapshot(), `failing step ${failAt}`).toEqual(before);
      expect(await listDevices(kernel.roots), `failing step ${failAt}`).toEqual([]);
    }
  });

  it.each([
    ['a new target (fabric, target, TPG, nexus, LUN, link, disk nodes, stable link)', false],
    ['a second LUN on a target this process made', true],
  ])('attachLoopback onto %s', async (_label, secondLun) => {
    await withKernel({ fail, devtmpfs: false });
    const links = `${kernel.root}/links`;
    await kernel.system.mkdir(links);
    const device = await createUserDevice({ ...kernel.roots, ...request });
    const first = secondLun
      ? await (await createUserDevice({ ...kernel.roots, ...request, name: 'disk1' })).attachLoopback()
      : undefined;
    const options = { linkDirectory: links, ...(first ? { wwn: first.wwn, lun: 1 } : {}) };
    const before = await kernel.snapshot();
    seen = 0;
    const attachment = await device.attachLoopback(options);
    const steps = seen;
    seen = Number.NEGATIVE_INFINITY;
    await attachment.detach();
    expect(await kernel.snapshot()).toEqual(before);
    expect(steps).toBeGreaterThan(secondLun ? 3 : 7);
    for (failAt = 0; failAt < steps; failAt++) {
      seen = 0;
      await expectCode(device.attachLoopback(options), 'TCMU_ERR_CONFIGFS_IO');
      seen = Number.NEGATIVE_INFINITY;
      expect(await kernel.snapshot(), `failing step ${failAt}`).toEqual(before);
      expect(device.attachments, `failing step ${failAt}`).toEqual([]);
    }
    // The target this process made is still usable (its record survived the failed attempts).
    const again = await device.attachLoopback(options);
    expect(again.lun).toBe(secondLun ? 1 : 0);
  });
});

describe('bad input is refused before anything is touched', () => {
  const cases: Array<[string, Record<string, unknown>, ConfigfsErrorCode]> = [
    ['a slash in the name', { name: 'a/b' }, 'TCMU_ERR_INVALID_NAME'],
    ['.. as the name', { name: '..' }, 'TCMU_ERR_INVALID_NAME'],
    ['dots in the name', { name: 'a..b' }, 'TCMU_ERR_INVALID_NAME'],
    ['a colon in the name', { name: 'a:b' }, 'TCMU_ERR_INVALID_NAME'],
    ['a comma in the name', { name: 'a,b' }, 'TCMU_ERR_INVALID_NAME'],
    ['a newline in the name', { name: 'a\nb' }, 'TCMU_ERR_INVALID_NAME'],
    ['a NUL in the name', { name: 'a\0b' }, 'TCMU_ERR_INVALID_NAME'],
    ['a space in the name', { name: 'a b' }, 'TCMU_ERR_INVALID_NAME'],
    ['an empty name', { name: '' }, 'TCMU_ERR_INVALID_NAME'],
    ['a 65-character name', { name: 'x'.repeat(65) }, 'TCMU_ERR_INVALID_NAME'],
    ['a name that is not a string', { name: 42 }, 'TCMU_ERR_INVALID_NAME'],
    ['a negative HBA', { hba: -1 }, 'TCMU_ERR_INVALID_NAME'],
    ['a fractional HBA', { hba: 1.5 }, 'TCMU_ERR_INVALID_NAME'],
    ['a huge HBA', { hba: 1e9 }, 'TCMU_ERR_INVALID_NAME'],
    ['a serial with a slash', { serial: 'a/b' }, 'TCMU_ERR_INVALID_NAME'],
    ['a serial with a newline', { serial: 'a\n' }, 'TCMU_ERR_INVALID_NAME'],
    ['a block size of 1000', { blockSize: 1000 }, 'TCMU_ERR_INVALID_ARGUMENT'],
    ['a size that is not whole blocks', { size: 1000 }, 'TCMU_ERR_INVALID_ARGUMENT'],
    ['a zero size', { size: 0 }, 'TCMU_ERR_INVALID_ARGUMENT'],
    ['a NaN size', { size: Number.NaN }, 'TCMU_ERR_INVALID_ARGUMENT'],
    ['zero max sectors', { maxSectors: 0 }, 'TCMU_ERR_INVALID_ARGUMENT'],
    ['a bad attribute name', { attributes: { 'a/b': 1 } }, 'TCMU_ERR_INVALID_NAME'],
    ['an attribute value with a newline', { attributes: { cmd_time_out: '1\n2' } }, 'TCMU_ERR_INVALID_NAME'],
    ['a fractional attribute', { attributes: { cmd_time_out: 1.5 } }, 'TCMU_ERR_INVALID_ARGUMENT'],
    ['a zero uio timeout', { uioTimeoutMs: 0 }, 'TCMU_ERR_INVALID_ARGUMENT'],
  ];
  it.each(cases)('refuses %s', async (_label, override, code) => {
    await withKernel();
    const before = await kernel.snapshot();
    await expectCode(createUserDevice({ ...kernel.roots, ...base, ...override } as never), code);
    expect(kernel.operations).toEqual([]);
    expect(await kernel.snapshot()).toEqual(before);
  });

  it.each([
    ['LUN 256', { lun: 256 }, 'TCMU_ERR_INVALID_NAME'],
    ['LUN -1', { lun: -1 }, 'TCMU_ERR_INVALID_NAME'],
    ['a WWN without naa.', { wwn: '5001405123456789' }, 'TCMU_ERR_INVALID_NAME'],
    ['a short WWN', { wwn: 'naa.50014051234' }, 'TCMU_ERR_INVALID_NAME'],
    ['a WWN with a slash', { wwn: 'naa.500140512345/78' }, 'TCMU_ERR_INVALID_NAME'],
    ['a relative link directory', { linkDirectory: 'links' }, 'TCMU_ERR_INVALID_NAME'],
    ['a link directory with ..', { linkDirectory: '/tmp/../etc' }, 'TCMU_ERR_INVALID_NAME'],
    ['a link name with a slash', { linkDirectory: '/tmp', linkName: 'a/b' }, 'TCMU_ERR_INVALID_NAME'],
    ['a zero timeout', { timeoutMs: 0 }, 'TCMU_ERR_INVALID_ARGUMENT'],
  ] as Array<[string, Record<string, unknown>, ConfigfsErrorCode]>)(
    'attachLoopback refuses %s',
    async (_label, override, code) => {
      await withKernel();
      const device = await createUserDevice({ ...kernel.roots, ...base });
      const before = await kernel.snapshot();
      const count = kernel.operations.length;
      await expectCode(device.attachLoopback(override as never), code);
      expect(kernel.operations.length).toBe(count);
      expect(await kernel.snapshot()).toEqual(before);
      await device.remove();
    },
  );
});

describe('attachLoopback', () => {
  let device: UserDevice;
  beforeEach(async () => {
    await withKernel();
    device = await createUserDevice({ ...kernel.roots, ...base });
  });
  afterEach(async () => {
    await device.remove();
  });

  it('wires target, nexus and LUN in order and finds the disk and sg device by address', async () => {
    const start = kernel.operations.length;
    const lun = await device.attachLoopback({ wwn: 'naa.5001405ABCDEF012', lun: 7 });
    expect(lun.wwn).toBe('naa.5001405abcdef012');
    const ops = kernel.operations
      .slice(start)
      .map((op) => `${op.operation} ${op.path.replace('config/target/loopback/', '')}`);
    expect(ops).toEqual([
      'mkdir config/target/loopback',
      'mkdir naa.5001405abcdef012',
      'mkdir naa.5001405abcdef012/tpgt_1',
      'write naa.5001405abcdef012/tpgt_1/nexus',
      'mkdir naa.5001405abcdef012/tpgt_1/lun/lun_7',
      'symlink naa.5001405abcdef012/tpgt_1/lun/lun_7/disk0',
    ]);
    expect(lun.address).toEqual({ host: 2, channel: 0, target: 1, lun: 7 });
    expect(lun.blockDevice).toBe('sdb');
    expect(lun.devicePath).toBe(`${kernel.devRoot}/sdb`);
    expect(lun.sgPath).toBe(`${kernel.devRoot}/sg1`);
    expect(device.attachments).toEqual([lun]);
  });

  it('puts two devices on one target as LUN 0 and LUN 1, and removes the target after the last', async () => {
    const before = await kernel.snapshot();
    const other = await createUserDevice({ ...kernel.roots, ...base, name: 'disk1' });
    const first = await device.attachLoopback({ lun: 0 });
    const second = await other.attachLoopback({ wwn: first.wwn, lun: 1 });
    expect(second.address).toEqual({ ...first.address, lun: 1 });
    expect(second.devicePath).not.toBe(first.devicePath);
    await expectCode(other.attachLoopback({ wwn: first.wwn, lun: 1 }), 'TCMU_ERR_ALREADY_EXISTS');
    await first.detach();
    const mid = await kernel.snapshot();
    expect(mid.some((p) => p.includes(`${first.wwn}/tpgt_1/lun/lun_1/disk1`))).toBe(true);
    expect(mid.some((p) => p.includes('lun_0'))).toBe(false);
    await other.remove();
    expect((await kernel.snapshot()).some((p) => p.includes('loopback'))).toBe(false);
    expect(await kernel.snapshot()).toEqual(before);
  });

  it('attaches two devices to one new target concurrently', async () => {
    const before = await kernel.snapshot();
    const other = await createUserDevice({ ...kernel.roots, ...base, name: 'disk1' });
    const wwn = 'naa.5001405000000777';
    const [a, b] = await Promise.all([
      device.attachLoopback({ wwn, lun: 0 }),
      other.attachLoopback({ wwn, lun: 1 }),
    ]);
    expect([a.address.lun, b.address.lun]).toEqual([0, 1]);
    expect(kernel.operations.filter((op) => op.operation === 'mkdir' && op.path.endsWith(wwn))).toHaveLength(
      1,
    );
    await Promise.all([device.detachLoopback(), other.remove()]);
    expect((await kernel.snapshot()).filter((p) => !p.includes('user_3/disk0'))).toEqual(
      before.filter((p) => !p.includes('user_3/disk0')),
    );
  });

  it('uses a loopback fabric folder another process created between our check and our mkdir', async () => {
    await kernel.dispose();
    let raced = false;
    await withKernel({
      fail: (op) => {
        if (raced || op.operation !== 'mkdir' || !op.path.endsWith('config/target/loopback'))
          return undefined;
        raced = true;
        // The other process wins: the folder exists when our mkdir runs.
        mkdirSync(`${kernel.configfsRoot}/target/loopback`);
        return 'EEXIST';
      },
    });
    device = await createUserDevice({ ...kernel.roots, ...base });
    const lun = await device.attachLoopback({ lun: 0 });
    expect(raced).toBe(true);
    expect(lun.devicePath).toBe(`${kernel.devRoot}/sdb`);
    await device.detachLoopback();
    // Empty now: the last user removes a shared folder, whichever process made it.
    expect((await kernel.snapshot()).some((p) => p.endsWith('target/loopback'))).toBe(false);
  });

  it('never adds a LUN to a target this process did not create', async () => {
    const s = kernel.system;
    await s.mkdir(`${kernel.configfsRoot}/target/loopback`);
    await s.mkdir(`${kernel.configfsRoot}/target/loopback/naa.5001405000000001`);
    await expectCode(device.attachLoopback({ wwn: 'naa.5001405000000001' }), 'TCMU_ERR_NOT_OWNER');
  });

  it('rolls back the target when the LUN link fails', async () => {
    await kernel.dispose();
    await withKernel({ fail: (op) => (op.operation === 'symlink' ? 'ENOMEM' : undefined) });
    device = await createUserDevice({ ...kernel.roots, ...base });
    const before = await kernel.snapshot();
    await expectCode(device.attachLoopback(), 'TCMU_ERR_CONFIGFS_IO');
    expect(await kernel.snapshot()).toEqual(before);
    expect(device.attachments).toEqual([]);
  });

  it('times out and rolls back when no disk appears', async () => {
    await kernel.dispose();
    await withKernel({ createsDisk: false });
    device = await createUserDevice({ ...kernel.roots, ...base });
    const before = await kernel.snapshot();
    const error = await expectCode(device.attachLoopback({ timeoutMs: 50 }), 'TCMU_ERR_TIMEOUT');
    expect(error.message).toMatch(/2:0:1:0/);
    expect(await kernel.snapshot()).toEqual(before);
  });

  it('refuses a kernel without tpgt address, leaving nothing', async () => {
    await kernel.dispose();
    await withKernel({ features: { loopbackAddress: false } });
    device = await createUserDevice({ ...kernel.roots, ...base });
    const before = await kernel.snapshot();
    await expectCode(device.attachLoopback(), 'TCMU_ERR_KERNEL_FEATURE_MISSING');
    expect(await kernel.snapshot()).toEqual(before);
  });

  it('makes device nodes with mknod when nothing else does, and removes only those', async () => {
    await kernel.dispose();
    await withKernel({ devtmpfs: false });
    device = await createUserDevice({ ...kernel.roots, ...base });
    expect(kernel.operations.find((op) => op.operation === 'mknod')).toMatchObject({
      path: 'dev/uio0',
      data: 'character 247:0',
    });
    const lun = await device.attachLoopback();
    const nodes = kernel.operations
      .filter((op) => op.operation === 'mknod')
      .map((op) => `${op.path} ${op.data}`);
    expect(nodes).toEqual(['dev/uio0 character 247:0', 'dev/sdb block 8:16', 'dev/sg1 character 21:1']);
    await lun.detach();
    const after = await kernel.snapshot();
    expect(after.filter((p) => p.startsWith('dev/'))).toEqual(['dev/uio0']);
    await device.remove();
    expect((await kernel.snapshot()).filter((p) => p.startsWith('dev/'))).toEqual([]);
  });

  it('creates and removes a stable symlink in a directory the user names', async () => {
    const links = `${kernel.root}/links`;
    await kernel.system.mkdir(links);
    const lun0 = await device.attachLoopback({ linkDirectory: links });
    expect(lun0.linkPath).toBe(`${links}/disk0`);
    expect(await kernel.system.readlink(`${links}/disk0`)).toBe(lun0.devicePath);
    const other = await createUserDevice({ ...kernel.roots, ...base, name: 'disk1' });
    const lun1 = await other.attachLoopback({ wwn: lun0.wwn, lun: 1, linkDirectory: links });
    expect(lun1.linkPath).toBe(`${links}/disk1-lun1`);
    await expectCode(
      other.attachLoopback({ lun: 2, wwn: lun0.wwn, linkDirectory: links, linkName: 'disk0' }),
      'TCMU_ERR_ALREADY_EXISTS',
    );
    await other.remove();
    await lun0.detach();
    expect(await kernel.system.readdir(links)).toEqual([]);
  });

  it('detach is idempotent', async () => {
    const lun = await device.attachLoopback();
    await lun.detach();
    await lun.detach();
    await device.detachLoopback();
    expect(device.attachments).toEqual([]);
  });
});
