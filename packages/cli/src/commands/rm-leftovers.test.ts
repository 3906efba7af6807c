import { existsSync, lstatSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeServerState } from '../state.js';
import { removeServerLeftovers } from './rm.js';

describe('removeServerLeftovers (what tcmu rm --stale cleans up after a dead server)', () => {
  const setUp = async (linkTarget: string) => {
    const folder = mkdtempSync(join(tmpdir(), 'tcmu-leftovers-'));
    const runDirectory = join(folder, 'run');
    const link = join(folder, 'links', 'db');
    await writeServerState(runDirectory, {
      name: 'db',
      pid: 99999,
      backend: 'memory:',
      size: 1024,
      blockSize: 512,
      readOnly: false,
      started: new Date().toISOString(),
      device: '/dev/sdx-gone',
      link,
      metrics: undefined,
    });
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(folder, 'links'));
    symlinkSync(linkTarget, link);
    return { folder, env: { TCMU_RUN_DIR: runDirectory }, link, state: join(runDirectory, 'db.json') };
  };

  it('removes a dangling link and the state record', async () => {
    const { env, link, state } = await setUp('/dev/sdx-gone');
    expect(await removeServerLeftovers('db', [], env)).toEqual([link]);
    expect(() => lstatSync(link)).toThrow();
    expect(existsSync(state)).toBe(false);
  });

  it('removes a link to one of the device’s disks, but leaves a link to anything else', async () => {
    const other = join(mkdtempSync(join(tmpdir(), 'tcmu-other-')), 'disk');
    writeFileSync(other, '');
    const mine = await setUp(other);
    expect(await removeServerLeftovers('db', [other], mine.env)).toEqual([mine.link]);
    const foreign = await setUp(other);
    expect(await removeServerLeftovers('db', ['/dev/sdq'], foreign.env)).toEqual([]);
    expect(lstatSync(foreign.link).isSymbolicLink()).toBe(true);
  });
});
