import { describe, expect, it } from 'vitest';
import { tcmuLoaded } from './environment.js';
import { run } from './main.js';
import { captureIo } from './test-support.js';

describe('run', () => {
  it('prints the main help on --help and exits 0', async () => {
    const { io, stdout } = captureIo();
    expect(await run(['--help'], io)).toBe(0);
    expect(stdout()).toMatch(/^Usage: tcmu <command>/m);
    expect(stdout()).toMatch(/serve <backend>/);
  });

  it('prints help and exits 2 without a command', async () => {
    const { io, stderr } = captureIo();
    expect(await run([], io)).toBe(2);
    expect(stderr()).toMatch(/Usage: tcmu <command>/);
  });

  it.each(['serve', 'ls', 'rm', 'demo'])('prints help for %s --help, and for help %s', async (command) => {
    const first = captureIo();
    expect(await run([command, '--help'], first.io)).toBe(0);
    expect(first.stdout()).toMatch(new RegExp(`^Usage: tcmu ${command}`));
    const second = captureIo();
    expect(await run(['help', command], second.io)).toBe(0);
    expect(second.stdout()).toBe(first.stdout());
  });

  it('prints the version', async () => {
    const { io, stdout } = captureIo();
    expect(await run(['--version'], io)).toBe(0);
    expect(stdout()).toMatch(
      /^tcmu \d+\.\d+\.\d+.*\nnode \d+\.\d+\.\d+\nkoffi \d+\.\d+\.\d+\nkernel \S+ \S+\n$/,
    );
    const version = (await import('../package.json', { with: { type: 'json' } })).default.version;
    expect(stdout().split('\n')[0]).toMatch(new RegExp(`^tcmu ${version.replace(/\./g, '\\.')}\\b`));
    const json = captureIo();
    expect(await run(['--version', '--json'], json.io)).toBe(0);
    expect(JSON.parse(json.stdout())).toMatchObject({ tcmu: version, node: process.versions.node });
  });

  it('fails on help for an unknown topic, with exit 2', async () => {
    const { io, stderr, stdout } = captureIo();
    expect(await run(['help', 'nosuch'], io)).toBe(2);
    expect(stderr()).toMatch(/^tcmu: unknown command "nosuch" .*\[TCMU_ERR_CLI_USAGE\]\n$/);
    expect(stdout()).toBe('');
  });

  it.each([
    [
      ['serve', 'memory:', '--size'],
      /^tcmu serve: --size needs a value \(for a value that starts with "-", write --size=VALUE\)/,
    ],
    [['serve', 'memory:', '--size', '--name', 'x'], /^tcmu serve: --size needs a value/],
    [['serve', 'memory:', '--size', '1M', '--json=yes'], /^tcmu serve: --json takes no value/],
    [['serve', 'memory:', '--sise', '1M'], /^tcmu serve: unknown option --sise \(did you mean --size\?\)/],
    [['ls', '-x'], /^tcmu ls: unknown option -x \(see tcmu ls --help\)/],
  ])('words parser errors itself: %j', async (argv, message) => {
    const { io, stderr } = captureIo();
    expect(await run(argv, io)).toBe(2);
    expect(stderr()).toMatch(message);
    expect(stderr()).not.toMatch(/ambiguous|positional|Option '/);
  });

  it('prints errors as one JSON object under --json, with the same exit status', async () => {
    const usage = captureIo();
    expect(await run(['ls', 'extra', '--json'], usage.io)).toBe(2);
    expect(JSON.parse(usage.stderr())).toEqual({
      event: 'error',
      command: 'tcmu ls',
      code: 'TCMU_ERR_CLI_USAGE',
      message: 'unexpected argument "extra": ls takes no arguments',
      hint: 'see tcmu ls --help',
      exitCode: 2,
    });
    const failure = captureIo();
    expect(await run(['stats', 'nothere', '--json'], failure.io)).toBe(1);
    expect(JSON.parse(failure.stderr())).toMatchObject({ code: 'TCMU_ERR_CLI_NO_SUCH_DEVICE', exitCode: 1 });
  });

  it('rejects an unknown command with one line and exit 2', async () => {
    const { io, stderr, stdout } = captureIo();
    expect(await run(['srve'], io)).toBe(2);
    expect(stderr()).toBe(
      'tcmu: unknown command "srve" (commands: serve, ls, rm, stats, demo, volume; see tcmu --help) [TCMU_ERR_CLI_USAGE]\n',
    );
    expect(stdout()).toBe('');
  });

  it.each([
    [['serve', 'memory:', '--size', '12X'], 2, /^tcmu serve: invalid size "12X".*\[TCMU_ERR_CLI_SIZE\]\n$/],
    [['serve', 'memory:', '--size', '1M', '--block-size', '1000'], 2, /\[TCMU_ERR_CLI_BLOCK_SIZE\]\n$/],
    [
      ['serve', 'nbd://x', '--size', '1M'],
      2,
      /unknown backend scheme "nbd:".*\[TCMU_ERR_CLI_BACKEND_URL\]\n$/,
    ],
    [
      ['serve', 'memory:', '--frobnicate'],
      2,
      /^tcmu serve: unknown option --frobnicate \(see tcmu serve --help\)/,
    ],
    [['ls', 'extra'], 2, /^tcmu ls: unexpected argument "extra"/],
    [['rm'], 2, /^tcmu rm: missing device name/],
    [['rm', 'x', '--stale'], 2, /^tcmu rm: give device names or --stale/],
    [['demo', '--size', '1M'], 2, /too small for the demo/],
    [['volume'], 2, /^tcmu volume: missing action \(create, inspect, delete, snapshot or clone\)/],
    [
      ['volume', 'create', 'memory:', '--size', '1M'],
      2,
      /volumes are s3:\/\/ URLs.*\[TCMU_ERR_CLI_BACKEND_URL\]\n$/,
    ],
    [
      ['volume', 'inspect', 's3://disks'],
      2,
      /a volume needs its own prefix.*\[TCMU_ERR_CLI_BACKEND_URL\]\n$/,
    ],
  ])('reports bad input %j as one line, exit %d', async (argv, code, message) => {
    const { io, stderr, stdout } = captureIo();
    expect(await run(argv, io)).toBe(code);
    expect(stderr()).toMatch(message);
    expect(stderr().trimEnd().split('\n')).toHaveLength(1);
    expect(stdout()).toBe('');
  });
});

describe('serve on a host without TCMU', async () => {
  const loaded = await tcmuLoaded();
  it.skipIf(loaded)(
    'fails with one line: not root, or no TCMU with the way to the lab [skipped where TCMU is loaded]',
    async () => {
      const { io, stderr, stdout } = captureIo();
      expect(await run(['serve', 'memory:', '--size', '16M', '--log-level', 'silent'], io)).toBe(1);
      const line = stderr().trimEnd();
      expect(line.split('\n')).toHaveLength(1);
      if (process.getuid?.() === 0)
        expect(line).toMatch(/^tcmu serve: this kernel has no TCMU: .*kernel lab.*\[TCMU_ERR_CLI_NO_TCMU\]$/);
      else expect(line).toMatch(/\[TCMU_ERR_CLI_NOT_ROOT\]$/);
      expect(stdout()).toBe('');
    },
  );
});
