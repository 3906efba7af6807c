// fio with crc32c verification (random writes, then verify; libaio, O_DIRECT, queue depth 32) on a
// disk served by openDevice with the memory backend, inside the kernel lab.
import { openMemoryBackend } from '@tcmu/backend-memory';
import { describeKernel } from '@tcmu/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runOk, testHba, testName } from './kernel-support';
import { openDevice, type TcmuDevice } from './open-device';

describeKernel('fio --verify=crc32c on an openDevice disk', () => {
  let device: TcmuDevice;

  beforeAll(async () => {
    const backend = await openMemoryBackend({ size: 128 * 1024 * 1024, blockSize: 512 });
    device = await openDevice({ name: testName('fio'), backend, hba: testHba(2) });
  });

  afterAll(async () => {
    await device?.close();
  });

  it('random writes then verify with libaio, direct I/O, iodepth 32: no errors, commands really concurrent', async () => {
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
    const report = JSON.parse(stdout.slice(stdout.indexOf('{')));
    const job = report.jobs[0];
    expect(job.error).toBe(0);
    expect(job.write.io_bytes).toBeGreaterThanOrEqual(32 * 1024 * 1024);
    expect(job.read.io_bytes).toBeGreaterThanOrEqual(32 * 1024 * 1024); // the verify pass
    expect(device.stats.maxInFlight).toBeGreaterThanOrEqual(8);
    expect(device.stats.checkCondition).toBe(0);
    console.log(
      `fio: wrote ${job.write.io_bytes} B (${Math.round(job.write.iops)} IOPS), verified ${job.read.io_bytes} B; ` +
        `max commands in flight ${device.stats.maxInFlight}, completed ${device.stats.completed}`,
    );
    // A generous limit: software-emulated guests are slow; this only stops a hung run.
  }, 900_000);
});
