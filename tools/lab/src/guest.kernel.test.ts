// What tools/lab/run promises about the guest, checked from inside it.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { describeKernel, isInsideLab } from './index.ts';

const repo = fileURLToPath(new URL('../../..', import.meta.url)).replace(/\/$/, '');
/** Mount points by path from /proc/mounts (last one wins, as the kernel resolves them). */
function mounts(): Map<string, { type: string; options: string[] }> {
  const table = new Map<string, { type: string; options: string[] }>();
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, where, type, options] = line.split(' ');
    if (where && type && options) table.set(where, { type, options: options.split(',') });
  }
  return table;
}

describeKernel('the kernel lab guest', () => {
  it('is the lab, as root, with the target stack loaded', () => {
    expect(isInsideLab()).toBe(true);
    expect(process.getuid?.()).toBe(0);
    const modules = readFileSync('/proc/modules', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[0]);
    for (const module of [
      'configfs',
      'target_core_mod',
      'target_core_user',
      'uio',
      'tcm_loop',
      'sd_mod',
      'sg',
    ])
      expect(modules).toContain(module);
    expect(mounts().get('/sys/kernel/config')?.type).toBe('configfs');
    // Other modules load on demand (dry run: nothing is loaded).
    expect(spawnSync('modprobe', ['-n', 'iscsi_target_mod']).status).toBe(0);
  });

  it('made the persistent-reservation folders', () => {
    expect(existsSync('/etc/target/pr')).toBe(true);
    expect(existsSync('/var/target/pr')).toBe(true);
  });

  it('has a writable tmpfs /tmp and /dev/shm, /dev/fd, loopback up', () => {
    const table = mounts();
    expect(table.get('/dev/shm')?.type).toBe('tmpfs');
    if (!process.cwd().startsWith('/tmp/')) expect(table.get('/tmp')?.type).toBe('tmpfs');
    const probe = join('/tmp', `lab-${process.pid}`);
    writeFileSync(probe, 'x');
    expect(readFileSync(probe, 'utf8')).toBe('x');
    rmSync(probe);
    expect(existsSync('/dev/fd/0')).toBe(true);
    const flags = Number(readFileSync('/sys/class/net/lo/flags', 'utf8').trim());
    expect(flags & 1).toBe(1); // IFF_UP
  });

  it('shares <repo>/.results read-write at the same path and the root read-only underneath', () => {
    const results = mounts().get(join(repo, '.results'));
    expect(results?.type).toBe('9p');
    expect(results?.options).toContain('rw');
    expect(mounts().get('/')?.type).toBe('overlay');
  });
});
