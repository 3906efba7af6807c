import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backendCapabilities } from '@tcmu/backend';
import { runBackendConformance } from '@tcmu/backend/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { openFileBackend } from './file-backend';

// A real block device: a loop device over a sparse file (needs root and /dev/loop-control).
const size = 32 * 1024 * 1024;
const folder = mkdtempSync(join(tmpdir(), 'tcmu-loop-'));
let device: string | undefined;
let reason = '';
try {
  if (process.getuid?.() !== 0) throw new Error('needs root');
  const backing = join(folder, 'backing.img');
  execFileSync('truncate', ['-s', String(size), backing]);
  device = execFileSync('losetup', ['--find', '--show', backing], { encoding: 'utf8' }).trim();
} catch (error) {
  reason = `skipped: no loop device (${(error as Error).message.split('\n')[0]})`;
}
afterAll(() => {
  if (device) execFileSync('losetup', ['--detach', device]);
  rmSync(folder, { recursive: true, force: true });
});

describe.runIf(device)(`file backend on a block device (loop) ${reason}`, () => {
  runBackendConformance({
    name: 'block device',
    size,
    // A device is never "fresh": zero it on open so the never-written tests hold.
    open: async (asked) => {
      const backend = await openFileBackend({ path: device!, size: asked });
      await backend.unmap!(0, backend.size);
      return backend;
    },
    reopen: () => openFileBackend({ path: device! }),
  });

  it('reports the device size and sector size, and has no resize or getAllocation', async () => {
    const backend = await openFileBackend({ path: device! });
    try {
      expect(backend.kind).toBe('block-device');
      expect(backend.size).toBe(size);
      expect(backend.blockSize).toBe(512);
      const capabilities = backendCapabilities(backend);
      expect(capabilities.resize).toBe(false);
      expect(capabilities.getAllocation).toBe(false);
      expect(capabilities.unmap).toBe(true);
    } finally {
      await backend.close();
    }
  });
});

if (!device) it.skip(`block-device conformance ${reason}`, () => {});
