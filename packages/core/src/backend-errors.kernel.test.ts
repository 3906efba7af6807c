// Backend errors from the real kernel, served (inside the kernel lab): ENOSPC from a full tmpfs and
// EIO from a device-mapper `error` target reach the initiator as the right sense (seen by sg_raw),
// and each is logged once per device with advice.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFileBackend } from '@tcmu/backend-file';
import { createErrorDevice, describeKernel, type ErrorDevice } from '@tcmu/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { run, testHba, testName } from './kernel-support';
import { openDevice } from './open-device';
import type { Logger } from './types';

const sh = (command: string, ...args: string[]) => execFileSync(command, args, { encoding: 'utf8' }).trim();
const MiB = 1024 * 1024;

function capture() {
  const warnings: Array<{ kind: unknown; message: string }> = [];
  const logger: Logger = {
    warn: (context, message) => warnings.push({ kind: (context as { kind?: unknown }).kind, message }),
  };
  return { logger, warnings };
}

/** WRITE(10) of `blocks` 512-byte blocks of zeros at `lba` through SG_IO; returns sg_raw's output. */
async function writeWithSgRaw(sg: string, lba: number, blocks: number): Promise<string> {
  const cdb = [
    0x2a,
    0,
    lba >>> 24,
    (lba >>> 16) & 255,
    (lba >>> 8) & 255,
    lba & 255,
    0,
    blocks >>> 8,
    blocks & 255,
    0,
  ];
  const result = await run('sg_raw', [
    '-s',
    String(blocks * 512),
    '-i',
    '/dev/zero',
    sg,
    ...cdb.map((byte) => byte.toString(16).padStart(2, '0')),
  ]);
  return `${result.stdout}\n${result.stderr}`;
}

describeKernel('backend errors reach the initiator as sense, logged once', () => {
  const dmName = `tcmu-served-eio-${process.pid}`;
  let folder = '';
  let mounted = '';
  let errorDevice: ErrorDevice | undefined;

  beforeAll(() => {
    folder = mkdtempSync(join(tmpdir(), 'tcmu-kernel-errors-'));
  });

  afterAll(() => {
    errorDevice?.remove();
    if (mounted) sh('umount', mounted);
    rmSync(folder, { recursive: true, force: true });
  });

  it('ENOSPC from a full tmpfs: 07/27 07 at the initiator, one warning with advice', async () => {
    mounted = join(folder, 'small');
    sh('mkdir', mounted);
    sh('mount', '-t', 'tmpfs', '-o', 'size=1m', 'tcmu-served-small', mounted);
    const backend = await openFileBackend({ path: join(mounted, 'disk.img'), size: 4 * MiB });
    const { logger, warnings } = capture();
    const device = await openDevice({ name: testName('enospc'), backend, hba: testHba(8), logger });
    try {
      // 4 MiB onto 1 MiB of tmpfs, 512 KiB per WRITE (sg_raw sends at most 512 KiB): the later ones fail.
      const outputs: string[] = [];
      for (let lba = 0; lba < 8192; lba += 1024)
        outputs.push(await writeWithSgRaw(device.sgPath!, lba, 1024));
      const failed = outputs.filter((output) => /Sense Information/i.test(output));
      console.log(
        `sg_raw on a full tmpfs: ${failed.length} of ${outputs.length} writes failed:\n${failed[0]?.trim()}`,
      );
      expect(failed.length).toBeGreaterThanOrEqual(2);
      for (const output of failed) {
        expect(output).toMatch(/Data protect/i);
        expect(output).toMatch(/Space allocation failed/i);
      }
      expect(warnings.filter((w) => w.kind === 'no-space')).toHaveLength(1);
      expect(warnings.find((w) => w.kind === 'no-space')?.message).toMatch(/full.*free space or grow it/);
      expect(device.stats.backendErrors).toBeGreaterThanOrEqual(2);
    } finally {
      await device.close();
    }
  }, 300_000);

  it('EIO from a device-mapper error target: 03/0C 00 at the initiator, one warning with advice', async () => {
    // Bytes 2 MiB to 3 MiB fail; the rest maps to a loop device.
    errorDevice = createErrorDevice(folder, dmName);
    const backend = await openFileBackend({ path: errorDevice.path, direct: true });
    const { logger, warnings } = capture();
    const device = await openDevice({ name: testName('eio'), backend, hba: testHba(9), logger });
    try {
      const good = await writeWithSgRaw(device.sgPath!, 0, 8);
      expect(good).not.toMatch(/Sense Information/i);
      const outputs = [
        await writeWithSgRaw(device.sgPath!, 4096, 8),
        await writeWithSgRaw(device.sgPath!, 4200, 8),
      ];
      console.log(`sg_raw on a dm-error range:\n${outputs[0]!.trim()}`);
      for (const output of outputs) {
        expect(output).toMatch(/Medium Error/i);
        expect(output).toMatch(/Write error/i);
      }
      expect(warnings.filter((w) => w.kind === 'io-error')).toHaveLength(1);
      expect(warnings.find((w) => w.kind === 'io-error')?.message).toMatch(/I\/O errors.*dmesg/);
    } finally {
      await device.close();
    }
  }, 300_000);
});
