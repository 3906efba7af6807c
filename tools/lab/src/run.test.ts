// Boots the lab once from the host and checks the contract of tools/lab/run end to end: exit code,
// stdout and stderr kept apart, cwd, environment, the results share. Skips where the lab cannot boot.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isInsideLab } from './index.ts';

const run = fileURLToPath(new URL('../run', import.meta.url));
const repo = fileURLToPath(new URL('../../..', import.meta.url)).replace(/\/$/, '');
const cache = process.env.TCMU_LAB_CACHE ?? '/var/cache/tcmu-lab';

function skipReason(): string | undefined {
  if (isInsideLab()) return 'already inside the lab (no QEMU inside QEMU)';
  if (!existsSync('/usr/share/qemu/qboot.rom')) return 'QEMU is not installed: run tools/lab/setup';
  if (!existsSync(join(cache, 'kernel-package')))
    return `the lab is not set up in ${cache}: run tools/lab/setup`;
  return undefined;
}
const reason = skipReason();

describe.skipIf(reason !== undefined)(
  `tools/lab/run boots and runs a command${reason ? ` [skipped: ${reason}]` : ''}`,
  () => {
    it('returns the exit code, keeps stdout and stderr apart, passes arguments verbatim, runs in the cwd, writes through to .results', () => {
      const marker = join(repo, '.results', `lab-run-test-${process.pid}`);
      rmSync(marker, { force: true });
      const script = [
        'echo "out $TCMU_LAB $(pwd) $GREETING $TCMU_LAB_PASS"',
        'echo err >&2',
        'id -u',
        'printf "%s|" "$@"; echo',
        `echo written > ${marker}`,
        'exit 7',
      ].join('; ');
      const result = spawnSync(
        run,
        ['--', 'env', 'GREETING=hello', 'sh', '-c', script, 'sh', "it's", '$HOME', 'a  b'],
        {
          cwd: join(repo, 'tools', 'lab'),
          encoding: 'utf8',
          env: { ...process.env, TCMU_LAB_PASS: 'through', TCMU_LAB_TIMEOUT: '600' },
        },
      );
      try {
        expect(result.stderr).toContain('err');
        expect(result.stdout).toBe(
          `out 1 ${join(repo, 'tools', 'lab')} hello through\n0\nit's|$HOME|a  b|\n`,
        );
        expect(result.status).toBe(7);
        expect(readFileSync(marker, 'utf8')).toBe('written\n');
      } finally {
        rmSync(marker, { force: true });
      }
    }, 900_000);
  },
);
