// An S3 volume as a real disk (run inside the kernel lab): a Ceph RGW started in the guest, `tcmu serve
// s3://…` exposes the volume as /dev/sdX, and mkfs.ext4, mount, writes, unmount, e2fsck and a restart
// of `tcmu serve` judge it. Uses the built CLI (packages/cli/dist/cli.js) and this package's dist.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  cliPath as cli,
  describeKernel,
  must,
  runningServers as running,
  serveCli as serve,
  startGuestRgw,
  stopGuestRgw,
} from '@tcmu/lab';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { inspectS3Volume } from './volume.ts';

const run = promisify(execFile);

describeKernel('an S3 volume as a disk in the real kernel (RGW in the guest)', () => {
  let env: NodeJS.ProcessEnv = process.env;
  let work = '';

  beforeAll(async () => {
    expect(existsSync(cli), `${cli} exists (run pnpm build before the kernel tests)`).toBe(true);
    const started = Date.now();
    env = await startGuestRgw();
    console.log(`RGW in the guest started in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    // This process inspects the volume too: the same credentials, from the environment as always.
    process.env.AWS_ACCESS_KEY_ID = env.AWS_ACCESS_KEY_ID;
    process.env.AWS_SECRET_ACCESS_KEY = env.AWS_SECRET_ACCESS_KEY;
    process.env.AWS_REGION = env.AWS_REGION;
    work = await mkdtemp(join(tmpdir(), 'tcmu-s3-kernel-'));
  }, 600_000);

  afterEach(() => {
    for (const child of running) child.kill('SIGKILL');
  });

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
    await stopGuestRgw();
  }, 120_000);

  it('takes mkfs.ext4, mount, writes, unmount, fsck -fn clean; a restarted `tcmu serve` finds the files intact', async () => {
    const endpoint = env.TCMU_S3_ENDPOINT!;
    const bucket = env.TCMU_S3_BUCKET!;
    const prefix = `lab/${randomBytes(3).toString('hex')}/disk`;
    const url = `s3://${bucket}/${prefix}?endpoint=${endpoint}`;
    const size = 64 * 1024 * 1024;

    const first = await serve([url, '--size', '64M', '--name', 's3-lab'], env);
    expect(first.device).toMatch(/^\/dev\/sd[a-z]+$/);
    const mountPoint = join(work, 'mnt');
    await must('mkdir', ['-p', mountPoint]);
    await must('mkfs.ext4', ['-F', '-q', first.device]);
    await must('mount', [first.device, mountPoint]);
    const sums = new Map<string, string>();
    for (let i = 0; i < 4; i++) {
      const content = randomBytes(i === 0 ? 2 * 1024 * 1024 + 17 : 200 * 1024);
      sums.set(`file-${i}.bin`, createHash('sha256').update(content).digest('hex'));
      await writeFile(join(mountPoint, `file-${i}.bin`), content);
    }
    await must('sync', ['-f', mountPoint]);
    await must('umount', [mountPoint]);
    const fsck = await must('e2fsck', ['-fn', first.device]);
    expect(fsck).toBeDefined();
    expect(await first.stop('SIGTERM')).toBe(0);

    const location = { bucket, endpoint, prefix };
    const info = await inspectS3Volume(location);
    console.log(
      `after unmount and stop: ${info.chunksStored} chunks, ${info.bytesStored} bytes stored of ${size} (lease: ${info.lease ? 'held' : 'released'})`,
    );
    expect(info.lease).toBeNull();
    expect(info.chunksStored).toBeGreaterThan(0);
    expect(info.bytesStored).toBeLessThan(size); // sparse: the empty parts of the file system are not stored

    const second = await serve([url, '--name', 's3-lab-2'], env);
    const check = await run('e2fsck', ['-fn', second.device]).then(
      () => 0,
      (error: { code?: number }) => error.code ?? -1,
    );
    expect(check).toBe(0);
    await must('mount', [second.device, mountPoint]);
    for (const [name, sum] of sums) {
      const content = await readFile(join(mountPoint, name));
      expect(createHash('sha256').update(content).digest('hex'), name).toBe(sum);
    }
    await must('umount', [mountPoint]);
    expect(await second.stop('SIGTERM')).toBe(0);
  }, 900_000);
});
