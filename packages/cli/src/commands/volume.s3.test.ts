// `tcmu volume …` and `serve --force-lease`'s backend opening against a real S3 server (the local Ceph
// RGW: `tools/s3/rgw start` and `eval "$(tools/s3/rgw env)"`; tools/test.sh does both).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deleteS3Volume, openS3Backend } from '@tcmu/backend-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { parseBackendLocation } from '../backend-url.js';
import { createLogger } from '../logger.js';
import { run } from '../main.js';
import { openBackend } from '../open-backend.js';
import { captureIo } from '../test-support.js';

const endpoint = process.env.TCMU_S3_ENDPOINT;
const bucket = process.env.TCMU_S3_BUCKET;
const skip =
  endpoint && bucket ? undefined : 'needs a local S3 server: tools/s3/rgw start; eval "$(tools/s3/rgw env)"';
const prefix = `cli-volume-test-${process.pid}-${Date.now()}`;
const url = `s3://${bucket}/${prefix}?endpoint=${endpoint}`;
const display = `s3://${bucket}/${prefix}`;

/** Runs the whole CLI in this process with the real environment (credentials from AWS_*). */
async function tcmu(...argv: string[]) {
  const { io, stdout, stderr } = captureIo({ env: process.env });
  const status = await run(argv, io);
  return { status, stdout: stdout(), stderr: stderr() };
}

describe.skipIf(skip !== undefined)(`tcmu volume against RGW${skip ? ` [skipped: ${skip}]` : ''}`, () => {
  afterAll(async () => {
    await deleteS3Volume({ bucket: bucket!, prefix, endpoint: endpoint!, force: true }).catch(() => {});
  });

  it('creates, inspects, refuses a second create, deletes only with --yes and counts the objects', async () => {
    const created = await tcmu('volume', 'create', url, '--size', '8M', '--chunk-size', '256K');
    expect(created).toEqual({
      status: 0,
      stdout: `created ${display}: 8 MiB, chunk size 256 KiB, block size 512\n`,
      stderr: '',
    });

    const again = await tcmu('volume', 'create', url, '--size', '8M');
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/^tcmu volume: .*\[TCMU_ERR_BACKEND_OPEN\]\n$/);

    // Write two chunks through the backend, as a server would.
    const backend = await openS3Backend({ bucket: bucket!, prefix, endpoint: endpoint! });
    await backend.write(0, [new Uint8Array(4096).fill(7)]);
    await backend.write(1024 * 1024, [new Uint8Array(512).fill(9)]);
    await backend.close();

    const inspected = await tcmu('volume', 'inspect', url, '--json');
    expect(inspected.status).toBe(0);
    expect(JSON.parse(inspected.stdout)).toMatchObject({
      volume: display,
      size: 8 * 1024 * 1024,
      chunkSize: 256 * 1024,
      blockSize: 512,
      chunksStored: 2,
      bytesStored: 2 * 256 * 1024,
      lease: null,
    });
    const text = await tcmu('volume', 'inspect', url);
    expect(text.stdout).toContain('chunks stored: 2 of 32\n');
    expect(text.stdout).toContain('writer:        none\n');

    const unconfirmed = await tcmu('volume', 'delete', url);
    expect(unconfirmed.status).toBe(1);
    expect(unconfirmed.stderr).toMatch(/not deleting .* without --yes .*\[TCMU_ERR_CLI_NOT_CONFIRMED\]\n$/);
    expect((await tcmu('volume', 'inspect', url)).status).toBe(0);

    const deleted = await tcmu('volume', 'delete', url, '--yes');
    expect(deleted.status).toBe(0);
    expect(deleted.stdout).toBe(`deleted ${display}: 3 objects\n`);
    expect(deleted.stderr).toMatch(/deleting .*: 2 chunks, 512 KiB stored, plus the volume description\n$/);

    const gone = await tcmu('volume', 'inspect', url);
    expect(gone.status).toBe(1);
    expect(gone.stderr).toMatch(/no volume there.*\[TCMU_ERR_BACKEND_NOT_FOUND\]\n$/);
  });

  it('shows a stale writer, refuses to delete it, and serve --force-lease takes the volume over', async () => {
    expect((await tcmu('volume', 'create', url, '--size', '4M')).status).toBe(0);
    // A writer that "died": its lease stays (never closed until taken over).
    const dead = await openS3Backend({ bucket: bucket!, prefix, endpoint: endpoint! });

    const inspected = JSON.parse((await tcmu('volume', 'inspect', url, '--json')).stdout);
    expect(inspected.lease).toMatchObject({ pid: process.pid });
    expect((await tcmu('volume', 'inspect', url)).stdout).toMatch(/writer: +process \d+ on .* since /);

    const refused = await tcmu('volume', 'delete', url, '--yes');
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/open read-write by process .*\[TCMU_ERR_CLI_VOLUME_IN_USE\]\n$/);

    // serve's backend opening: without --force-lease it is locked, with it the lease is taken over.
    const logger = createLogger('silent');
    const location = parseBackendLocation(url);
    const request = { backend: location, size: undefined, blockSize: 512, readOnly: false };
    await expect(openBackend(request, logger)).rejects.toMatchObject({ code: 'TCMU_ERR_BACKEND_LOCKED' });
    const taken = await openBackend({ ...request, forceLease: true }, logger);
    expect(taken.backend.size).toBe(4 * 1024 * 1024);
    const after = JSON.parse((await tcmu('volume', 'inspect', url, '--json')).stdout);
    expect(after.lease.id).not.toBe(inspected.lease.id);
    await taken.close();
    await dead.close().catch(() => {}); // the "dead" writer's handle: cleanup only (its lease is gone)

    // A lease left behind again, then deleted with --force.
    await openS3Backend({ bucket: bucket!, prefix, endpoint: endpoint! });
    const forced = await tcmu('volume', 'delete', url, '--yes', '--force', '--json');
    expect(forced.status).toBe(0);
    expect(JSON.parse(forced.stdout)).toEqual({ event: 'deleted', volume: display, objectsDeleted: 2 });
  });

  it('refuses a volume inside another, and . or .. in the URL; a secret in the URL is never printed', async () => {
    const outer = `${prefix}-s3safe-outer`;
    try {
      expect(
        (await tcmu('volume', 'create', `s3://${bucket}/${outer}?endpoint=${endpoint}`, '--size', '1M'))
          .status,
      ).toBe(0);
      const nested = await tcmu(
        'volume',
        'create',
        `s3://${bucket}/${outer}/b/c?endpoint=${endpoint}`,
        '--size',
        '1M',
      );
      expect(nested.status).toBe(1);
      expect(nested.stderr).toMatch(/inside the volume .*volumes cannot nest/);
      const dotted = await tcmu(
        'volume',
        'create',
        `s3://${bucket}/${outer}/../etc?endpoint=${endpoint}`,
        '--size',
        '1M',
      );
      expect(dotted.status).toBe(2); // a malformed URL is a usage error
      expect(dotted.stderr).toMatch(/"\.\." segment/);
      for (const secretUrl of [
        `s3://KEY:s3safe-hunter2@${bucket}/${outer}`,
        `s3://${bucket}/${outer}?endpoint=${endpoint}&secret_access_key=s3safe-hunter2`,
      ]) {
        const refused = await tcmu('volume', 'delete', secretUrl);
        expect(refused.status).not.toBe(0);
        expect(`${refused.stdout}${refused.stderr}`).not.toContain('s3safe-hunter2');
      }
    } finally {
      await deleteS3Volume({ bucket: bucket!, prefix: outer, endpoint: endpoint!, force: true }).catch(
        () => {},
      );
    }
  });

  it('snapshot, serve the snapshot read-only, clone, inspect; an encrypted compressed volume by key file', async () => {
    const base = `${prefix}-snap`;
    const volumeUrl = `s3://${bucket}/${base}?endpoint=${endpoint}`;
    const cloneUrl = `s3://${bucket}/${base}-clone?endpoint=${endpoint}`;
    const dir = mkdtempSync(join(tmpdir(), 'tcmu-cli-key-'));
    const keyFile = join(dir, 'key');
    writeFileSync(keyFile, randomBytes(32).toString('hex'));
    try {
      const created = await tcmu(
        'volume',
        'create',
        volumeUrl,
        '--size',
        '4M',
        '--compress',
        'deflate',
        '--key-file',
        keyFile,
        '--json',
      );
      expect(created.status).toBe(0);
      expect(JSON.parse(created.stdout)).toMatchObject({
        compression: 'deflate',
        encryption: 'aes-256-gcm',
        formatVersion: 2,
      });
      expect(created.stdout).not.toContain(readFileSync(keyFile, 'utf8'));

      const logger = createLogger('silent');
      const open = (text: string, readOnly: boolean) =>
        openBackend(
          { backend: parseBackendLocation(text), size: undefined, blockSize: 512, readOnly },
          logger,
        );
      // serve's path: the key comes from ?key_file= (a path, never the key).
      await expect(open(volumeUrl, false)).rejects.toMatchObject({ code: 'TCMU_ERR_BACKEND_OPEN' });
      const writer = await open(`${volumeUrl}&key_file=${keyFile}`, false);
      await writer.backend.write(0, [new Uint8Array(4096).fill(1)]);
      const snapped = await tcmu('volume', 'snapshot', volumeUrl, 'one');
      expect(snapped).toMatchObject({ status: 0, stderr: '' });
      expect(snapped.stdout).toMatch(/^snapshot s3:\/\/.*@one taken at /);
      await writer.backend.write(0, [new Uint8Array(4096).fill(2)]);
      await writer.close();

      const snapshotUrl = `s3://${bucket}/${base}@one?endpoint=${endpoint}&key_file=${keyFile}`;
      await expect(open(snapshotUrl, false)).rejects.toMatchObject({ code: 'TCMU_ERR_BACKEND_READ_ONLY' });
      const reader = await open(snapshotUrl, true);
      const out = new Uint8Array(4096);
      await reader.backend.read(0, 4096, [out]);
      expect(out.every((b) => b === 1)).toBe(true);
      await reader.close();

      const cloned = await tcmu(
        'volume',
        'clone',
        `s3://${bucket}/${base}@one?endpoint=${endpoint}`,
        cloneUrl,
      );
      expect(cloned.status).toBe(0);
      const inspected = await tcmu('volume', 'inspect', volumeUrl);
      expect(inspected.stdout).toMatch(/snapshots: +one \(.*; clones: s3:\/\/.*-clone\/\)/);
      expect(inspected.stdout).toContain('encryption:    aes-256-gcm\n');
      expect((await tcmu('volume', 'inspect', cloneUrl)).stdout).toMatch(/origin: +s3:\/\/.*@one\n/);
      const refused = await tcmu('volume', 'snapshot', volumeUrl, 'one', '--delete', '--yes');
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(/delete them first.*\[TCMU_ERR_BACKEND_LOCKED\]/);
    } finally {
      await deleteS3Volume({
        bucket: bucket!,
        prefix: `${base}-clone`,
        endpoint: endpoint!,
        force: true,
      }).catch(() => {});
      await deleteS3Volume({ bucket: bucket!, prefix: base, endpoint: endpoint!, force: true }).catch(
        () => {},
      );
    }
  });
});
