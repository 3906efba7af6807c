// fio with crc32c verification (random writes, then verify; libaio, O_DIRECT, queue depth 32) on
// disks served by openDevice with the memory backend, inside the kernel lab: once as users get it
// (READ and WRITE answered through the backend's synchronous fast path, one command at a time), once
// through promises only (a filter without the fast path), where commands must really overlap.
import type { Backend } from '@tcmu/backend';
import { wrapBackend } from '@tcmu/backend/filters';
import { openMemoryBackend } from '@tcmu/backend-memory';
import { describeKernel } from '@tcmu/lab';
import { afterEach, expect, it } from 'vitest';
import { runOk, testHba, testName } from './kernel-support';
import { openDevice, type TcmuDevice } from './open-device';

describeKernel('fio --verify=crc32c on an openDevice disk', () => {
  let device: TcmuDevice | undefined;

  afterEach(async () => {
    await device?.close();
    device = undefined;
  });

  /** Random writes then verify with libaio, direct I/O, iodepth 32; returns fio's job report. */
  async function verify(backend: Backend, name: string) {
    device = await openDevice({ name: testName(name), backend, hba: testHba(2) });
    const { stdout } = await runOk(
      'fio',
      [
        '--name=verify',
        `--filename=${device.devicePath}`,
        '--rw=randwrite',
        '--bsrange=4k-64k',
        '--size=32M',
        '--ioengine=libaio',
        '--direct=1',
        '--iodepth=32',
        '--verify=crc32c',
        '--do_verify=1',
        '--verify_fatal=1',
        '--randrepeat=0',
        '--output-format=json',
      ],
      { timeoutMs: 600_000 },
    );
    const job = JSON.parse(stdout.slice(stdout.indexOf('{'))).jobs[0];
    expect(job.error).toBe(0);
    expect(job.write.io_bytes).toBeGreaterThanOrEqual(32 * 1024 * 1024);
    expect(job.read.io_bytes).toBeGreaterThanOrEqual(32 * 1024 * 1024); // the verify pass
    expect(device.stats.checkCondition).toBe(0);
    console.log(
      `fio (${name}): wrote ${job.write.io_bytes} B (${Math.round(job.write.iops)} IOPS), verified ${job.read.io_bytes} B; ` +
        `max commands in flight ${device.stats.maxInFlight}, completed ${device.stats.completed}`,
    );
    return job;
  }

  // Generous limits: software-emulated guests are slow; they only stop a hung run.
  it('the memory disk as served (synchronous fast path): no errors, every byte verified', async () => {
    const backend = await openMemoryBackend({ size: 128 * 1024 * 1024, blockSize: 512 });
    expect(typeof backend.tryWriteSync).toBe('function');
    await verify(backend, 'fio');
  }, 900_000);

  it('through promises only: no errors, commands really concurrent', async () => {
    const memory = await openMemoryBackend({ size: 128 * 1024 * 1024, blockSize: 512 });
    const backend = wrapBackend(memory, {});
    expect(backend.tryReadSync).toBeUndefined();
    await verify(backend, 'fio-async');
    expect(device!.stats.maxInFlight).toBeGreaterThanOrEqual(8);
  }, 900_000);
});
