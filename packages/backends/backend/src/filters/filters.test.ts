import { describe, expect, it } from 'vitest';
import { backendCapabilities } from '../capabilities';
import { BackendError, BackendErrorCode } from '../errors';
import { runBackendConformance } from '../testing/conformance';
import { createReferenceBackend } from '../testing/reference-backend';
import { limited } from './limited';
import { readOnly } from './read-only';
import { serialized } from './serialized';
import { withFaults } from './with-faults';
import { withReadCache } from './with-read-cache';
import { withStats } from './with-stats';
import { wrapBackend } from './wrap-backend';

// A filter that does nothing must still be a conforming backend.
runBackendConformance({
  name: 'withStats(reference)',
  open: async (size) => withStats(createReferenceBackend(size)),
});
runBackendConformance({
  name: 'serialized(reference)',
  open: async (size) => serialized(createReferenceBackend(size)),
});
runBackendConformance({
  name: 'withReadCache(reference), 4 KiB blocks, 1 MiB cache',
  open: async (size) =>
    withReadCache(createReferenceBackend(size), { blockSize: 4096, maxBytes: 1024 * 1024 }),
});
runBackendConformance({
  name: 'withReadCache(reference), defaults',
  open: async (size) => withReadCache(createReferenceBackend(size)),
});
runBackendConformance({
  name: 'withFaults(reference, [])',
  open: async (size) => withFaults(createReferenceBackend(size)),
});

const codeOf = async (promise: Promise<unknown>) =>
  promise.then(
    () => 'resolved',
    (error: BackendError) => error.code,
  );

describe('wrapBackend', () => {
  it('forwards live properties and exposes only the operations next or the layer has', async () => {
    const next = createReferenceBackend(8192, { without: ['unmap', 'compareAndWrite'] });
    const wrapped = wrapBackend(next, { blockSize: 4096 }, { omit: ['resize'] });
    const capabilities = backendCapabilities(wrapped);
    expect(capabilities.unmap).toBe(false);
    expect(capabilities.compareAndWrite).toBe(false);
    expect(capabilities.resize).toBe(false);
    expect(capabilities.flush).toBe(true);
    expect(wrapped.blockSize).toBe(4096);
    await next.resize!(16384);
    expect(wrapped.size).toBe(16384);
  });
});

describe('readOnly', () => {
  it('refuses writes with TCMU_ERR_BACKEND_READ_ONLY, drops mutating operations, keeps reads', async () => {
    const next = createReferenceBackend(8192);
    await next.write(0, [Uint8Array.of(1, 2, 3)]);
    const backend = readOnly(next);
    expect(backend.readOnly).toBe(true);
    expect(await codeOf(backend.write(0, [new Uint8Array(1)]))).toBe(BackendErrorCode.ReadOnly);
    const capabilities = backendCapabilities(backend);
    expect(capabilities).toMatchObject({
      unmap: false,
      writeZeroes: false,
      compareAndWrite: false,
      resize: false,
      getAllocation: true,
      flush: true,
      readOnly: true,
    });
    const out = new Uint8Array(3);
    await backend.read(0, 3, [out]);
    expect(out).toEqual(Uint8Array.of(1, 2, 3));
  });
});

describe('withStats', () => {
  it('counts calls, bytes, failures by code and concurrency', async () => {
    const backend = withStats(createReferenceBackend(8192));
    await Promise.all([backend.write(0, [new Uint8Array(100)]), backend.write(100, [new Uint8Array(50)])]);
    await backend.read(0, 150, [new Uint8Array(150)]);
    await backend.read(8000, 500, [new Uint8Array(500)]).catch(() => {});
    await backend.unmap!(0, 4096);
    const stats = backend.stats();
    expect(stats.operations.write).toMatchObject({ calls: 2, completed: 2, failed: 0, bytes: 150 });
    expect(stats.operations.read).toMatchObject({ calls: 2, completed: 1, failed: 1, bytes: 150 });
    expect(stats.operations.unmap).toMatchObject({ calls: 1, bytes: 4096 });
    expect(stats.errors).toEqual({ [BackendErrorCode.OutOfRange]: 1 });
    expect(stats.maxInFlight).toBe(2);
    expect(stats.inFlight).toBe(0);
    backend.resetStats();
    expect(backend.stats().operations.write.calls).toBe(0);
  });

  it('does not add capabilities next lacks', () => {
    const backend = withStats(createReferenceBackend(4096, { without: ['flush', 'unmap'] }));
    expect(backend.flush).toBeUndefined();
    expect(backend.unmap).toBeUndefined();
  });
});

describe('withFaults', () => {
  it('fails matching calls by operation, range, skip and times; others pass through', async () => {
    const backend = withFaults(createReferenceBackend(65536), [
      { operation: 'read', range: { offset: 4096, length: 512 }, error: BackendErrorCode.Read },
      { operation: 'write', skip: 1, times: 1, error: BackendErrorCode.NoSpace },
    ]);
    const buffer = [new Uint8Array(512)];
    expect(await codeOf(backend.read(0, 512, buffer))).toBe('resolved');
    expect(await codeOf(backend.read(4096 + 256, 512, buffer))).toBe(BackendErrorCode.Read);
    expect(await codeOf(backend.read(3584, 512, buffer))).toBe('resolved'); // ends where the range starts
    expect(await codeOf(backend.write(0, buffer))).toBe('resolved');
    expect(await codeOf(backend.write(0, buffer))).toBe(BackendErrorCode.NoSpace);
    expect(await codeOf(backend.write(0, buffer))).toBe('resolved');
    expect(backend.faults.triggered).toBe(2);
  });

  it('injects MISCOMPARE with an offset, custom errors, delays and after-forwarding failures', async () => {
    const next = createReferenceBackend(65536);
    const backend = withFaults(next);
    backend.faults.add({
      operation: 'compareAndWrite',
      error: BackendErrorCode.Miscompare,
      offset: 5,
      times: 1,
    });
    const caw = await backend.compareAndWrite!(0, [new Uint8Array(8)], [new Uint8Array(8)]).catch((e) => e);
    expect(caw).toBeInstanceOf(BackendError);
    expect(caw.code).toBe(BackendErrorCode.Miscompare);
    expect(caw.offset).toBe(5);

    backend.faults.add({
      operation: 'flush',
      error: () => new BackendError(BackendErrorCode.Timeout, 'slow disk'),
    });
    expect(await codeOf(backend.flush!())).toBe(BackendErrorCode.Timeout);
    backend.faults.clear();
    expect(await codeOf(backend.flush!())).toBe('resolved');

    backend.faults.add({
      operation: 'write',
      afterForwarding: true,
      error: BackendErrorCode.Write,
      times: 1,
    });
    expect(await codeOf(backend.write(0, [Uint8Array.of(42)]))).toBe(BackendErrorCode.Write);
    const out = new Uint8Array(1);
    await next.read(0, 1, [out]);
    expect(out[0]).toBe(42);

    backend.faults.add({ operation: '*', delayMilliseconds: 20, times: 1 });
    const order: string[] = [];
    const slow = backend.read(0, 1, [new Uint8Array(1)]).then(() => order.push('delayed'));
    const fast = backend.read(0, 1, [new Uint8Array(1)]).then(() => order.push('undelayed'));
    await Promise.all([slow, fast]);
    expect(order).toEqual(['undelayed', 'delayed']);
  });
});

describe('serialized', () => {
  it('keeps one call in flight at a time, in call order, and continues after a failure', async () => {
    const stats = withStats(createReferenceBackend(65536));
    const backend = serialized(stats);
    expect(backend.concurrencyLimit).toBe(1);
    const calls = Array.from({ length: 20 }, (_, i) =>
      i === 5
        ? backend.read(70000, 1, [new Uint8Array(1)])
        : backend.write(i * 100, [new Uint8Array(100).fill(i)]),
    );
    const results = await Promise.allSettled(calls);
    expect(results.filter((r) => r.status === 'rejected').length).toBe(1);
    expect(stats.stats().maxInFlight).toBe(1);
  });
});

describe('limited', () => {
  it('lets at most `limit` calls in at once, declares the limit, and refuses a limit below 1', async () => {
    const stats = withStats(createReferenceBackend(65536));
    const backend = limited(stats, 3);
    expect(backend.concurrencyLimit).toBe(3);
    await Promise.all(
      Array.from({ length: 30 }, (_, i) => backend.write(i * 100, [new Uint8Array(100).fill(i)])),
    );
    expect(stats.stats().maxInFlight).toBe(3);
    expect(() => limited(stats, 0)).toThrow(
      expect.objectContaining({ code: BackendErrorCode.InvalidArgument }) as Error,
    );
  });
});

describe('withReadCache', () => {
  it('serves repeated reads from the cache and drops blocks on every change', async () => {
    const counted = withStats(createReferenceBackend(1024 * 1024));
    const backend = withReadCache(counted, { blockSize: 4096 });
    await backend.write(0, [new Uint8Array(8192).fill(1)]);
    const out = new Uint8Array(100);
    await backend.read(4000, 100, [out]); // spans blocks 0 and 1: one fetch
    await backend.read(4000, 100, [out]);
    await backend.read(10, 10, [out.subarray(0, 10)]);
    expect(counted.stats().operations.read.calls).toBe(1);
    expect(backend.cacheStats()).toMatchObject({ hits: 3, misses: 2, blocks: 2, bytes: 8192 });
    await backend.write(4096, [Uint8Array.of(9)]);
    await backend.read(4096, 1, [out.subarray(0, 1)]);
    expect(out[0]).toBe(9);
    await backend.unmap!(0, 4096);
    await backend.read(0, 1, [out.subarray(0, 1)]);
    expect(out[0]).toBe(0);
    await backend.compareAndWrite!(0, [Uint8Array.of(0)], [Uint8Array.of(5)]);
    await backend.read(0, 1, [out.subarray(0, 1)]);
    expect(out[0]).toBe(5);
    expect(counted.stats().operations.read.calls).toBe(4);
  });

  it('never keeps a block fetched while a write to it was in flight', async () => {
    const slow = withFaults(createReferenceBackend(65536));
    const backend = withReadCache(slow, { blockSize: 4096 });
    await backend.write(0, [new Uint8Array(4096).fill(1)]);
    // The read of the old data is delayed until after the write has landed below.
    slow.faults.add({ operation: 'read', delayMilliseconds: 30, times: 1 });
    const racingRead = backend.read(0, 4096, [new Uint8Array(4096)]);
    await backend.write(0, [new Uint8Array(4096).fill(2)]);
    await racingRead;
    const out = new Uint8Array(4096);
    await backend.read(0, 4096, [out]);
    expect(out.every((b) => b === 2)).toBe(true);
  });

  it('evicts least recently used blocks beyond maxBytes', async () => {
    const backend = withReadCache(createReferenceBackend(65536), { blockSize: 4096, maxBytes: 8192 });
    const out = new Uint8Array(1);
    for (const offset of [0, 4096, 0, 8192]) await backend.read(offset, 1, [out]);
    expect(backend.cacheStats()).toMatchObject({ blocks: 2, bytes: 8192, hits: 1, misses: 3 });
    await backend.read(4096, 1, [out]); // was evicted (least recently used)
    expect(backend.cacheStats().misses).toBe(4);
  });
});
