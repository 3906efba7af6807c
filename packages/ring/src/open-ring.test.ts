// openRing's own path (sysfs size, open, mmap, mailbox checks) on files shaped like a uio device.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openRing } from './ring';

/** A fake sysfs + /dev with one uio device backed by a regular file holding `mailbox`. */
function fakeDevice(
  size: number,
  mailbox: { version: number; flags: number; offset: number; ringSize: number },
) {
  const root = mkdtempSync(join(tmpdir(), 'tcmu-ring-'));
  const sysfsRoot = join(root, 'sys');
  const devRoot = join(root, 'dev');
  mkdirSync(join(sysfsRoot, 'class', 'uio', 'uio7', 'maps', 'map0'), { recursive: true });
  mkdirSync(devRoot);
  writeFileSync(
    join(sysfsRoot, 'class', 'uio', 'uio7', 'maps', 'map0', 'size'),
    `0x${size.toString(16).padStart(16, '0')}\n`,
  );
  const bytes = Buffer.alloc(size);
  bytes.writeUInt16LE(mailbox.version, 0);
  bytes.writeUInt16LE(mailbox.flags, 2);
  bytes.writeUInt32LE(mailbox.offset, 4);
  bytes.writeUInt32LE(mailbox.ringSize, 8);
  writeFileSync(join(devRoot, 'uio7'), bytes);
  return { uio: 'uio7', sysfsRoot, devRoot };
}

describe('openRing', () => {
  it('maps the size sysfs gives and reads the mailbox', async () => {
    const location = fakeDevice(1024 * 1024, { version: 2, flags: 0x3, offset: 128, ringSize: 65536 - 128 });
    const ring = await openRing(location);
    expect(ring.size).toBe(1024 * 1024);
    expect(ring.commandRingSize).toBe(65536 - 128);
    expect(ring.capabilities).toEqual({
      outOfOrderCompletion: true,
      readLength: true,
      taskManagement: false,
      keepBuffer: false,
    });
    expect(ring.path).toBe(join(location.devRoot, 'uio7'));
    await ring.close();
    await ring.close();
  });

  it.each([
    ['a mailbox version other than 2', { version: 1, flags: 1, offset: 128, ringSize: 1024 }, /version 1/],
    ['no CAP_OOOC', { version: 2, flags: 0x2, offset: 128, ringSize: 1024 }, /CAP_OOOC/],
    ['a command ring past the mapping', { version: 2, flags: 1, offset: 128, ringSize: 1 << 20 }, /exceeds/],
    ['a misaligned ring', { version: 2, flags: 1, offset: 100, ringSize: 1024 }, /cmdr_off 100/],
  ])('refuses %s', async (_name, mailbox, message) => {
    await expect(openRing(fakeDevice(64 * 1024, mailbox))).rejects.toMatchObject({
      code: 'TCMU_ERR_RING_UNSUPPORTED',
      message: expect.stringMatching(message),
    });
  });

  it('says which device is missing, and refuses paths that are not uio devices', async () => {
    await expect(openRing({ uio: 'uio7', sysfsRoot: '/nonexistent' })).rejects.toMatchObject({
      code: 'TCMU_ERR_RING_NOT_FOUND',
    });
    const location = fakeDevice(64 * 1024, { version: 2, flags: 1, offset: 128, ringSize: 1024 });
    await expect(openRing({ ...location, devRoot: '/nonexistent' })).rejects.toMatchObject({
      code: 'TCMU_ERR_RING_NOT_FOUND',
      errno: 'ENOENT',
    });
    await expect(openRing('/dev/sda')).rejects.toMatchObject({ code: 'TCMU_ERR_RING_INVALID_ARGUMENT' });
  });
});
