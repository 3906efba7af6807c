import type { Backend } from '@tcmu/backend';
import { backendCapabilities } from '@tcmu/backend';
import { openMemoryBackend } from '@tcmu/backend-memory';
import { afterEach, describe, expect, it } from 'vitest';
import { limitConcurrency } from './backend-queue';
import { type Harness, harness, pattern } from './test-support';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** A memory backend that records the most calls it ever had in flight at once. */
async function recordingBackend(concurrencyLimit: number | undefined) {
  const memory = await openMemoryBackend({ size: 1024 * 1024 });
  let running = 0;
  const seen = { max: 0, calls: 0 };
  const slowly =
    <A extends unknown[]>(call: (...args: A) => Promise<void>) =>
    async (...args: A) => {
      running++;
      seen.calls++;
      seen.max = Math.max(seen.max, running);
      try {
        await new Promise((resolve) => setTimeout(resolve, 2));
        return await call(...args);
      } finally {
        running--;
      }
    };
  const backend: Backend = {
    size: memory.size,
    ...(concurrencyLimit === undefined ? {} : { concurrencyLimit }),
    read: slowly((offset: number, length: number, into: readonly Uint8Array[]) =>
      memory.read(offset, length, into),
    ),
    write: slowly((offset: number, data: readonly Uint8Array[]) => memory.write(offset, data)),
    flush: slowly(() => memory.flush()),
  };
  return { backend, seen };
}

/** 24 writes then 24 reads of distinct blocks, all in flight together (queue depth 64). */
async function load(backend: Backend) {
  h = await harness({ backend, size: backend.size, queueDepth: 64 });
  const harnessed = h;
  const writes = await Promise.all(
    Array.from({ length: 24 }, (_, i) =>
      harnessed.send({ name: 'WRITE(10)', lba: BigInt(i), transferLength: 1 }, { out: pattern(512, i) }),
    ),
  );
  const reads = await Promise.all(
    Array.from({ length: 24 }, (_, i) =>
      harnessed.send({ name: 'READ(10)', lba: BigInt(i), transferLength: 1 }, { inLength: 512 }),
    ),
  );
  expect([...writes, ...reads].every((r) => r.status === 0)).toBe(true);
  reads.forEach((r, i) => {
    expect(Buffer.from(r.dataIn).equals(Buffer.from(pattern(512, i)))).toBe(true);
  });
}

describe('Backend.concurrencyLimit', () => {
  it('the emulation never has more calls in flight on the backend than its limit', async () => {
    const { backend, seen } = await recordingBackend(3);
    await load(backend);
    expect(seen.max).toBe(3);
    expect(seen.calls).toBeGreaterThanOrEqual(48);
  });

  it('without a limit the same load reaches the backend all at once', async () => {
    const { backend, seen } = await recordingBackend(undefined);
    await load(backend);
    expect(seen.max).toBeGreaterThan(3);
  });

  it('keeps the capabilities, returns an unlimited backend as it is and refuses a bad limit', async () => {
    const { backend } = await recordingBackend(2);
    const limited = limitConcurrency(backend);
    expect(backendCapabilities(limited)).toEqual(backendCapabilities(backend));
    const memory = await openMemoryBackend({ size: 4096 });
    expect(limitConcurrency(memory)).toBe(memory);
    expect(() => limitConcurrency({ ...backend, concurrencyLimit: 0 })).toThrow(
      expect.objectContaining({ code: 'TCMU_ERR_CORE_INVALID_OPTION' }),
    );
  });

  it('a call that fails frees its slot', async () => {
    let calls = 0;
    const failing: Backend = {
      size: 4096,
      concurrencyLimit: 1,
      read: async () => {
        calls++;
        throw new Error('boom');
      },
      write: async () => {},
    };
    const limited = limitConcurrency(failing);
    const results = await Promise.allSettled(
      [1, 2, 3].map(() => limited.read(0, 512, [new Uint8Array(512)])),
    );
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(calls).toBe(3);
  });
});
