// The s3: backend through the CLI's opener, against a real S3 server (the local Ceph RGW that
// tools/test.sh starts: `tools/s3/rgw start` and `eval "$(tools/s3/rgw env)"`).
import { deleteS3Volume, inspectS3Volume } from '@tcmu/backend-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { parseBackendLocation } from './backend-url.js';
import { processServeDependencies, serveCommand } from './commands/serve.js';
import { createLogger } from './logger.js';
import { openBackend } from './open-backend.js';
import { captureIo } from './test-support.js';

const endpoint = process.env.TCMU_S3_ENDPOINT;
const bucket = process.env.TCMU_S3_BUCKET;
const skip =
  endpoint && bucket ? undefined : 'needs a local S3 server: tools/s3/rgw start; eval "$(tools/s3/rgw env)"';
const logger = createLogger('silent');
const prefix = `cli-test-${process.pid}-${Date.now()}`;
const url = `s3://${bucket}/${prefix}?endpoint=${endpoint}`;

describe.skipIf(skip !== undefined)(`tcmu serve's s3: backend${skip ? ` [skipped: ${skip}]` : ''}`, () => {
  afterAll(async () => {
    await deleteS3Volume({ bucket: bucket!, prefix, endpoint: endpoint! }).catch(() => {});
  });

  it('creates a volume with --size, keeps data, reopens it at its size, refuses a conflicting size', async () => {
    const location = parseBackendLocation(url);
    const created = await openBackend(
      { backend: location, size: 8 * 1024 * 1024, blockSize: 512, readOnly: false },
      logger,
    );
    expect(created.backend.size).toBe(8 * 1024 * 1024);
    expect(created.description).toBe(`S3 volume s3://${bucket}/${prefix} (created, 8 MiB)`);
    const data = new Uint8Array(4096).map((_, index) => index & 0xff);
    await created.backend.write(1024 * 1024, [data]);
    await created.close();

    const reopened = await openBackend(
      { backend: location, size: undefined, blockSize: 512, readOnly: true },
      logger,
    );
    expect(reopened.backend.size).toBe(8 * 1024 * 1024);
    const back = new Uint8Array(4096);
    await reopened.backend.read(1024 * 1024, 4096, [back]);
    expect(back).toEqual(data);
    await expect(reopened.backend.write(0, [new Uint8Array(512)])).rejects.toMatchObject({
      code: 'TCMU_ERR_BACKEND_READ_ONLY',
    });
    await reopened.close();

    await expect(
      openBackend(
        {
          backend: parseBackendLocation(`${url}&size=4M`),
          size: 8 * 1024 * 1024,
          blockSize: 512,
          readOnly: false,
        },
        logger,
      ),
    ).rejects.toMatchObject({
      code: 'TCMU_ERR_CLI_SIZE',
      message: expect.stringMatching(/disagrees with size=4194304/),
    });
  });

  it('a serve that fails after creating the volume (the name is in use) removes that volume again', async () => {
    const fresh = `${prefix}-serve-fails`;
    const failing = {
      ...processServeDependencies,
      checkBackend: async () => {},
      preflight: async () => {},
      onStopSignal: () => () => {},
      onFatalError: () => () => {},
      labRunner: async () => undefined,
      openDevice: async () => {
        throw Object.assign(
          new Error('open failed', {
            cause: Object.assign(new Error('exists'), { code: 'TCMU_ERR_ALREADY_EXISTS' }),
          }),
          {
            code: 'TCMU_ERR_CORE_OPEN',
          },
        );
      },
    };
    const { io } = captureIo();
    await expect(
      serveCommand(
        [
          `s3://${bucket}/${fresh}?endpoint=${endpoint}`,
          '--size',
          '64M',
          '-n',
          'd1',
          '--log-level',
          'silent',
        ],
        io,
        failing,
      ),
    ).rejects.toMatchObject({ code: 'TCMU_ERR_CLI_NAME_IN_USE' });
    await expect(
      inspectS3Volume({ bucket: bucket!, prefix: fresh, endpoint: endpoint! }),
    ).rejects.toMatchObject({
      code: 'TCMU_ERR_BACKEND_NOT_FOUND',
    });

    // A volume that existed before the failed start is kept.
    const existing = await openBackend(
      {
        backend: parseBackendLocation(`s3://${bucket}/${fresh}?endpoint=${endpoint}`),
        size: 1 << 20,
        blockSize: 512,
        readOnly: false,
      },
      logger,
    );
    await existing.close();
    await expect(
      serveCommand(
        [`s3://${bucket}/${fresh}?endpoint=${endpoint}`, '-n', 'd1', '--log-level', 'silent'],
        io,
        failing,
      ),
    ).rejects.toMatchObject({ code: 'TCMU_ERR_CLI_NAME_IN_USE' });
    expect(await inspectS3Volume({ bucket: bucket!, prefix: fresh, endpoint: endpoint! })).toMatchObject({
      size: 1 << 20,
      lease: null,
    });
    await deleteS3Volume({ bucket: bucket!, prefix: fresh, endpoint: endpoint! });
  });
});
