// The writer lease over the in-memory store: expiry, renewal with If-Match, take-over rules, fencing.
// Durations are short but generous against scheduling delays; no test asserts how long anything took.
import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { leaseName } from './layout.ts';
import { isDeadLocalHolder, processStartTime } from './lease.ts';
import { MemoryObjectStore } from './memory-object-store.ts';
import { openS3Backend } from './s3-backend.ts';
import { pattern } from './test-support/environment.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const code = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: { code?: string }) => error.code,
  );

function setup(prefix: string) {
  const store = new MemoryObjectStore();
  const options = { bucket: 'in-memory', prefix, store, chunkSize: 4096, size: 64 * 4096 };
  const putLease = async (body: Record<string, unknown>) => {
    await store.put(
      `${prefix}/${leaseName}`,
      Buffer.from(JSON.stringify(body)),
      {},
      AbortSignal.timeout(1000),
    );
  };
  return { store, options, putLease };
}

describe('writer lease', () => {
  it('renews in the background: the ETag changes, a second writer is refused meanwhile', async () => {
    const { store, options } = setup('renew');
    const writer = await openS3Backend({ ...options, leaseDuration: 1500 });
    const first = await store.head(`renew/${leaseName}`, AbortSignal.timeout(1000));
    await sleep(1200); // more than two renewal periods
    const later = await store.head(`renew/${leaseName}`, AbortSignal.timeout(1000));
    expect(later!.etag).not.toBe(first!.etag);
    const lease = JSON.parse(
      Buffer.from((await store.get(`renew/${leaseName}`, AbortSignal.timeout(1000)))!.body).toString(),
    );
    expect(lease).toMatchObject({ pid: process.pid, host: hostname(), duration: 1500 });
    expect(lease.serial).toBeGreaterThan(0);
    const second = await openS3Backend({ ...options, leaseDuration: 1500 }).catch((e: Error) => e);
    expect(second).toMatchObject({ code: 'TCMU_ERR_BACKEND_LOCKED' });
    expect((second as Error).message).toMatch(/--force-lease/);
    expect((second as Error).message).not.toMatch(/--force\b(?!-lease)/);
    await writer.write(0, [pattern(1, 4096)]);
    await writer.close();
    expect(await store.head(`renew/${leaseName}`, AbortSignal.timeout(1000))).toBeNull();
  });

  it('another host takes an expired lease without force, after watching it unchanged', async () => {
    const { store, options, putLease } = setup('expired');
    const old = new Date(Date.now() - 60_000).toISOString();
    await putLease({
      id: 'x',
      host: 'elsewhere.example',
      pid: 4242,
      since: old,
      renewed: old,
      duration: 1000,
    });
    const events: string[] = [];
    const taker = await openS3Backend({
      ...options,
      leaseDuration: 1000,
      onLeaseEvent: (e) => events.push(e.kind),
    });
    expect(events).toEqual(['waiting-for-expiry', 'taken-over']);
    await taker.write(0, [pattern(2, 4096)]);
    await taker.close();
    expect(store.keys()).not.toContain(`expired/${leaseName}`);
  });

  it('a fresh lease of another host is refused at once; one renewed while watched is refused after the watch', async () => {
    const { options, putLease } = setup('fresh');
    const now = new Date().toISOString();
    await putLease({
      id: 'x',
      host: 'elsewhere.example',
      pid: 4242,
      since: now,
      renewed: now,
      duration: 60_000,
    });
    const failure = await openS3Backend(options).catch((e: Error) => e);
    expect(failure).toMatchObject({ code: 'TCMU_ERR_BACKEND_LOCKED' });
    expect((failure as Error).message).toMatch(/process 4242 on elsewhere\.example .*renewed \d+ s ago/);

    const old = new Date(Date.now() - 60_000).toISOString();
    await putLease({
      id: 'y',
      host: 'elsewhere.example',
      pid: 4243,
      since: old,
      renewed: old,
      duration: 1000,
    });
    const watching = openS3Backend({ ...options, leaseDuration: 1000 }).catch((e: Error) => e);
    await sleep(300);
    await putLease({
      id: 'y',
      host: 'elsewhere.example',
      pid: 4243,
      since: old,
      renewed: new Date().toISOString(),
      duration: 1000,
      serial: 1,
    });
    expect(await watching).toMatchObject({
      code: 'TCMU_ERR_BACKEND_LOCKED',
      message: expect.stringMatching(/renewed while we waited/),
    });
  });

  it('a lease of a dead process of this host is taken without force; of a live one it is not', async () => {
    const { options, putLease } = setup('dead');
    const now = new Date().toISOString();
    const boot = (await import('node:fs')).readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const live = {
      id: 'l',
      host: hostname(),
      pid: process.pid,
      since: now,
      renewed: now,
      duration: 60_000,
      bootId: boot,
      processStart: processStartTime(process.pid),
    };
    expect(isDeadLocalHolder(live)).toBe(false);
    await putLease(live);
    expect(await code(openS3Backend(options))).toBe('TCMU_ERR_BACKEND_LOCKED');
    // The same pid started at another time: a reused pid, the holder is gone.
    const reused = { ...live, processStart: (live.processStart ?? 0) + 1 };
    expect(isDeadLocalHolder(reused)).toBe(true);
    // A pid that does not exist.
    const gone = { ...live, pid: 2 ** 22 + 17 };
    expect(isDeadLocalHolder(gone)).toBe(true);
    await putLease(gone);
    const taker = await openS3Backend(options);
    await taker.close();
    // Another boot of this host name (or another machine with the same name): only time tells.
    expect(isDeadLocalHolder({ ...gone, bootId: 'another-boot' })).toBe(false);
  });

  it('a writer whose lease is taken over stops acknowledging writes and flushes; the taker keeps its data', async () => {
    const { options } = setup('fence');
    const old = await openS3Backend({ ...options, leaseDuration: 1500, writeBackDelay: 60_000 });
    await old.write(0, [pattern(70, 4096)]);
    await old.flush();
    const taker = await openS3Backend({ ...options, leaseDuration: 1500, force: true });
    await taker.write(0, [pattern(71, 4096)]);
    await taker.flush();
    await sleep(1200); // the old writer's renewal fails with 412
    expect(await code(old.write(0, [pattern(72, 4096)]))).toBe('TCMU_ERR_BACKEND_LOCKED');
    expect(await code(old.flush())).toBe('TCMU_ERR_BACKEND_LOCKED');
    expect(await code(old.close())).toBe('TCMU_ERR_BACKEND_LOCKED');
    const out = new Uint8Array(4096);
    await taker.read(0, 4096, [out]);
    expect(Buffer.from(out).equals(Buffer.from(pattern(71, 4096)))).toBe(true);
    await taker.close();
  });

  it('a forced take-over is noticed at the next flush, before anything is uploaded', async () => {
    const { store, options } = setup('flush');
    const old = await openS3Backend({ ...options, leaseDuration: 60_000, writeBackDelay: 60_000 });
    const taker = await openS3Backend({ ...options, leaseDuration: 60_000, force: true });
    await taker.write(0, [pattern(81, 4096)]);
    await taker.flush();
    await sleep(1100); // the flush-time check runs at most once a second
    await old.write(0, [pattern(82, 4096)]); // cached: write-back is slow here
    expect(await code(old.flush())).toBe('TCMU_ERR_BACKEND_LOCKED');
    await old.close().catch(() => {});
    const out = new Uint8Array(4096);
    await taker.read(0, 4096, [out]);
    expect(Buffer.from(out).equals(Buffer.from(pattern(81, 4096)))).toBe(true);
    await taker.close();
    expect(store.keys().filter((k) => k.endsWith(leaseName))).toEqual([]);
  });

  it('a writer that cannot renew stops before its lease ends (BUSY), and resumes when a renewal succeeds', async () => {
    const { store, options } = setup('lapse');
    const events: string[] = [];
    const writer = await openS3Backend({
      ...options,
      leaseDuration: 1000,
      onLeaseEvent: (e) => events.push(e.kind),
      retry: { totalTimeout: 200, attemptTimeout: 100 },
    });
    store.setFailureHook((request) => (request.operation === 'PUT' ? 'slow-down' : undefined));
    await sleep(1100); // past the lease: every renewal failed
    expect(await code(writer.write(0, [pattern(3, 4096)]))).toBe('TCMU_ERR_BACKEND_BUSY');
    expect(await code(writer.flush())).toBe('TCMU_ERR_BACKEND_BUSY');
    expect(events).toContain('lapsed');
    store.setFailureHook(undefined);
    await sleep(700); // a renewal gets through; nobody took the lease, so it is still ours
    await writer.write(0, [pattern(3, 4096)]);
    await writer.flush();
    expect(events).toContain('renewed-after-lapse');
    await writer.close();
  });

  it('rejects a lease duration below the minimum', async () => {
    const { options } = setup('short');
    expect(await code(openS3Backend({ ...options, leaseDuration: 10 }))).toBe(
      'TCMU_ERR_BACKEND_INVALID_ARGUMENT',
    );
  });
});
