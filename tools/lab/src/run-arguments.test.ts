// The argument checks of tools/lab/run happen before anything boots, so they run on the host.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const run = fileURLToPath(new URL('../run', import.meta.url));
const lab = (...args: string[]) => spawnSync(run, args, { encoding: 'utf8', env: { ...process.env } });

describe('tools/lab/run arguments', () => {
  it('prints its usage with --help and exits 0', () => {
    const result = lab('--help');
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('tools/lab/run [--timeout SECONDS] [--memory MB]');
    expect(result.stdout).toContain('124');
    expect(result.stdout).toContain('--fresh-reads');
    expect(result.stdout).not.toMatch(/^set -|pipefail/m);
  });

  it.each([
    [['--timeout', 'soon', 'true'], /--timeout needs a positive whole number, got 'soon'/],
    [['--timeout=0', 'true'], /--timeout needs a positive whole number, got '0'/],
    [['--memory', '-5', 'true'], /--memory needs a positive whole number, got '-5'/],
    [['--memory', '128', 'true'], /--memory must be at least 256/],
    [['--cpus'], /--cpus needs a value/],
    [['--frobnicate', 'true'], /unknown option '--frobnicate'/],
    [[], /no command given/],
    [['--'], /no command given/],
  ])('rejects %j with exit 2 and a clear message', (args, message) => {
    const result = lab(...args);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toContain('(try --help)');
    expect(result.stdout).toBe('');
  });

  it('rejects a bad TCMU_LAB_TIMEOUT from the environment', () => {
    const result = spawnSync(run, ['true'], {
      encoding: 'utf8',
      env: { ...process.env, TCMU_LAB_TIMEOUT: 'never' },
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/TCMU_LAB_TIMEOUT must be a positive whole number/);
  });
});
