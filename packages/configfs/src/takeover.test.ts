import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findTakeOverCandidate, isConfigfsError, parseUnitSerial, setDiskTimeout } from './index';
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

/** A device as another process (pid of `sleep`) would have left it in configfs. */
async function deviceOwnedByChild(name: string, devConfig?: string): Promise<string> {
  child = spawn('sleep', ['600'], { stdio: 'ignore' });
  await new Promise((resolve) => child!.once('spawn', resolve));
  const start = await processStartTime(kernel.system, '/proc', child.pid!);
  const s = kernel.system;
  const dir = `${kernel.configfsRoot}/target/core/user_0/${name}`;
  await s.mkdir(`${kernel.configfsRoot}/target/core/user_0`);
  await s.mkdir(dir);
  await s.writeFile(`${dir}/control`, `dev_config=${devConfig ?? `tcmu-ts/${name}/${child.pid}/${start}`}`);
  await s.writeFile(`${dir}/control`, 'dev_size=1048576');
  await s.writeFile(`${dir}/control`, 'nl_reply_supported=-1');
  await s.writeFile(`${dir}/wwn/vpd_unit_serial`, 'serial-of-old');
  await s.writeFile(`${dir}/attrib/cmd_time_out`, '45');
  await s.writeFile(`${dir}/enable`, '1');
  return dir;
}

async function killChild() {
  const exited = new Promise((resolve) => child!.once('exit', resolve));
  child!.kill('SIGKILL');
  await exited;
  child = undefined;
}

describe('parseUnitSerial', () => {
  it('takes the serial out of what the kernel shows, or the bare value', () => {
    expect(parseUnitSerial('T10 VPD Unit Serial Number: abc-123')).toBe('abc-123');
    expect(parseUnitSerial('abc')).toBe('abc');
    expect(parseUnitSerial('T10 VPD Unit Serial Number: ')).toBeUndefined();
    expect(parseUnitSerial(undefined)).toBeUndefined();
  });
});

describe('findTakeOverCandidate', () => {
  it('is undefined when no device has the name', async () => {
    expect(await findTakeOverCandidate({ ...kernel.roots, name: 'none' })).toBeUndefined();
  });

  it('says in-use while the owner runs and takeover once it is gone, with serial and timeouts; changes nothing', async () => {
    await deviceOwnedByChild('old');
    const alive = await findTakeOverCandidate({ ...kernel.roots, name: 'old' });
    expect(alive?.verdict).toBe('in-use');
    await killChild();
    const before = await kernel.snapshot();
    const writes = kernel.operations.length;
    const dead = await findTakeOverCandidate({ ...kernel.roots, name: 'old' });
    expect(dead).toMatchObject({
      verdict: 'takeover',
      serial: 'serial-of-old',
      blockSize: 512,
      commandTimeoutSeconds: 45,
      queueFullTimeoutSeconds: -1,
    });
    expect(dead?.record.size).toBe(1048576);
    expect(kernel.operations.slice(writes).filter((op) => op.operation === 'write')).toEqual([]);
    expect(await kernel.snapshot()).toEqual(before);
  });

  it('never offers a device this toolkit did not create', async () => {
    await deviceOwnedByChild('runner', 'file/some/image');
    await killChild();
    expect((await findTakeOverCandidate({ ...kernel.roots, name: 'runner' }))?.verdict).toBe('not-owner');
  });
});

describe('setDiskTimeout', () => {
  it('writes /sys/block/<disk>/device/timeout', async () => {
    await mkdir(`${kernel.sysfsRoot}/block/sdz/device`, { recursive: true });
    await writeFile(`${kernel.sysfsRoot}/block/sdz/device/timeout`, '30\n');
    await setDiskTimeout({ ...kernel.roots, blockDevice: 'sdz', timeoutSeconds: 45 });
    expect(await readFile(`${kernel.sysfsRoot}/block/sdz/device/timeout`, 'utf8')).toBe('45');
  });

  it('rejects a bad disk name or value before writing', async () => {
    for (const [blockDevice, timeoutSeconds] of [
      ['../x', 30],
      ['sda', 0],
      ['sda', 1.5],
    ] as const) {
      const error = await setDiskTimeout({ ...kernel.roots, blockDevice, timeoutSeconds }).catch(
        (e: unknown) => e,
      );
      expect(isConfigfsError(error, 'TCMU_ERR_INVALID_ARGUMENT'), String(error)).toBe(true);
    }
  });
});
