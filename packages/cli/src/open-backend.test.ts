import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';
import { importBackendPackage, openBackend } from './open-backend.js';

const logger = createLogger('silent');
let folder = '';

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'tcmu-cli-open-backend-'));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

const file = (path: string) => ({ kind: 'file' as const, path });

describe('openBackend', () => {
  it('opens a memory disk of the asked size and closes it once', async () => {
    const opened = await openBackend(
      { backend: { kind: 'memory' }, size: 1 << 20, blockSize: 512, readOnly: false },
      logger,
    );
    expect(opened.backend.size).toBe(1 << 20);
    expect(opened.description).toBe('a 1 MiB memory disk');
    await opened.backend.write(4096, [new Uint8Array([1, 2, 3])]);
    const back = new Uint8Array(3);
    await opened.backend.read(4096, 3, [back]);
    expect([...back]).toEqual([1, 2, 3]);
    await Promise.all([opened.close(), opened.close()]);
    await expect(opened.backend.read(0, 1, [new Uint8Array(1)])).rejects.toMatchObject({
      code: 'TCMU_ERR_BACKEND_CLOSED',
    });
  });

  it('refuses writes with --read-only', async () => {
    const opened = await openBackend(
      { backend: { kind: 'memory' }, size: 1 << 20, blockSize: 512, readOnly: true },
      logger,
    );
    expect(opened.backend.readOnly).toBe(true);
    await expect(opened.backend.write(0, [new Uint8Array(512)])).rejects.toMatchObject({
      code: 'TCMU_ERR_BACKEND_READ_ONLY',
    });
    await opened.close();
  });

  it('refuses an image in a folder that does not exist, creating nothing', async () => {
    const path = join(folder, 'missing', 'disk.img');
    await expect(
      openBackend({ backend: file(path), size: 1 << 20, blockSize: 512, readOnly: false }, logger),
    ).rejects.toMatchObject({
      code: 'TCMU_ERR_CLI_FILE',
      message: `the folder ${join(folder, 'missing')} does not exist (the image is created in it)`,
    });
  });

  it('needs --size for a new image', async () => {
    await expect(
      openBackend(
        { backend: file(join(folder, 'new.img')), size: undefined, blockSize: 512, readOnly: false },
        logger,
      ),
    ).rejects.toMatchObject({
      code: 'TCMU_ERR_CLI_FILE',
      message: expect.stringMatching(/give --size to create it/),
    });
  });

  it('refuses a --size that differs from an existing image', async () => {
    const path = join(folder, 'existing.img');
    await writeFile(path, new Uint8Array(8192));
    await expect(
      openBackend({ backend: file(path), size: 4096, blockSize: 512, readOnly: false }, logger),
    ).rejects.toMatchObject({
      code: 'TCMU_ERR_CLI_FILE',
      message: expect.stringMatching(/holds 8192 bytes \(8 KiB\) but --size asks for 4096/),
    });
  });

  it('refuses a folder as an image, and a missing image with --read-only', async () => {
    const sub = join(folder, 'a-folder');
    await mkdir(sub);
    await expect(
      openBackend({ backend: file(sub), size: 4096, blockSize: 512, readOnly: false }, logger),
    ).rejects.toMatchObject({
      code: 'TCMU_ERR_CLI_FILE',
      message: `${sub} is not a regular file`,
    });
    await expect(
      openBackend(
        { backend: file(join(folder, 'ro.img')), size: 4096, blockSize: 512, readOnly: true },
        logger,
      ),
    ).rejects.toMatchObject({
      code: 'TCMU_ERR_CLI_FILE',
      message: expect.stringMatching(/--read-only needs an existing image/),
    });
  });
});

describe('importBackendPackage', () => {
  it('passes other failures through', async () => {
    const failure = new Error('boom');
    await expect(importBackendPackage(() => Promise.reject(failure), '@tcmu/x', 'x:')).rejects.toBe(failure);
  });

  it('turns a missing backend package into TCMU_ERR_CLI_BACKEND_UNAVAILABLE with install advice', async () => {
    const specifier = '@tcmu/backend-does-not-exist';
    const load = () => import(/* @vite-ignore */ specifier);
    await expect(importBackendPackage(load, specifier, 'nope:')).rejects.toMatchObject({
      code: 'TCMU_ERR_CLI_BACKEND_UNAVAILABLE',
      message: 'the nope: backend needs the package @tcmu/backend-does-not-exist',
      hint: 'install it next to @tcmu/cli: npm install @tcmu/backend-does-not-exist',
    });
  });
});
