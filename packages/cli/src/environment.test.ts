import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { detectTcmu, findLabRunner, noTcmuHint, tcmuLoaded } from './environment.js';

let root = '';
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'tcmu-cli-env-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const paths = () => ({ configfsRoot: join(root, 'config'), sysModuleRoot: join(root, 'module') });
async function kernelWith(...present: string[]) {
  for (const path of present) await mkdir(join(root, path), { recursive: true });
}

describe('TCMU detection', () => {
  it('sees TCMU when configfs has target/ and both modules are loaded', async () => {
    await kernelWith('config/target', 'module/target_core_user', 'module/tcm_loop');
    expect(await tcmuLoaded(paths())).toBe(true);
    expect(await detectTcmu({ paths: paths(), modprobe: false })).toEqual({ available: true });
  });

  it.each([
    [['module/target_core_user', 'module/tcm_loop']],
    [['config/target', 'module/tcm_loop']],
    [['config/target', 'module/target_core_user']],
  ])('does not with only %j', async (present) => {
    await kernelWith(...present);
    expect(await tcmuLoaded(paths())).toBe(false);
    expect(await detectTcmu({ paths: paths(), isRoot: true, modprobe: false })).toEqual({
      available: false,
      reason: 'target_core_user or tcm_loop is not loaded',
    });
  });

  it('says that loading needs root', async () => {
    expect(await detectTcmu({ paths: paths(), isRoot: false })).toEqual({
      available: false,
      reason: 'TCMU is not loaded and loading it needs root',
    });
  });
});

describe('the kernel lab', () => {
  it('is found three folders above the CLI file, when tools/lab/run is a file', async () => {
    const cliFile = join(root, 'packages', 'cli', 'dist', 'cli.js');
    expect(await findLabRunner(cliFile)).toBeUndefined();
    await kernelWith('tools/lab');
    await writeFile(join(root, 'tools', 'lab', 'run'), '#!/bin/sh\n');
    expect(await findLabRunner(cliFile)).toBe(join(root, 'tools', 'lab', 'run'));
  });

  it('is named in the advice when present, with the CLI path next to it', () => {
    expect(noTcmuHint('/repo/tools/lab/run')).toBe(
      'run it in the kernel lab: /repo/tools/lab/run node /repo/packages/cli/dist/cli.js <command> …; the demo: tcmu demo',
    );
    expect(noTcmuHint(undefined)).toMatch(/modprobe target_core_user tcm_loop/);
  });
});
