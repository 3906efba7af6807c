// The shared backend conformance suite, over the in-memory object store (every machine) and against a
// real S3 server (the local Ceph RGW, when configured).
import { runBackendConformance } from '@tcmu/backend/testing';
import { afterAll, it } from 'vitest';
import { MemoryObjectStore } from './memory-object-store.ts';
import { openS3Backend, type S3Backend } from './s3-backend.ts';
import { bucket, endpoint, removeTestVolumes, skipReason, testPrefix } from './test-support/environment.ts';

{
  // One store for all: a reopen finds what the closed backend stored, as a new process would.
  const store = new MemoryObjectStore({ maxKeys: 7 });
  let counter = 0;
  const memory = { bucket: 'in-memory', store };
  const reopen = (closed: unknown) =>
    openS3Backend({ ...memory, prefix: (closed as S3Backend).location.prefix });
  runBackendConformance({
    name: 's3 (in memory, 1 MiB chunks)',
    open: (size) => openS3Backend({ ...memory, prefix: `conformance-${counter++}/`, size }),
    reopen,
  });
  runBackendConformance({
    name: 's3 (in memory, 64 KiB chunks, 256 KiB cache)',
    open: (size) =>
      openS3Backend({
        ...memory,
        prefix: `conformance-small-${counter++}/`,
        size,
        chunkSize: 64 * 1024,
        cacheSize: 256 * 1024,
        readAhead: 128 * 1024,
      }),
    reopen,
  });
}

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
