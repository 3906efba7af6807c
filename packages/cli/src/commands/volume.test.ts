import type { S3VolumeInfo } from '@tcmu/backend-s3';
import { describe, expect, it } from 'vitest';
import { captureIo, expectCliError } from '../test-support.js';
import { formatVolumeInfo, parseVolumeArguments, type VolumeDependencies, volumeCommand } from './volume.js';

const url = 's3://disks/vol-1?endpoint=http://127.0.0.1:7480';
const volume = { url, display: 's3://disks/vol-1' };

const options = (...argv: string[]) => {
  const parsed = parseVolumeArguments(argv);
  if (parsed.help !== undefined) throw new Error('unexpected help');
  return parsed.options;
};

describe('parseVolumeArguments', () => {
  it('reads create with every option', () => {
    expect(options('create', url, '--size', '1G', '--chunk-size', '4M', '-b', '4096', '--json')).toEqual({
      action: 'create',
      volume,
      size: 1024 ** 3,
      chunkSize: 4 * 1024 ** 2,
      blockSize: 4096,
      json: true,
    });
  });

  it('leaves create sizes to the URL when not given', () => {
    expect(options('create', `${url}&size=1G`)).toEqual({
      action: 'create',
      volume: { url: `${url}&size=1G`, display: 's3://disks/vol-1' },
      size: undefined,
      chunkSize: undefined,
      blockSize: 512,
      json: false,
    });
  });

  it('reads inspect and delete', () => {
    expect(options('inspect', url)).toEqual({ action: 'inspect', volume, json: false });
    expect(options('inspect', '--json', url)).toEqual({ action: 'inspect', volume, json: true });
    expect(options('delete', url)).toEqual({
      action: 'delete',
      volume,
      yes: false,
      force: false,
      json: false,
    });
    expect(options('delete', url, '-y', '--force')).toEqual({
      action: 'delete',
      volume,
      yes: true,
      force: true,
      json: false,
    });
  });

  it('returns the help of volume and of each action', () => {
    expect(parseVolumeArguments(['--help']).help).toMatch(/^Usage: tcmu volume create/);
    expect(parseVolumeArguments(['create', '--help']).help).toMatch(
      /^Usage: tcmu volume create <url> --size N/,
    );
    expect(parseVolumeArguments(['inspect', url, '-h']).help).toMatch(/^Usage: tcmu volume inspect/);
    expect(parseVolumeArguments(['delete', '--help']).help).toMatch(/^Usage: tcmu volume delete <url> --yes/);
  });

  it.each([
    [[], 'TCMU_ERR_CLI_USAGE', /missing action/],
    [['destroy', url], 'TCMU_ERR_CLI_USAGE', /unknown action "destroy"/],
    [['create'], 'TCMU_ERR_CLI_USAGE', /missing volume URL/],
    [['inspect', url, url], 'TCMU_ERR_CLI_USAGE', /unexpected argument/],
    [['create', url, '--size', '12X'], 'TCMU_ERR_CLI_SIZE', /invalid size "12X"/],
    [['create', url, '--size', '1000'], 'TCMU_ERR_CLI_BLOCK_SIZE', /not a whole number of 512-byte/],
    [['create', url, '--size', '1M', '--chunk-size', '0'], 'TCMU_ERR_CLI_SIZE', /invalid size "0"/],
    [['create', url, '--size', '1M', '-b', '1024'], 'TCMU_ERR_CLI_BLOCK_SIZE', /use 512 or 4096/],
    [['create', 'file:/x.img', '--size', '1M'], 'TCMU_ERR_CLI_BACKEND_URL', /volumes are s3:\/\/ URLs/],
    [['inspect', 's3://disks'], 'TCMU_ERR_CLI_BACKEND_URL', /needs its own prefix/],
    [['inspect', 's3://key:secret@disks/v'], 'TCMU_ERR_CLI_BACKEND_URL', /AWS_ACCESS_KEY_ID/],
    [['inspect', url, '--access-key', 'x'], 'TCMU_ERR_CLI_USAGE', /^unknown option --access-key$/],
    [['delete', url, '--yes=no'], 'TCMU_ERR_CLI_USAGE', /yes/],
    [['inspect', url, '--size', '1G'], 'TCMU_ERR_CLI_USAGE', /^unknown option --size$/],
  ])('rejects %j with %s', (argv, code, message) => {
    expectCliError(() => parseVolumeArguments(argv), code, message);
  });
});

function info(overrides: Partial<S3VolumeInfo> = {}): S3VolumeInfo {
  return {
    bucket: 'disks',
    prefix: 'vol-1/',
    size: 64 * 1024 ** 2,
    chunkSize: 1024 ** 2,
    blockSize: 512,
    formatVersion: 1,
    created: '2026-11-24T23:00:00.000Z',
    chunksStored: 3,
    bytesStored: 3 * 1024 ** 2,
    lease: null,
    compression: 'none',
    encryption: 'none',
    generation: 0,
    snapshots: [],
    origin: null,
    ...overrides,
  };
}

const lease = { id: 'abc', host: 'node-7', pid: 4321, since: '2026-11-24T23:10:00.000Z' };

/** Records calls; answers with what the test set. */
function fakeVolumes(state: { info?: S3VolumeInfo; error?: Error } = {}) {
  const calls: unknown[][] = [];
  const dependencies: VolumeDependencies = {
    async create(target, geometry) {
      calls.push(['create', target, geometry]);
      return info({
        size: geometry.size ?? 0,
        chunkSize: geometry.chunkSize ?? 1024 ** 2,
        chunksStored: 0,
        bytesStored: 0,
      });
    },
    async inspect(target) {
      calls.push(['inspect', target]);
      if (state.error) throw state.error;
      return state.info ?? info();
    },
    async delete(target, force) {
      calls.push(['delete', target, force]);
      return { objectsDeleted: 5 };
    },
    async snapshot(target, name, timeoutMs) {
      calls.push(['snapshot', target, name, timeoutMs]);
      return { name, generation: 0, created: '2026-11-25T00:00:00.000Z' };
    },
    async deleteSnapshot(target, name) {
      calls.push(['deleteSnapshot', target, name]);
      return { objectsDeleted: 2 };
    },
    async clone(target, targetUrl) {
      calls.push(['clone', target, targetUrl]);
      return info({ prefix: 'new/', origin: 's3://disks/vol-1@s1', chunksStored: 0, bytesStored: 0 });
    },
  };
  return { dependencies, calls };
}

describe('volumeCommand', () => {
  it('creates with the given geometry and says so', async () => {
    const fake = fakeVolumes();
    const { io, stdout } = captureIo();
    expect(
      await volumeCommand(['create', url, '--size', '64M', '--chunk-size', '256K'], io, fake.dependencies),
    ).toBe(0);
    expect(fake.calls).toEqual([
      ['create', url, { size: 64 * 1024 ** 2, chunkSize: 256 * 1024, blockSize: 512 }],
    ]);
    expect(stdout()).toBe('created s3://disks/vol-1: 64 MiB, chunk size 256 KiB, block size 512\n');
  });

  it('inspects as text and as JSON', async () => {
    const fake = fakeVolumes({ info: info({ lease }) });
    const text = captureIo();
    expect(await volumeCommand(['inspect', url], text.io, fake.dependencies)).toBe(0);
    expect(text.stdout()).toBe(formatVolumeInfo('s3://disks/vol-1', info({ lease })));
    expect(text.stdout()).toContain('chunks stored: 3 of 64\n');
    expect(text.stdout()).toContain(
      'writer:        process 4321 on node-7 since 2026-11-24T23:10:00.000Z (lease abc)\n',
    );
    const json = captureIo();
    expect(await volumeCommand(['inspect', url, '--json'], json.io, fake.dependencies)).toBe(0);
    expect(JSON.parse(json.stdout())).toMatchObject({ volume: 's3://disks/vol-1', chunksStored: 3, lease });
  });

  it('refuses to delete without --yes, deleting nothing', async () => {
    const fake = fakeVolumes();
    const { io } = captureIo();
    await expect(volumeCommand(['delete', url], io, fake.dependencies)).rejects.toMatchObject({
      code: 'TCMU_ERR_CLI_NOT_CONFIRMED',
      message:
        'not deleting s3://disks/vol-1 (3 chunks, 3 MiB stored, plus the volume description) without --yes',
    });
    expect(fake.calls.filter(([name]) => name === 'delete')).toEqual([]);
  });

  it('refuses to delete while a writer holds the lease, even with --yes; --force deletes', async () => {
    const fake = fakeVolumes({ info: info({ lease }) });
    await expect(
      volumeCommand(['delete', url, '--yes'], captureIo().io, fake.dependencies),
    ).rejects.toMatchObject({
      code: 'TCMU_ERR_CLI_VOLUME_IN_USE',
      message: expect.stringMatching(/open read-write by process 4321 on node-7/),
    });
    expect(fake.calls.filter(([name]) => name === 'delete')).toEqual([]);
    const { io, stdout, stderr } = captureIo();
    expect(await volumeCommand(['delete', url, '--yes', '--force'], io, fake.dependencies)).toBe(0);
    expect(fake.calls.at(-1)).toEqual(['delete', url, true]);
    expect(stderr()).toMatch(
      /deleting s3:\/\/disks\/vol-1: 3 chunks, 3 MiB stored, plus the volume description and the lease/,
    );
    expect(stdout()).toBe('deleted s3://disks/vol-1: 5 objects\n');
  });

  it('passes a missing volume on, unless --force (then whatever is under the prefix goes)', async () => {
    const missing = Object.assign(new Error('s3://disks/vol-1/: no volume there'), {
      code: 'TCMU_ERR_BACKEND_NOT_FOUND',
    });
    const fake = fakeVolumes({ error: missing });
    await expect(volumeCommand(['delete', url, '--yes'], captureIo().io, fake.dependencies)).rejects.toBe(
      missing,
    );
    const { io, stdout } = captureIo();
    expect(await volumeCommand(['delete', url, '--yes', '--force', '--json'], io, fake.dependencies)).toBe(0);
    expect(JSON.parse(stdout())).toEqual({ event: 'deleted', volume: 's3://disks/vol-1', objectsDeleted: 5 });
  });
});

describe('volume snapshot and clone', () => {
  it('takes, deletes (only with --yes) and clones snapshots through the library', async () => {
    const fake = fakeVolumes();
    const { io, stdout } = captureIo();
    expect(await volumeCommand(['snapshot', url, 's1', '--timeout', '5'], io, fake.dependencies)).toBe(0);
    await expect(
      volumeCommand(['snapshot', url, 's1', '--delete'], io, fake.dependencies),
    ).rejects.toMatchObject({
      code: 'TCMU_ERR_CLI_NOT_CONFIRMED',
      message: expect.stringMatching(/without --yes/),
    });
    expect(await volumeCommand(['snapshot', url, 's1', '--delete', '--yes'], io, fake.dependencies)).toBe(0);
    const source = 's3://disks/vol-1@s1?endpoint=http://127.0.0.1:7480';
    const target = 's3://disks/new?endpoint=http://127.0.0.1:7480';
    expect(await volumeCommand(['clone', source, target], io, fake.dependencies)).toBe(0);
    expect(fake.calls).toEqual([
      ['snapshot', url, 's1', 5000],
      ['deleteSnapshot', url, 's1'],
      ['clone', source, target],
    ]);
    expect(stdout()).toBe(
      'snapshot s3://disks/vol-1@s1 taken at 2026-11-25T00:00:00.000Z\n' +
        'deleted snapshot s3://disks/vol-1@s1: 2 objects no longer needed\n' +
        'cloned s3://disks/vol-1@s1 to s3://disks/new (copy-on-write: nothing copied)\n',
    );
  });

  it.each([
    [['snapshot', url], /volume URL and the snapshot name/],
    [['snapshot', url, 's', '--timeout', '0'], /invalid --timeout/],
    [['clone', url, 's3://disks/new'], /names no snapshot/],
    [['clone', 's3://disks/v@s'], /snapshot and the new volume/],
    [['create', url, '--size', '1M', '--compress', 'zstd'], /invalid --compress/],
    [['create', url, '--size', '1M', '--key-file', 'k', '--key-env', 'K'], /not both/],
  ])('rejects %j', (argv, message) => {
    expectCliError(() => parseVolumeArguments(argv), 'TCMU_ERR_CLI_USAGE', message);
  });

  it('inspect shows compression, encryption, origin and snapshots', () => {
    const text = formatVolumeInfo(
      's3://disks/vol-1',
      info({
        compression: 'deflate',
        encryption: 'aes-256-gcm',
        snapshots: [{ name: 's1', generation: 0, created: 'T', clones: ['s3://disks/new/'] }],
      }),
    );
    expect(text).toContain('compression:   deflate\n');
    expect(text).toContain('encryption:    aes-256-gcm\n');
    expect(text).toContain('origin:        none\n');
    expect(text).toContain('snapshots:     s1 (T; clones: s3://disks/new/)\n');
  });
});
