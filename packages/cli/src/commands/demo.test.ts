import { describe, expect, it } from 'vitest';
import type { TcmuAvailability } from '../environment.js';
import { captureIo, expectCliError } from '../test-support.js';
import { type DemoDependencies, demoCommand, parseDemoArguments } from './demo.js';
import { checkCapacity, type DemoOptions } from './demo-here.js';

function fakeDemo(availability: TcmuAvailability, lab: string | undefined) {
  const calls: { file: string; args: readonly string[] }[] = [];
  const here: DemoOptions[] = [];
  const dependencies: DemoDependencies = {
    detectTcmu: async () => availability,
    labRunner: async () => lab,
    runInherited: async (file, args) => {
      calls.push({ file, args });
      return 0;
    },
    runHere: async (options) => {
      here.push(options);
      return 0;
    },
    cliScript: () => '/repo/packages/cli/dist/cli.js',
  };
  return { dependencies, calls, here };
}

describe('tcmu demo orchestration', () => {
  it('runs in this kernel when it has TCMU', async () => {
    const fake = fakeDemo({ available: true }, '/repo/tools/lab/run');
    const { io } = captureIo();
    expect(await demoCommand([], io, fake.dependencies)).toBe(0);
    expect(fake.here).toHaveLength(1);
    expect(fake.calls).toEqual([]);
  });

  it('moves to the kernel lab when this kernel has no TCMU, passing its options on', async () => {
    const fake = fakeDemo(
      { available: false, reason: 'modprobe target_core_user failed: not found' },
      '/repo/tools/lab/run',
    );
    const { io, stdout } = captureIo();
    expect(await demoCommand(['--size', '128M', '-b', '4096'], io, fake.dependencies)).toBe(0);
    expect(fake.here).toEqual([]);
    expect(fake.calls).toEqual([
      {
        file: '/repo/tools/lab/run',
        args: [
          '--timeout',
          '900',
          '--',
          process.execPath,
          '/repo/packages/cli/dist/cli.js',
          'demo',
          '--here',
          '--size',
          '128M',
          '-b',
          '4096',
        ],
      },
    ]);
    expect(stdout()).toMatch(/no TCMU \(modprobe target_core_user failed: not found\)/);
    expect(stdout()).toMatch(/running it in the kernel lab/);
  });

  it('returns the lab run exit status', async () => {
    const fake = fakeDemo({ available: false, reason: 'x' }, '/repo/tools/lab/run');
    fake.dependencies.runInherited = async () => 3;
    expect(await demoCommand([], captureIo().io, fake.dependencies)).toBe(3);
  });

  it('without the lab (a published install) says the host has no TCMU and how to get it', async () => {
    const fake = fakeDemo(
      { available: false, reason: 'modprobe target_core_user failed: not found' },
      undefined,
    );
    const error = await demoCommand([], captureIo().io, fake.dependencies).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'TCMU_ERR_CLI_NO_TCMU',
      message: 'this kernel has no TCMU (modprobe target_core_user failed: not found)',
      hint: expect.stringMatching(/modprobe target_core_user tcm_loop.*tools\/lab\/run/),
    });
    expect(fake.calls).toEqual([]);
  });

  // --here checks for root before anything else.
  it.skipIf(process.getuid?.() !== 0)(
    'never moves to the lab with --here [skipped when not root]',
    async () => {
      const fake = fakeDemo({ available: false, reason: 'no module' }, '/repo/tools/lab/run');
      const error = await demoCommand(['--here'], captureIo().io, fake.dependencies).catch((e: unknown) => e);
      expect(error).toMatchObject({
        code: 'TCMU_ERR_CLI_NO_TCMU',
        hint: expect.stringMatching(/kernel lab/),
      });
      expect(fake.calls).toEqual([]);
    },
  );
});

describe('parseDemoArguments', () => {
  it('has defaults', () => {
    expect(parseDemoArguments([])).toEqual({
      help: false,
      options: {
        here: false,
        size: 256 * 1024 ** 2,
        blockSize: 512,
        files: 8,
        fileSize: 1024 ** 2,
        logLevel: 'warn',
        forwarded: [],
      },
    });
  });

  it.each([
    [['--size', '8M'], 'TCMU_ERR_CLI_SIZE', /too small for the demo/],
    [['--files', '200', '--file-size', '1M', '--size', '64M'], 'TCMU_ERR_CLI_SIZE', /do not fit/],
    [['--block-size', '2048'], 'TCMU_ERR_CLI_BLOCK_SIZE', /512 or 4096/],
    [['--files', '0'], 'TCMU_ERR_CLI_USAGE', /--files "0"/],
    [['now'], 'TCMU_ERR_CLI_USAGE', /unexpected argument "now"/],
  ])('rejects %j', (argv, code, message) => {
    expectCliError(() => parseDemoArguments(argv), code, message);
  });
});

describe('checkCapacity', () => {
  const output = (lastLba: number, length: number) =>
    `Read Capacity results:\n   Protection: prot_en=0, p_type=0, p_i_exponent=0\n   Last LBA=${lastLba} (0x${lastLba.toString(16)}), Number of logical blocks=${lastLba + 1}\n   Logical block length=${length} bytes\n`;

  it('accepts what the disk should report', () => {
    expect(() => checkCapacity(output(524287, 512), 256 * 1024 ** 2, 512)).not.toThrow();
    expect(() => checkCapacity(output(65535, 4096), 256 * 1024 ** 2, 4096)).not.toThrow();
  });

  it('fails on a wrong block count or length, or unreadable output', () => {
    expectCliError(
      () => checkCapacity(output(524286, 512), 256 * 1024 ** 2, 512),
      'TCMU_ERR_CLI_DEMO_FAILED',
      /524287 blocks of 512 bytes; expected 524288/,
    );
    expectCliError(
      () => checkCapacity(output(524287, 4096), 256 * 1024 ** 2, 512),
      'TCMU_ERR_CLI_DEMO_FAILED',
      /of 4096 bytes/,
    );
    expectCliError(() => checkCapacity('nothing', 1, 512), 'TCMU_ERR_CLI_DEMO_FAILED', /no last LBA/);
  });
});
