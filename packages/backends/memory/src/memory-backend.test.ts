import { BackendErrorCode, backendCapabilities, withReadCache } from '@tcmu/backend';
import { patternBytes, runBackendConformance } from '@tcmu/backend/testing';
import { describe, expect, it } from 'vitest';
import { openMemoryBackend } from './memory-backend';

runBackendConformance({ name: 'memory', open: (size) => openMemoryBackend({ size }) });
runBackendConformance({
  name: 'memory, 64 KiB pages',
  open: (size) => openMemoryBackend({ size, pageSize: 65536 }),
});

runBackendConformance({
  name: 'withReadCache(memory)',
  open: async (size) => withReadCache(await openMemoryBackend({ size }), { blockSize: 16384 }),
});

const codeOf = (promise: Promise<unknown>) =>
  promise.then(
    () => 'resolved',
    (error: { code: string }) => error.code,
  );

describe('memory backend', () => {
  it('implements every optional capability and is not persistent', async () => {
    const backend = await openMemoryBackend({ size: 1 << 20 });
    expect(backendCapabilities(backend)).toEqual({
      flush: true,
      unmap: true,
      writeZeroes: true,
      compareAndWrite: true,
      getAllocation: true,
      resize: true,
      close: true,
      readOnly: false,
      persistent: false,
      // Its data lives in this process: nothing survives a crash (it is never taken over anyway).
      writesSurviveCrash: false,
    });
  });

  it('serves a 4 TiB disk holding only the pages written', async () => {
    const tebibyte = 1024 ** 4;
    const backend = await openMemoryBackend({ size: 4 * tebibyte });
    const data = patternBytes(1, 3 * 4096);
    const offset = 4 * tebibyte - data.byteLength;
    await backend.write(offset, [data]);
    await backend.write(tebibyte + 10, [Uint8Array.of(1)]);
    expect(backend.allocatedPages).toBe(4);
    const out = new Uint8Array(data.byteLength);
    await backend.read(offset, out.byteLength, [out]);
    expect(out).toEqual(data);
    const extents = await backend.getAllocation(0, backend.size);
    expect(extents).toEqual([
      { offset: 0, length: tebibyte, state: 'deallocated' },
      { offset: tebibyte, length: 4096, state: 'mapped' },
      { offset: tebibyte + 4096, length: offset - tebibyte - 4096, state: 'deallocated' },
      { offset, length: data.byteLength, state: 'mapped' },
    ]);
    await backend.unmap(0, backend.size);
    expect(backend.allocatedPages).toBe(0);
    expect(process.memoryUsage().rss).toBeLessThan(2 * 1024 ** 3);
  });

  it('allocates on non-zero writes only and frees pages that become all zeros', async () => {
    const backend = await openMemoryBackend({ size: 1 << 20 });
    await backend.write(0, [new Uint8Array(8192)]);
    expect(backend.allocatedPages).toBe(0);
    await backend.write(100, [Uint8Array.of(7)]);
    expect(backend.allocatedPages).toBe(1);
    await backend.write(100, [Uint8Array.of(0)]);
    expect(backend.allocatedPages).toBe(0);
    await backend.write(4096, [patternBytes(2, 8192)]);
    expect(backend.allocatedPages).toBe(2);
    await backend.writeZeroes(4096, 4096);
    expect(backend.allocatedPages).toBe(1);
    await backend.unmap(8192, 100);
    expect(backend.allocatedPages).toBe(1);
    await backend.unmap(8292, 4096 - 100);
    expect(backend.allocatedPages).toBe(0);
  });

  it('frees and allocates pages among kept ones without mixing their bytes', async () => {
    const backend = await openMemoryBackend({ size: 64 << 20 });
    const page = 4096;
    const full = new Uint8Array(page).fill(0xa5);
    // Fill 128 pages, free every other one, then allocate new pages elsewhere: they must read as
    // zeros except what was written.
    for (let i = 0; i < 128; i++) await backend.write(i * page, [full]);
    for (let i = 0; i < 128; i += 2) await backend.unmap(i * page, page);
    expect(backend.allocatedPages).toBe(64);
    for (let i = 0; i < 64; i++) await backend.write((4096 + i) * page + 100, [new Uint8Array([i + 1])]);
    expect(backend.allocatedPages).toBe(128);
    for (let i = 0; i < 64; i++) {
      const into = new Uint8Array(page);
      await backend.read((4096 + i) * page, page, [into]);
      const expected = new Uint8Array(page);
      expected[100] = i + 1;
      expect(Buffer.compare(into, expected)).toBe(0);
    }
    // The pages kept through all this still hold their data.
    for (let i = 1; i < 128; i += 2) {
      const into = new Uint8Array(page);
      await backend.read(i * page, page, [into]);
      expect(Buffer.compare(into, full)).toBe(0);
    }
    // Free everything, then write again: a fresh start reads back correctly too.
    await backend.unmap(0, 64 << 20);
    expect(backend.allocatedPages).toBe(0);
    await backend.write(7 * page, [full]);
    const into = new Uint8Array(2 * page);
    await backend.read(6 * page, 2 * page, [into]);
    expect(Buffer.compare(into.subarray(0, page), new Uint8Array(page))).toBe(0);
    expect(Buffer.compare(into.subarray(page), full)).toBe(0);
  });

  it('refuses writes beyond maxMemory with TCMU_ERR_BACKEND_NO_SPACE and changes nothing', async () => {
    const backend = await openMemoryBackend({ size: 1 << 20, maxMemory: 2 * 4096 });
    await backend.write(0, [patternBytes(3, 8192)]);
    expect(await codeOf(backend.write(65536, [Uint8Array.of(1)]))).toBe(BackendErrorCode.NoSpace);
    expect(await codeOf(backend.write(4000, [patternBytes(4, 4096)]))).toBe('resolved');
    expect(await codeOf(backend.write(65536, [new Uint8Array(4096)]))).toBe('resolved');
    const spanning = patternBytes(5, 8192);
    expect(await codeOf(backend.write(4096, [spanning]))).toBe(BackendErrorCode.NoSpace);
    const out = new Uint8Array(4096);
    await backend.read(8192, 4096, [out]);
    expect(out.every((b) => b === 0)).toBe(true);
    await backend.unmap(0, 8192);
    expect(await codeOf(backend.write(65536, [Uint8Array.of(1)]))).toBe('resolved');
  });

  it('rejects bad options with TCMU_ERR_BACKEND_INVALID_ARGUMENT', async () => {
    expect(await codeOf(openMemoryBackend({ size: -1 }))).toBe(BackendErrorCode.InvalidArgument);
    expect(await codeOf(openMemoryBackend({ size: 1.5 }))).toBe(BackendErrorCode.InvalidArgument);
    expect(await codeOf(openMemoryBackend({ size: 4096, pageSize: 3000 }))).toBe(
      BackendErrorCode.InvalidArgument,
    );
  });
});
