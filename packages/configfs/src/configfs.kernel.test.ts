// The real kernel path: configfs, target_core_user, tcm_loop, sd, sg, in the kernel lab
// (tools/lab/run). A small Python ring responder (kernel-responder.py) serves the ring so the kernel
// can probe the LUN and make /dev/sdX; the ring package is tested on its own.
import { type ChildProcess, spawn } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeKernel } from '@tcmu/lab';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import {
  createUserDevice,
  isConfigfsError,
  listDevices,
  preflight,
  reattachUserDevice,
  removeDevice,
  removeStale,
  type UserDevice,
} from './index';

const TARGET = '/sys/kernel/config/target';
const responderScript = fileURLToPath(new URL('./kernel-responder.py', import.meta.url));
const distEntry = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const children: ChildProcess[] = [];

/** Every path under configfs' target tree (symlinks with their targets), sorted. */
function snapshot(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isSymbolicLink()) out.push(`${full} -> ${readlinkSync(full)}`);
      else {
        out.push(full);
        if (entry.isDirectory()) walk(full);
      }
    }
  };
  walk(TARGET);
  return out.sort();
}

const uioNames = () =>
  existsSync('/sys/class/uio')
    ? readdirSync('/sys/class/uio')
        .map((uio) => readFileSync(`/sys/class/uio/${uio}/name`, 'utf8').trim())
        .sort()
    : [];

let nextHba = 4200 + (process.pid % 400);
function freeHba(): number {
  const taken = new Set(readdirSync(`${TARGET}/core`));
  while (taken.has(`user_${nextHba}`)) nextHba++;
  return nextHba++;
}

/** Starts the Python responder on a device's ring; resolves once it has mapped the ring. */
async function serve(device: {
  uioPath: string;
  mapSize: number;
  blockSize: number;
  size: number;
  name: string;
}) {
  const child = spawn(
    '/usr/bin/python3',
    [
      responderScript,
      device.uioPath,
      String(device.mapSize),
      String(device.blockSize),
      String(device.size),
      device.name,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(child);
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout!.once('data', (data: Buffer) => resolve(data.toString()));
    child.once('exit', (code) => reject(new Error(`responder exited with ${code}`)));
  });
  expect(line).toMatch(/^ready 2 /);
  return child;
}

async function stop(child: ChildProcess) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** Fails instead of hanging when the kernel blocks (the netlink hang). */
function withinSeconds<T>(seconds: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not finish within ${seconds} s (kernel hang?)`)),
      seconds * 1000,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Waits until `child` has a generic netlink socket subscribed to a multicast group (tcmu-runner
 * loads its handlers first, which takes seconds under emulation, then joins TCM-USER's group).
 */
async function waitUntilListening(child: ChildProcess, seconds = 90) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    expect(child.exitCode, 'tcmu-runner exited').toBeNull();
    const inodes = new Set<string>();
    for (const fd of readdirSync(`/proc/${child.pid}/fd`)) {
      const target = await fs.readlink(`/proc/${child.pid}/fd/${fd}`).catch(() => '');
      const match = /^socket:\[(\d+)\]$/.exec(target);
      if (match) inodes.add(match[1]!);
    }
    // /proc/net/netlink columns: sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
    const subscribed = readFileSync('/proc/net/netlink', 'utf8')
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .some((f) => f[1] === '16' && f[3] !== undefined && !/^0+$/.test(f[3]) && inodes.has(f[9] ?? ''));
    if (subscribed) return;
    if (Date.now() > deadline)
      throw new Error(`tcmu-runner did not join a netlink group within ${seconds} s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function enableRetryingEagain(path: string, attempts = 5): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await fs.writeFile(path, '1');
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' || attempt === attempts) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

function expectBlockDevice(path: string) {
  expect(statSync(path).isBlockDevice(), `${path} is a block device`).toBe(true);
}

describeKernel('@tcmu/configfs against the real kernel', () => {
  const devices: UserDevice[] = [];

  beforeAll(async () => {
    const report = await preflight();
    expect(report.features.netlinkReplyOptOut).toBe(true);
    expect(report.features.loopbackAddress).toBe(true);
  });

  afterEach(async () => {
    // Only what these tests made, in case an assertion failed half-way.
    for (const device of devices.splice(0)) await device.remove().catch(() => undefined);
    for (const child of children.splice(0)) await stop(child);
  });

  it('create → /dev/sdX appears and serves reads → remove leaves configfs exactly as before', async () => {
    const before = snapshot();
    const uioBefore = uioNames();
    const hba = freeHba();
    const size = 64 * 1024 * 1024;
    const device = await createUserDevice({
      hba,
      name: 'kt-one',
      size,
      blockSize: 512,
      serial: 'kt-one-serial',
      maxDataAreaMb: 32,
      attributes: { cmd_time_out: 20, qfull_time_out: 5 },
    });
    devices.push(device);
    const base = `${TARGET}/core/user_${hba}/kt-one`;
    expect(readFileSync(`${base}/attrib/nl_reply_supported`, 'utf8').trim()).toBe('-1');
    expect(readFileSync(`${base}/attrib/dev_config`, 'utf8').trim()).toBe(device.devConfig);
    expect(readFileSync(`${base}/attrib/cmd_time_out`, 'utf8').trim()).toBe('20');
    expect(readFileSync(`${base}/wwn/vpd_unit_serial`, 'utf8')).toMatch(/kt-one-serial/);
    expect(readFileSync(`/sys/class/uio/${device.uio}/name`, 'utf8').trim()).toBe(
      `tcm-user/${hba}/kt-one/${device.devConfig}`,
    );
    expect(device.mapSize).toBeGreaterThan(8 * 1024 * 1024);

    await serve(device);
    const lun = await device.attachLoopback({ lun: 0, linkDirectory: mkdtempSync(join(tmpdir(), 'links-')) });
    expectBlockDevice(lun.devicePath);
    expect(statSync(lun.sgPath!).isCharacterDevice()).toBe(true);
    expect(readlinkSync(lun.linkPath!)).toBe(lun.devicePath);
    expect(readFileSync(`/sys/block/${lun.blockDevice}/size`, 'utf8').trim()).toBe(String(size / 512));
    const address = readFileSync(`${TARGET}/loopback/${lun.wwn}/tpgt_1/address`, 'utf8').trim();
    expect(`${lun.address.host}:${lun.address.channel}:${lun.address.target}`).toBe(address);
    // A read goes through the ring and comes back.
    const handle = await fs.open(lun.devicePath, 'r');
    const { bytesRead, buffer } = await handle.read(Buffer.alloc(4096), 0, 4096, 0);
    await handle.close();
    expect(bytesRead).toBe(4096);
    expect(buffer.every((b) => b === 0)).toBe(true);

    const [record] = (await listDevices()).filter((d) => d.name === 'kt-one');
    expect(record).toMatchObject({
      hba,
      owned: true,
      ownerAlive: true,
      stale: false,
      enabled: true,
      uio: device.uio,
      size,
    });
    expect(record?.luns).toEqual([
      expect.objectContaining({
        wwn: lun.wwn,
        lun: 0,
        blockDevice: lun.blockDevice,
        devicePath: lun.devicePath,
      }),
    ]);

    // No daemon listens to TCM-USER netlink here: resize() joins TCM-USER/config itself while it
    // writes, so the kernel's RECONFIG multicast finds a listener and it takes the new dev_size.
    expect(await device.resize(96 * 1024 * 1024)).toEqual({ size: 96 * 1024 * 1024, kernelUpdated: true });
    expect(readFileSync(`${base}/attrib/dev_size`, 'utf8').trim()).toBe(String(96 * 1024 * 1024));
    expect(readFileSync(`${base}/info`, 'utf8')).toContain(`Size: ${96 * 1024 * 1024}`);
    expect(device.size).toBe(96 * 1024 * 1024);
    // Without the membership (closed after the write) the kernel refuses again: ESRCH.
    expect(() => writeFileSync(`${base}/attrib/dev_size`, String(size))).toThrow(/ESRCH/);

    await device.detachLoopback();
    expect(existsSync(lun.devicePath)).toBe(false);
    expect(existsSync(lun.linkPath!)).toBe(false);
    for (const child of children.splice(0)) await stop(child);
    await device.remove();
    devices.length = 0;
    expect(snapshot()).toEqual(before);
    expect(uioNames()).toEqual(uioBefore);
  });

  it('two LUNs on one target: two disks, found by LUN number, torn down cleanly', async () => {
    const before = snapshot();
    const hba = freeHba();
    const a = await createUserDevice({
      hba,
      name: 'kt-lun-a',
      size: 32 << 20,
      blockSize: 512,
      serial: 'kt-lun-a',
    });
    devices.push(a);
    const b = await createUserDevice({
      hba,
      name: 'kt-lun-b',
      size: 48 << 20,
      blockSize: 4096,
      serial: 'kt-lun-b',
    });
    devices.push(b);
    await serve(a);
    await serve(b);
    const lunA = await a.attachLoopback({ lun: 0 });
    const lunB = await b.attachLoopback({ wwn: lunA.wwn, lun: 5 });
    expect(lunB.address).toEqual({ ...lunA.address, lun: 5 });
    expect(lunB.blockDevice).not.toBe(lunA.blockDevice);
    expectBlockDevice(lunA.devicePath);
    expectBlockDevice(lunB.devicePath);
    expect(readFileSync(`/sys/block/${lunA.blockDevice}/size`, 'utf8').trim()).toBe(String((32 << 20) / 512));
    expect(readFileSync(`/sys/block/${lunB.blockDevice}/size`, 'utf8').trim()).toBe(String((48 << 20) / 512));
    expect(readFileSync(`/sys/block/${lunB.blockDevice}/queue/logical_block_size`, 'utf8').trim()).toBe(
      '4096',
    );
    await a.detachLoopback();
    expect(existsSync(lunA.devicePath)).toBe(false);
    expectBlockDevice(lunB.devicePath);
    await b.detachLoopback();
    for (const child of children.splice(0)) await stop(child);
    await a.remove();
    await b.remove();
    devices.length = 0;
    expect(snapshot()).toEqual(before);
  });

  it('makes working device nodes with mknod where nothing else makes them, and removes them', async () => {
    const before = snapshot();
    // A folder in which nothing makes device nodes (inside /dev: /tmp is mounted nodev in the lab).
    const devRoot = mkdtempSync('/dev/kt-mknod-');
    const device = await createUserDevice({
      devRoot,
      hba: freeHba(),
      name: 'kt-mknod',
      size: 8 << 20,
      blockSize: 512,
      serial: 'kt-mknod',
    });
    devices.push(device);
    expect(device.uioPath).toBe(join(devRoot, device.uio));
    expect(statSync(device.uioPath).isCharacterDevice()).toBe(true);
    await serve(device); // opens the ring through the node made with mknod
    const lun = await device.attachLoopback();
    expect(lun.devicePath).toBe(join(devRoot, lun.blockDevice));
    expectBlockDevice(lun.devicePath);
    const handle = await fs.open(lun.devicePath, 'r');
    const { bytesRead } = await handle.read(Buffer.alloc(4096), 0, 4096, 8192);
    await handle.close();
    expect(bytesRead).toBe(4096);
    await device.detachLoopback();
    for (const child of children.splice(0)) await stop(child);
    await device.remove();
    devices.length = 0;
    expect(readdirSync(devRoot)).toEqual([]);
    await fs.rmdir(devRoot);
    expect(snapshot()).toEqual(before);
  });

  it('coexists with a tcmu-runner device while tcmu-runner runs, and enable never hangs after it ran', async () => {
    const work = mkdtempSync(join(tmpdir(), 'runner-'));
    const image = join(work, 'fbo.img');
    writeFileSync(image, '');
    await fs.truncate(image, 16 << 20);
    const runner = spawn('/usr/bin/tcmu-runner', ['--tcmu-log-dir', work], { stdio: 'ignore' });
    children.push(runner);
    await waitUntilListening(runner); // then it has sent SET_FEATURES

    // tcmu-runner's device, made by hand as targetcli would (no nl_reply_supported: it replies).
    const runnerHba = freeHba();
    const runnerDevice = `${TARGET}/core/user_${runnerHba}/kt-runner`;
    await fs.mkdir(runnerDevice, { recursive: true });
    await fs.writeFile(`${runnerDevice}/control`, `dev_config=fbo/${image}`);
    await fs.writeFile(`${runnerDevice}/control`, `dev_size=${16 << 20}`);
    await fs.writeFile(`${runnerDevice}/wwn/vpd_unit_serial`, 'kt-runner');
    // tcmu-runner joins the netlink group before its handlers are ready and may answer the ADDED event
    // with EAGAIN (seen once in the lab): that is its start-up, not ours, so its enable is retried.
    await withinSeconds(
      30,
      'enable of the tcmu-runner device',
      enableRetryingEagain(`${runnerDevice}/enable`),
    );
    expect(uioNames()).toContain(`tcm-user/${runnerHba}/kt-runner/fbo/${image}`);
    const withRunner = snapshot();

    try {
      const hba = freeHba();
      const mine = await withinSeconds(
        30,
        'createUserDevice while tcmu-runner runs',
        createUserDevice({ hba, name: 'kt-beside', size: 16 << 20, blockSize: 512, serial: 'kt-beside' }),
      );
      devices.push(mine);
      await serve(mine);
      const lun = await mine.attachLoopback();
      expectBlockDevice(lun.devicePath);
      // With tcmu-runner listening, the kernel announces and records a resize.
      expect(await mine.resize(32 << 20)).toEqual({ size: 32 << 20, kernelUpdated: true });
      expect(readFileSync(`${mine.configfsPath}/attrib/dev_size`, 'utf8').trim()).toBe(String(32 << 20));
      expect((await listDevices()).map((d) => d.name)).not.toContain('kt-runner');
      const all = await listDevices({ all: true });
      expect(all.find((d) => d.name === 'kt-runner')).toMatchObject({
        owned: false,
        stale: false,
        enabled: true,
      });
      const refused = await removeDevice({ name: 'kt-runner' }).catch((e: unknown) => e);
      expect(isConfigfsError(refused, 'TCMU_ERR_NOT_OWNER')).toBe(true);
      expect((await removeStale()).map((d) => d.name)).not.toContain('kt-runner');
      await mine.detachLoopback();
      await mine.remove();
      devices.length = 0;
      expect(snapshot()).toEqual(withRunner);
      expect(existsSync(runnerDevice)).toBe(true);

      // tcmu-runner has run in this boot; once it is gone nobody replies to netlink. Ours must not hang.
      await stop(runner);
      const after = await withinSeconds(
        30,
        'createUserDevice after tcmu-runner stopped',
        createUserDevice({ hba, name: 'kt-after', size: 16 << 20, blockSize: 512, serial: 'kt-after' }),
      );
      devices.push(after);
      await after.remove();
      devices.length = 0;
    } finally {
      // Remove tcmu-runner's device the way it was made (no reply needed: rmdir does not wait on netlink
      // for a device whose daemon is gone only if block_netlink is set; start a runner again if needed).
      if (runner.exitCode === null && runner.signalCode === null) await stop(runner);
      const again = spawn('/usr/bin/tcmu-runner', ['--tcmu-log-dir', work], { stdio: 'ignore' });
      children.push(again);
      await waitUntilListening(again);
      await withinSeconds(30, 'rmdir of the tcmu-runner device', fs.rmdir(runnerDevice));
      await fs.rmdir(`${TARGET}/core/user_${runnerHba}`);
      await stop(again);
    }
  }, 300_000);

  /** Starts a separate Node process that creates `name` with a LUN through dist/ and keeps serving it. */
  async function crashingOwner(hba: number, name: string) {
    expect(existsSync(distEntry), `${distEntry} (run pnpm build first)`).toBe(true);
    const script = join(mkdtempSync(join(tmpdir(), 'stale-')), 'owner.mjs');
    writeFileSync(
      script,
      `import { spawn } from 'node:child_process';
import { createUserDevice } from ${JSON.stringify(distEntry)};
const size = 32 << 20;
const d = await createUserDevice({ hba: ${hba}, name: '${name}', size, blockSize: 512, serial: '${name}' });
const r = spawn('/usr/bin/python3', [${JSON.stringify(responderScript)}, d.uioPath, String(d.mapSize), '512', String(size), '${name}'], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise((resolve) => r.stdout.once('data', resolve));
const lun = await d.attachLoopback({ lun: 2 });
console.log(JSON.stringify({ responder: r.pid, devicePath: lun.devicePath, wwn: lun.wwn }));
setInterval(() => {}, 1000);
`,
    );
    const owner = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(owner);
    const info = JSON.parse(
      await new Promise<string>((resolve, reject) => {
        let text = '';
        owner.stdout!.on('data', (data: Buffer) => {
          text += data.toString();
          if (text.includes('\n')) resolve(text.slice(0, text.indexOf('\n')));
        });
        owner.once('exit', (code) => reject(new Error(`owner exited with ${code}`)));
      }),
    ) as { responder: number; devicePath: string; wwn: string };
    return { owner, info };
  }

  it('removeStale removes a device left by a crashed process, leaving configfs as before', async () => {
    const before = snapshot();
    const { owner, info } = await crashingOwner(freeHba(), 'kt-stale');
    expectBlockDevice(info.devicePath);
    let [record] = (await listDevices()).filter((d) => d.name === 'kt-stale');
    expect(record).toMatchObject({ owned: true, ownerAlive: true, stale: false, owner: { pid: owner.pid } });
    expect(await removeStale()).toEqual([]);

    // The crash: the owner and its ring server die without cleaning up.
    await stop(owner);
    process.kill(info.responder, 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 200));
    [record] = (await listDevices()).filter((d) => d.name === 'kt-stale');
    expect(record).toMatchObject({ ownerAlive: false, stale: true });
    expect(record?.luns.map((l) => [l.wwn, l.lun])).toEqual([[info.wwn, 2]]);

    const removed = await withinSeconds(60, 'removeStale', removeStale());
    expect(removed.map((d) => d.name)).toEqual(['kt-stale']);
    expect(existsSync(info.devicePath)).toBe(false);
    expect(snapshot()).toEqual(before);
  });

  it('reattaches to a device after its owner crashed: the disk keeps working, then is removed cleanly', async () => {
    const before = snapshot();
    const { owner, info } = await crashingOwner(freeHba(), 'kt-again');
    await stop(owner);
    process.kill(info.responder, 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const device = await reattachUserDevice({ name: 'kt-again' });
    devices.push(device);
    expect(device.attachments.map((a) => [a.wwn, a.lun, a.devicePath])).toEqual([
      [info.wwn, 2, info.devicePath],
    ]);
    await serve(device);
    const [record] = (await listDevices()).filter((d) => d.name === 'kt-again');
    expect(record?.stale).toBe(false); // its uio device is held open by the new server
    const handle = await fs.open(info.devicePath, 'r');
    const { bytesRead } = await withinSeconds(
      30,
      'a read after reattach',
      handle.read(Buffer.alloc(512), 0, 512, 4096),
    );
    await handle.close();
    expect(bytesRead).toBe(512);
    await device.detachLoopback();
    for (const child of children.splice(0)) await stop(child);
    await device.remove();
    devices.length = 0;
    expect(snapshot()).toEqual(before);
  });

  afterAll(async () => {
    for (const child of children.splice(0)) await stop(child);
  });
});
