import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildPortableProject,
  buildScratchProject,
  portableDirectory,
  runExample,
  scratchDirectory,
} from './published';

// The kernel lab runs with no network: this host test makes the scratch project it uses.
describe('the packages as published (pnpm pack → npm install in a scratch project)', () => {
  beforeAll(async () => {
    await buildScratchProject();
  });

  it('installs every package from its tarball, with its LICENSE and no workspace: ranges', () => {
    for (const name of [
      'scsi',
      'libc',
      'ring',
      'configfs',
      'core',
      'backend',
      'backend-memory',
      'backend-file',
      'backend-s3',
      'cli',
    ]) {
      const folder = join(scratchDirectory, 'node_modules', '@tcmu', name);
      expect(existsSync(join(folder, 'LICENSE')), `${name} LICENSE`).toBe(true);
      expect(readFileSync(join(folder, 'package.json'), 'utf8')).not.toContain('workspace:');
    }
  });

  it('koffi reaches only the packages that make system calls (through @tcmu/libc)', () => {
    /** Names in the installed dependency tree of `name` (dependencies and optionalDependencies). */
    const tree = (name: string, seen = new Set<string>()): Set<string> => {
      if (seen.has(name)) return seen;
      seen.add(name);
      const manifest = JSON.parse(
        readFileSync(join(scratchDirectory, 'node_modules', name, 'package.json'), 'utf8'),
      ) as { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
      for (const dependency of Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies }))
        if (dependency.startsWith('@tcmu/') || dependency === 'koffi') tree(dependency, seen);
      return seen;
    };
    for (const name of ['@tcmu/scsi', '@tcmu/backend', '@tcmu/backend-memory', '@tcmu/backend-s3'])
      expect(
        [...tree(name)].filter((n) => n === 'koffi' || n === '@tcmu/libc'),
        name,
      ).toEqual([]);
    for (const name of ['@tcmu/ring', '@tcmu/configfs', '@tcmu/backend-file'])
      expect(tree(name).has('koffi'), name).toBe(true);
  });

  it('runs the memory backend example', async () => {
    expect(await runExample('memory-backend')).toBe('hello 4096\n');
  });

  it('runs the chunk filters example: a write is dirty, then stored, then read from the cache', async () => {
    expect(await runExample('chunk-filters')).toBe('dirty\nundefined 1\nhello 1\n');
  });

  it('runs the simulated kernel example through serveRing and the SBC emulation', async () => {
    // 1 MiB of 512-byte blocks: last LBA 2047 (0x7ff), block length 512 (0x200).
    expect(await runExample('simulated-kernel')).toBe('2 6 41\n0 [\n  0, 0, 7, 255,\n  0, 0, 2,   0\n]\n');
  });

  it('runs the custom handler example: two vendor commands and the standard emulation', async () => {
    // PING twice → PING COUNT reports 2; READ(10) is served by the standard emulation.
    expect(await runExample('custom-handler')).toBe('0 2 0\n');
  });

  it('the tcmu binary of the published @tcmu/cli answers --help', async () => {
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const { stdout } = await promisify(execFile)(join(scratchDirectory, 'node_modules', '.bin', 'tcmu'), [
      '--help',
    ]);
    expect(stdout).toContain('serve');
  });

  it('decoding and the emulation install and run without koffi (optional) and without a kernel', async () => {
    await buildPortableProject();
    expect(existsSync(join(portableDirectory, 'node_modules', 'koffi'))).toBe(false);
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    // No NODE_PATH: pnpm sets one that reaches the workspace's hoisted koffi.
    const { stdout } = await promisify(execFile)(process.execPath, ['emulate.mjs'], {
      cwd: portableDirectory,
      env: { ...process.env, NODE_PATH: '' },
    });
    // WRITE(10) GOOD, READ(10) GOOD, the block read back; then @tcmu/libc refuses with its code.
    expect(stdout).toBe('0 0 7 7\nTCMU_ERR_LIBC_NO_KOFFI\n');
  });
});
