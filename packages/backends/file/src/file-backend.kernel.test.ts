import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackendErrorCode } from '@tcmu/backend';
import { createErrorDevice, describeKernel, type ErrorDevice } from '@tcmu/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openFileBackend } from './file-backend';

// Real kernel failures, in the lab's disposable guest (it may load modules and mount): EIO from a
// device-mapper `error` target and ENOSPC from a full tmpfs must reach callers as the right codes.
const sh = (command: string, ...args: string[]) => execFileSync(command, args, { encoding: 'utf8' }).trim();
const codeOf = (promise: Promise<unknown>) =>
  promise.then(
    () => 'resolved',
    (error: { code: string }) => error.code,
  );
const MiB = 1024 * 1024;

describeKernel('file backend against real kernel errors', () => {
  const name = `tcmu-eio-${process.pid}`;
  let folder = '';
  let errorDevice: ErrorDevice | undefined;
  let mounted = '';

  beforeAll(() => {
    folder = mkdtempSync(join(tmpdir(), 'tcmu-kernel-file-'));
  });

  afterAll(() => {
    errorDevice?.remove();
    if (mounted) sh('umount', mounted);
    rmSync(folder, { recursive: true, force: true });
  });

  it('EIO from a device-mapper error target: reads → READ, buffered writes → WRITE at flush, O_DIRECT writes → WRITE', async () => {
    // Bytes 2 MiB to 3 MiB fail; the rest maps to a loop device.
    errorDevice = createErrorDevice(folder, name);
    const path = errorDevice.path;

    const backend = await openFileBackend({ path });
    try {
      expect(backend.size).toBe(8 * MiB);
      const block = new Uint8Array(4096).fill(0x42);
      expect(await codeOf(backend.write(0, [block]))).toBe('resolved');
      expect(await codeOf(backend.flush!())).toBe('resolved');
      expect(await codeOf(backend.read(0, 4096, [new Uint8Array(4096)]))).toBe('resolved');
      const failedRead = await backend.read(2 * MiB + 4096, 4096, [new Uint8Array(4096)]).catch((e) => e);
      expect(failedRead.code).toBe(BackendErrorCode.Read);
      expect(failedRead.message).toMatch(/EIO|I\/O error/i);
      // A buffered write lands in the page cache; the failure surfaces at the durability barrier.
      await backend.write(2 * MiB, [block]).catch(() => {});
      expect(await codeOf(backend.flush!())).toBe(BackendErrorCode.Write);
    } finally {
      await backend.close().catch(() => {});
    }

    const direct = await openFileBackend({ path, direct: true });
    try {
      expect(await codeOf(direct.write(2 * MiB, [new Uint8Array(4096)]))).toBe(BackendErrorCode.Write);
      expect(await codeOf(direct.read(2 * MiB, 4096, [new Uint8Array(4096)]))).toBe(BackendErrorCode.Read);
      expect(await codeOf(direct.write(4 * MiB, [new Uint8Array(4096)]))).toBe('resolved');
    } finally {
      await direct.close().catch(() => {});
    }
  });

  it('ENOSPC on a full tmpfs becomes NO_SPACE, and unmap gives the space back', async () => {
    mounted = join(folder, 'small');
    sh('mkdir', mounted);
    sh('mount', '-t', 'tmpfs', '-o', 'size=1m', 'tcmu-small', mounted);
    const backend = await openFileBackend({ path: join(mounted, 'disk.img'), size: 4 * MiB });
    try {
      const big = new Uint8Array(2 * MiB).fill(7);
      const failed = await backend.write(0, [big]).catch((e) => e);
      expect(failed.code).toBe(BackendErrorCode.NoSpace);
      await backend.unmap!(0, 4 * MiB);
      expect(await codeOf(backend.write(0, [big.subarray(0, 256 * 1024)]))).toBe('resolved');
      const out = new Uint8Array(256 * 1024);
      await backend.read(0, out.byteLength, [out]);
      expect(out.every((b) => b === 7)).toBe(true);
    } finally {
      await backend.close().catch(() => {});
    }
  });
});
