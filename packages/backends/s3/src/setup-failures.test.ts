// Opening fails fast on what waiting will not heal, reports every retry, and stops at once when
// cancelled; once serving, a refused connection is waited for (a restarting server).
import { describe, expect, it, onTestFinished } from 'vitest';
import { MemoryObjectStore } from './memory-object-store.ts';
import { openS3Backend } from './s3-backend.ts';
import { bucket, endpoint, pattern, skipReason } from './test-support/environment.ts';

const memory = (store: MemoryObjectStore, prefix: string) => ({
  bucket: 'in-memory',
  prefix,
  store,
  size: 1 << 20,
  chunkSize: 64 << 10,
});

describe('opening', () => {
  it('fails at once, with advice, when the server refuses connections (no retry)', async () => {
    const store = new MemoryObjectStore({ fail: () => 'refused' });
    const retries: number[] = [];
    const failure = await openS3Backend({
      ...memory(store, 'refused'),
      onRetry: (r) => retries.push(r.retry),
    }).catch((e: Error) => e);
    expect(failure).toMatchObject({ code: 'TCMU_ERR_BACKEND_OPEN' });
    expect(store.requests).toBe(1);
    expect(retries).toEqual([]);
  });

  it('fails at once on an endpoint that does not resolve or does not listen, with advice', async () => {
    // Any credentials: the request must get as far as the network.
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID ??= 'S3SAFETESTKEY';
    process.env.AWS_SECRET_ACCESS_KEY ??= 'not-a-secret';
    onTestFinished(() => {
      if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
      if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
    });
    const unresolvable = await openS3Backend({
      bucket: 'tcmu-test',
      prefix: 'x',
      endpoint: 'http://s3safe-no-such-host.invalid:7480',
      size: 1 << 20,
    }).catch((e: Error) => e);
    expect((unresolvable as Error).message).toMatch(/ENOTFOUND.*does not resolve/);
    const refused = await openS3Backend({
      bucket: 'tcmu-test',
      prefix: 'x',
      endpoint: 'http://127.0.0.1:9',
      size: 1 << 20,
    }).catch((e: Error) => e);
    expect((refused as Error).message).toMatch(/ECONNREFUSED.*nothing listens/);
  });

  it('reports each retry of a transient failure', async () => {
    const store = new MemoryObjectStore();
    store.failRequests([1, 2], 'slow-down');
    const retries: { retry: number; error: string; operation?: string }[] = [];
    const backend = await openS3Backend({ ...memory(store, 'retry'), onRetry: (r) => retries.push(r) });
    await backend.close();
    expect(retries.map((r) => r.retry)).toEqual([1, 2]);
    expect(retries[0]!.error).toMatch(/503 SlowDown/);
    expect(retries[0]!.operation).toMatch(/^s3:\/\/in-memory\/retry\/: /);
  });

  it('stops at once when its signal fires, even with a long retry budget', async () => {
    const store = new MemoryObjectStore({ fail: () => 'timeout' });
    const controller = new AbortController();
    const opening = openS3Backend({
      ...memory(store, 'abort'),
      signal: controller.signal,
      retry: { totalTimeout: 3_600_000, attemptTimeout: 3_600_000 },
    }).catch((e: Error) => e);
    await new Promise((resolve) => setTimeout(resolve, 50));
    controller.abort(new Error('stopped by SIGINT'));
    const failure = await opening;
    expect((failure as Error).message).toMatch(/cancelled: stopped by SIGINT/);
    expect(store.keys()).toEqual([]);
  });
});

describe('opening against RGW with the wrong secret', () => {
  it.skipIf(!endpoint)(
    `fails at once with advice and without the secret${endpoint ? '' : ` (skipped: ${skipReason})`}`,
    async () => {
      const saved = process.env.AWS_SECRET_ACCESS_KEY;
      process.env.AWS_SECRET_ACCESS_KEY = 's3safe-wrong-secret-value';
      onTestFinished(() => {
        process.env.AWS_SECRET_ACCESS_KEY = saved;
      });
      const retries: number[] = [];
      const failure = await openS3Backend({
        bucket,
        endpoint: endpoint!,
        prefix: 's3safe-denied/',
        size: 1 << 20,
        onRetry: (r) => retries.push(r.retry),
      }).catch((e: Error) => e);
      expect(failure).toMatchObject({ code: 'TCMU_ERR_BACKEND_PERMISSION' });
      expect((failure as Error).message).toMatch(/SignatureDoesNotMatch.*check the credentials/);
      expect((failure as Error).message).not.toContain('s3safe-wrong-secret-value');
      expect(retries).toEqual([]);
    },
  );
});

describe('serving', () => {
  it('waits out a refused connection (a restarting server) instead of failing', async () => {
    const store = new MemoryObjectStore();
    const backend = await openS3Backend({ ...memory(store, 'serving'), writeBackDelay: 0 });
    store.failRequests([1, 2, 3], 'refused');
    await backend.write(0, [pattern(5, 4096)]);
    await backend.flush();
    expect(store.injected).toBeGreaterThan(0);
    await backend.close();
  });
});
