// The shared backend conformance suite, against a real S3 server (the local Ceph RGW).
import { runBackendConformance } from '@tcmu/backend/testing';
import { afterAll, it } from 'vitest';
import { openS3Backend, type S3Backend } from './s3-backend.ts';
import { bucket, endpoint, removeTestVolumes, skipReason, testPrefix } from './test-support/environment.ts';

if (!endpoint) {
  it.skip(`backend conformance: s3 (skipped: ${skipReason})`, () => {});
} else {
  afterAll(removeTestVolumes);
  const reopen = (closed: unknown) =>
    openS3Backend({ bucket, endpoint, prefix: (closed as S3Backend).location.prefix });

  // The default geometry: 1 MiB chunks, 64 MiB cache.
  runBackendConformance({
    name: 's3 (RGW, 1 MiB chunks)',
    open: (size) => openS3Backend({ bucket, endpoint, prefix: testPrefix('conformance'), size }),
    reopen,
  });

  // Small chunks and a cache of 4 chunks: every large call crosses many chunks, evicts, and hits the dirty limit.
  runBackendConformance({
    name: 's3 (RGW, 64 KiB chunks, 256 KiB cache)',
    open: (size) =>
      openS3Backend({
        bucket,
        endpoint,
        prefix: testPrefix('conformance-small'),
        size,
        chunkSize: 64 * 1024,
        cacheSize: 256 * 1024,
        readAhead: 128 * 1024,
      }),
    reopen,
  });
}
