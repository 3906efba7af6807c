// A real file system on disks served by openDevice, inside the kernel lab: mkfs.ext4, mount, write,
// unmount, fsck -fn clean, remount, checksums match; memory and file backends, 512 and 4096-byte blocks.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '@tcmu/backend';
import { openFileBackend } from '@tcmu/backend-file';
import { openMemoryBackend } from '@tcmu/backend-memory';
import { describeKernel } from '@tcmu/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { run, runOk, testHba, testName } from './kernel-support';
import { openDevice } from './open-device';

const size = 96 * 1024 * 1024;

interface Case {
  backend: 'memory' | 'file';
  blockSize: 512 | 4096;
}

const cases: Case[] = [
  { backend: 'memory', blockSize: 512 },
  { backend: 'memory', blockSize: 4096 },
  { backend: 'file', blockSize: 512 },
  { backend: 'file', blockSize: 4096 },
];

describeKernel('ext4 on openDevice disks', () => {
  let folder = '';
  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'tcmu-fs-'));
  });
  afterAll(async () => {
    if (folder) await rm(folder, { recursive: true, force: true });
  });

  for (const { backend: kind, blockSize } of cases) {
    it(`mkfs, mount, write, fsck -fn, remount and compare: ${kind} backend, ${blockSize}-byte blocks`, async () => {
      const image = join(folder, `disk-${kind}-${blockSize}.img`);
      const open = async (): Promise<Backend> =>
        kind === 'memory'
          ? openMemoryBackend({ size, blockSize })
          : openFileBackend({ path: image, size, blockSize });
      const mountPoint = join(folder, `mnt-${kind}-${blockSize}`);
      await mkdir(mountPoint, { recursive: true });
      const name = testName(`fs-${kind}-${blockSize}`);

      const backend = await open();
      // The file backend is closed and reopened between the two mounts (data must survive a
      // restart of the device); the memory backend stays open across them.
      let device = await openDevice({ name, backend, hba: testHba(1), closeBackend: kind === 'file' });
      let closed = false;
      try {
        const sysfsBlock = await readFile(
          `/sys/block/${device.devicePath.slice('/dev/'.length)}/queue/logical_block_size`,
          'utf8',
        );
        expect(Number(sysfsBlock)).toBe(blockSize);
        await runOk('mkfs.ext4', ['-q', '-F', device.devicePath]);
        await runOk('mount', [device.devicePath, mountPoint]);
        const files = new Map<string, string>();
        for (let i = 0; i < 24; i++) {
          const data = randomBytes(1024 * (1 + ((i * 37) % 700)));
          const path = join(mountPoint, `file-${i}.bin`);
          await writeFile(path, data);
          files.set(path, createHash('sha256').update(data).digest('hex'));
        }
        await runOk('sync', []);
        await runOk('umount', [mountPoint]);
        const fsck = await run('fsck.ext4', ['-fn', device.devicePath]);
        expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);

        if (kind === 'file') {
          await device.close();
          device = await openDevice({ name, backend: await open(), hba: testHba(1) });
        }
        await runOk('mount', [device.devicePath, mountPoint]);
        for (const [path, sum] of files) {
          expect(
            createHash('sha256')
              .update(await readFile(path))
              .digest('hex'),
          ).toBe(sum);
        }
        await runOk('umount', [mountPoint]);
        expect(device.stats.handlerFailures).toBe(0);
        // Not asserted here: commands in flight at once. READ and WRITE on these backends are
        // answered synchronously (one at a time); fio.kernel.test.ts checks concurrency.
        await device.close();
        closed = true;
        if (kind === 'memory') await backend.close?.();
      } finally {
        if (!closed) {
          await run('umount', [mountPoint]);
          await device.close();
        }
      }
      // Nothing left behind in configfs.
      const listing = await run('ls', ['/sys/kernel/config/target/core']);
      expect(listing.stdout).not.toMatch(new RegExp(`user_${testHba(1)}\\b`));
      // A generous limit for a software-emulated guest; it only stops a hung run.
    }, 600_000);
  }
});
