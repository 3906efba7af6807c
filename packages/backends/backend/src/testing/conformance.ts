import { describe, expect, it } from 'vitest';
import type { AllocationExtent, Backend } from '../backend';
import { firstDifference, isAllZero } from '../bytes';
import { backendCapabilities, hasCapability, optionalOperations } from '../capabilities';
import { BackendErrorCode } from '../errors';
import { scatterConcat } from '../scatter';

/** Options of {@link runBackendConformance}. Sizes in bytes. */
export interface BackendConformanceOptions {
  /** Shown in the describe block: `backend conformance: <name>`. */
  readonly name: string;
  /** Opens a fresh, never-written backend of exactly `size` bytes. Called once per test. */
  open(size: number): Promise<Backend>;
  /**
   * Persistent backends: opens the same storage again after `closed` was closed (same size). When
   * present, the suite checks that data, unmapped ranges and size survive close and re-open.
   */
  reopen?(closed: Backend): Promise<Backend>;
  /** Size of the backends the suite opens. Default 16 MiB; must be ≥ 2 × largeIoLength. */
  readonly size?: number;
  /** Length of the large-I/O test. Default 8 MiB. */
  readonly largeIoLength?: number;
  /** Number of calls the concurrency tests keep in flight. Default 64. */
  readonly concurrency?: number;
  /**
   * Set when this configuration's `unmap` zeroes without releasing space (a medium that refuses
   * deallocation, e.g. a file system without hole punching): the suite then does not require
   * unmapped granules to be reported `deallocated`. Default false: they must be.
   */
  readonly unmapMayNotDeallocate?: boolean;
}

type Outcome = { ok: true } | { ok: false; code: unknown; offset: unknown; error: unknown };

async function outcome(promise: Promise<unknown>): Promise<Outcome> {
  try {
    await promise;
    return { ok: true };
  } catch (error) {
    const e = error as { code?: unknown; offset?: unknown } | null;
    return { ok: false, code: e?.code, offset: e?.offset, error };
  }
}

/**
 * What a synchronous fast path (tryReadSync, tryWriteSync) did with a call `read`/`write` would
 * reject with `code`: threw that BackendError (`thrown`) or declined (`declined`: returned false, the
 * caller then gets the rejection from `read`/`write`). Anything else fails the test.
 */
function expectSyncRefusal(call: () => boolean, code: string): 'thrown' | 'declined' {
  let answered: boolean;
  try {
    answered = call();
  } catch (error) {
    expect(error).toBeInstanceOf(Error);
    expect((error as { code?: unknown }).code).toBe(code);
    return 'thrown';
  }
  expect(answered, `expected a throw with ${code} or false, got ${String(answered)}`).toBe(false);
  return 'declined';
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<Outcome & { ok: false }> {
  const result = await outcome(promise);
  expect(result.ok, `expected rejection with ${code}`).toBe(false);
  const failed = result as Outcome & { ok: false };
  expect(failed.error).toBeInstanceOf(Error);
  expect(failed.code).toBe(code);
  return failed;
}

/** Deterministic non-zero-heavy bytes. */
export function patternBytes(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let state = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    out[i] = state & 0xff;
  }
  return out;
}

/** Splits `bytes` into views of cycling odd sizes (boundaries deliberately unaligned). */
function splitViews(
  bytes: Uint8Array,
  sizes: readonly number[] = [1, 4093, 7, 512, 65536, 3, 4096],
): Uint8Array[] {
  const views: Uint8Array[] = [];
  let position = 0;
  let index = 0;
  while (position < bytes.byteLength) {
    const take = Math.min(sizes[index++ % sizes.length]!, bytes.byteLength - position);
    views.push(bytes.subarray(position, position + take));
    position += take;
  }
  return views;
}

async function readBytes(
  backend: Backend,
  offset: number,
  length: number,
  split = false,
): Promise<Uint8Array> {
  const out = new Uint8Array(length).fill(0xa5);
  await backend.read(offset, length, split ? splitViews(out, [4096, 3, 8192, 1]) : [out]);
  return out;
}

function checkTiling(extents: readonly AllocationExtent[], offset: number, length: number): void {
  if (length === 0) {
    expect(extents.length).toBe(0);
    return;
  }
  expect(extents.length).toBeGreaterThan(0);
  let position = offset;
  let previous: string | undefined;
  for (const extent of extents) {
    expect(extent.offset).toBe(position);
    expect(extent.length).toBeGreaterThan(0);
    expect(['mapped', 'deallocated']).toContain(extent.state);
    expect(extent.state).not.toBe(previous);
    previous = extent.state;
    position += extent.length;
  }
  expect(position).toBe(offset + length);
}

function stateAt(extents: readonly AllocationExtent[], byte: number): string | undefined {
  return extents.find((e) => byte >= e.offset && byte < e.offset + e.length)?.state;
}

/** Byte-array equality that stays fast on megabytes and names the first differing byte. */
function expectBytes(actual: Uint8Array, expected: Uint8Array, what = 'bytes'): void {
  expect(actual.byteLength, `${what}: length`).toBe(expected.byteLength);
  const index = firstDifference(actual, expected);
  if (index < 0) return;
  expect.fail(
    `${what}: first difference at byte ${index} (got ${actual[index]}, expected ${expected[index]})`,
  );
}

/**
 * Registers the backend conformance tests with vitest (call at the top level of a test file). Each
 * test opens its own backend with `options.open(size)` and closes it. Tests of optional operations
 * the backend lacks are skipped with the reason; the capability-gating test checks those are really
 * absent.
 */
export function runBackendConformance(options: BackendConformanceOptions): void {
  const size = options.size ?? 16 * 1024 * 1024;
  const large = options.largeIoLength ?? 8 * 1024 * 1024;
  const parallel = options.concurrency ?? 64;
  if (size < 2 * large)
    throw new RangeError('runBackendConformance: size must be at least 2 × largeIoLength');

  const withBackend = async (body: (backend: Backend, unit: number) => Promise<void>) => {
    const backend = await options.open(size);
    try {
      await body(backend, Math.max(backend.alignment ?? 1, 1));
    } finally {
      await backend.close?.();
    }
  };

  describe(`backend conformance: ${options.name}`, () => {
    it('has the requested size and sane declared properties', async () => {
      await withBackend(async (backend, unit) => {
        expect(backend.size).toBe(size);
        expect(size % unit).toBe(0);
        for (const value of [backend.alignment, backend.blockSize, backend.unmapGranularity]) {
          if (value !== undefined) {
            expect(Number.isInteger(value) && value > 0 && (value & (value - 1)) === 0).toBe(true);
          }
        }
        if (backend.concurrencyLimit !== undefined) expect(backend.concurrencyLimit).toBeGreaterThan(0);
      });
    });

    it('reads never-written ranges as zeros (start, middle, end; contiguous and scattered)', async () => {
      await withBackend(async (backend, unit) => {
        const length = Math.max(unit, 64 * 1024);
        expect(isAllZero(await readBytes(backend, 0, length))).toBe(true);
        expect(isAllZero(await readBytes(backend, size / 2 - unit, length, true))).toBe(true);
        expect(isAllZero(await readBytes(backend, size - length, length, true))).toBe(true);
        if (unit === 1) expect(isAllZero(await readBytes(backend, 12345, 777))).toBe(true);
      });
    });

    it('round-trips writes through scatter lists with unaligned view boundaries', async () => {
      await withBackend(async (backend, unit) => {
        const offset = unit === 1 ? 4099 : unit * 9;
        const data = patternBytes(1, unit === 1 ? 200_003 : unit * 100);
        await backend.write(offset, splitViews(data));
        expectBytes(await readBytes(backend, offset, data.byteLength, true), data);
        // The neighbours stay zero.
        expect(isAllZero(await readBytes(backend, offset - unit, unit))).toBe(true);
        expect(isAllZero(await readBytes(backend, offset + data.byteLength, unit))).toBe(true);
        // A sub-range read sees the middle of the write.
        const middle = await readBytes(backend, offset + unit * 3, unit * 5);
        expectBytes(middle, data.subarray(unit * 3, unit * 8));
      });
    });

    it('read fills exactly `length` bytes and leaves the rest of the scatter list untouched', async () => {
      await withBackend(async (backend, unit) => {
        const data = patternBytes(2, unit * 4);
        await backend.write(0, [data]);
        const target = new Uint8Array(unit * 8).fill(0x5a);
        await backend.read(0, unit * 4, [target.subarray(0, unit), target.subarray(unit)]);
        expectBytes(target.subarray(0, unit * 4), data);
        expect(target.subarray(unit * 4).every((b) => b === 0x5a)).toBe(true);
      });
    });

    it('rejects a read whose scatter list is shorter than the length', async () => {
      await withBackend(async (backend, unit) => {
        await expectCode(backend.read(0, unit * 2, [new Uint8Array(unit)]), BackendErrorCode.InvalidArgument);
      });
    });

    it('reads and writes the last bytes; zero-length calls at the end succeed', async () => {
      await withBackend(async (backend, unit) => {
        const tail = patternBytes(3, unit * 2);
        await backend.write(size - tail.byteLength, splitViews(tail, [unit, 1]));
        expectBytes(await readBytes(backend, size - tail.byteLength, tail.byteLength), tail);
        await backend.read(size, 0, []);
        await backend.write(size, []);
      });
    });

    it('rejects reads and writes past the end with TCMU_ERR_BACKEND_OUT_OF_RANGE and changes nothing', async () => {
      await withBackend(async (backend, unit) => {
        const tail = patternBytes(4, unit);
        await backend.write(size - unit, [tail]);
        await expectCode(
          backend.read(size - unit, unit * 2, [new Uint8Array(unit * 2)]),
          BackendErrorCode.OutOfRange,
        );
        await expectCode(backend.read(size, unit, [new Uint8Array(unit)]), BackendErrorCode.OutOfRange);
        await expectCode(
          backend.read(size + unit * 8, unit, [new Uint8Array(unit)]),
          BackendErrorCode.OutOfRange,
        );
        await expectCode(
          backend.write(size - unit, [new Uint8Array(unit * 2).fill(7)]),
          BackendErrorCode.OutOfRange,
        );
        await expectCode(backend.write(size, [new Uint8Array(unit).fill(7)]), BackendErrorCode.OutOfRange);
        await expectCode(backend.read(-unit, unit, [new Uint8Array(unit)]), BackendErrorCode.OutOfRange);
        expectBytes(await readBytes(backend, size - unit, unit), tail);
        expect(backend.size).toBe(size);
      });
    });

    it('rejects misaligned calls when it declares an alignment', async (context) => {
      await withBackend(async (backend, unit) => {
        if (unit === 1) return context.skip('the backend is byte-granular (no alignment declared)');
        await expectCode(backend.read(1, unit, [new Uint8Array(unit)]), BackendErrorCode.InvalidArgument);
        await expectCode(backend.write(0, [new Uint8Array(unit + 1)]), BackendErrorCode.InvalidArgument);
      });
    });

    it(`moves large I/O (${large} bytes) spanning thousands of scatter views`, async () => {
      await withBackend(async (backend, unit) => {
        const offset = Math.ceil(size / 4 / unit) * unit;
        const data = patternBytes(5, large);
        await backend.write(offset, splitViews(data, [4096, 4096, 512, 61440, 1, 4095]));
        const back = new Uint8Array(large);
        await backend.read(offset, large, splitViews(back, [65536, 4096, 3, 509]));
        expectBytes(back, data, 'large read');
      });
    });

    it(`serves ${parallel} concurrent writes and reads on distinct ranges correctly`, async () => {
      await withBackend(async (backend, unit) => {
        const span = Math.max(unit, 4096) * 4;
        const base = patternBytes(6, span * parallel);
        await backend.write(size - base.byteLength, [base]);
        const writes = Array.from({ length: parallel }, (_, i) =>
          backend.write(i * span, splitViews(patternBytes(100 + i, span), [unit, span])),
        );
        const reads = Array.from({ length: parallel }, (_, i) =>
          readBytes(backend, size - base.byteLength + i * span, span, i % 2 === 0),
        );
        await Promise.all(writes);
        const got = await Promise.all(reads);
        got.forEach((bytes, i) => {
          expect(Buffer.compare(bytes, base.subarray(i * span, (i + 1) * span))).toBe(0);
        });
        for (let i = 0; i < parallel; i++) {
          expect(Buffer.compare(await readBytes(backend, i * span, span), patternBytes(100 + i, span))).toBe(
            0,
          );
        }
      });
    });

    it('overlapping concurrent writes leave each byte from one of the writers; caller-ordered writes keep order', async () => {
      await withBackend(async (backend, unit) => {
        const length = Math.max(unit, 4096) * 16;
        const writers = Math.min(parallel, 200);
        const fills = Array.from({ length: writers }, (_, i) => i + 1);
        await Promise.all(
          fills.map((fill, i) =>
            backend.write(unit * i, splitViews(new Uint8Array(length).fill(fill), [length / 4])),
          ),
        );
        const span = unit * (writers - 1) + length;
        const result = await readBytes(backend, 0, span);
        // Each byte must come from a writer whose range covers it.
        let foreign = -1;
        for (let byte = 0; byte < span && foreign < 0; byte++) {
          const writer = result[byte]! - 1;
          if (writer < 0 || writer >= writers || byte < unit * writer || byte >= unit * writer + length)
            foreign = byte;
        }
        expect(foreign, `byte ${foreign} holds ${result[foreign]}, which no covering writer wrote`).toBe(-1);
        // Ordered by the caller (each awaited before the next starts): the last one wins.
        const at = size / 2;
        let chain = Promise.resolve();
        for (const fill of [9, 8, 7])
          chain = chain.then(() => backend.write(at, [new Uint8Array(length).fill(fill)]));
        await chain;
        expect((await readBytes(backend, at, length)).every((b) => b === 7)).toBe(true);
      });
    });

    it('capability gating: optional methods are functions or absent, and capabilities match', async () => {
      await withBackend(async (backend) => {
        const capabilities = backendCapabilities(backend);
        for (const name of optionalOperations) {
          const value = (backend as unknown as Record<string, unknown>)[name];
          expect(value === undefined || typeof value === 'function', `${name} is a function or absent`).toBe(
            true,
          );
          expect(capabilities[name]).toBe(typeof value === 'function');
        }
        expect(typeof backend.read).toBe('function');
        expect(typeof backend.write).toBe('function');
        if (!backend.persistent)
          expect(options.reopen, 'reopen given for a non-persistent backend').toBeUndefined();
      });
    });

    it('rejects with BackendError codes, never synchronously', async () => {
      await withBackend(async (backend) => {
        let promise: Promise<unknown> | undefined;
        expect(() => {
          promise = backend.read(size + 1, 1, [new Uint8Array(1)]);
        }).not.toThrow();
        await expectCode(promise!, BackendErrorCode.OutOfRange);
      });
    });

    it('tryReadSync and tryWriteSync, where present, answer as read and write do (or decline)', async (context) => {
      await withBackend(async (backend, unit) => {
        const { tryReadSync, tryWriteSync } = backend;
        for (const [name, value] of Object.entries({ tryReadSync, tryWriteSync }))
          expect(value === undefined || typeof value === 'function', `${name} is a function or absent`).toBe(
            true,
          );
        if (!tryReadSync && !tryWriteSync)
          return context.skip('the backend has neither synchronous fast path');
        const length = unit * 8;
        const written = patternBytes(21, length);
        await backend.write(unit * 4, splitViews(written, [unit, 1]));
        if (tryReadSync) {
          const into = new Uint8Array(length).fill(0xa5);
          const answered = backend.tryReadSync!(unit * 4, length, splitViews(into, [unit, 3]));
          expect(typeof answered, 'tryReadSync returns a boolean').toBe('boolean');
          if (answered) expectBytes(into, written, 'tryReadSync after write');
          const fresh = new Uint8Array(unit).fill(0xa5);
          if (backend.tryReadSync!(size - unit * 64, unit, [fresh]))
            expect(isAllZero(fresh), 'tryReadSync of a never-written range reads zeros').toBe(true);
          expectSyncRefusal(
            () => backend.tryReadSync!(size - unit, unit * 2, [new Uint8Array(unit * 2)]),
            BackendErrorCode.OutOfRange,
          );
        }
        if (tryWriteSync && !backend.readOnly) {
          const next = patternBytes(22, length);
          const wrote = backend.tryWriteSync!(unit * 4, splitViews(next, [unit, 7]));
          expect(typeof wrote, 'tryWriteSync returns a boolean').toBe('boolean');
          expectBytes(
            await readBytes(backend, unit * 4, length, true),
            wrote ? next : written,
            wrote ? 'read after tryWriteSync answered' : 'read after tryWriteSync declined (nothing written)',
          );
          const tail = await readBytes(backend, size - unit, unit);
          expectSyncRefusal(
            () => backend.tryWriteSync!(size - unit, [new Uint8Array(unit * 2).fill(7)]),
            BackendErrorCode.OutOfRange,
          );
          expectBytes(
            await readBytes(backend, size - unit, unit),
            tail,
            'the tail after a refused tryWriteSync',
          );
        }
      });
    });

    it('flush resolves and covers completed writes (durable across close and re-open when persistent)', async (context) => {
      const backend = await options.open(size);
      let current = backend;
      try {
        if (!hasCapability(backend, 'flush'))
          return context.skip('the backend has no flush (no write cache)');
        const data = patternBytes(7, 64 * 1024);
        await backend.write(size / 4, [data]);
        await backend.flush();
        if (!options.reopen) return;
        await backend.close?.();
        current = await options.reopen(backend);
        expectBytes(await readBytes(current, size / 4, data.byteLength), data);
      } finally {
        await current.close?.();
      }
    });

    it('data, unmapped ranges and size survive close and re-open (persistent backends)', async (context) => {
      if (!options.reopen) return context.skip('not a persistent backend (no reopen)');
      const backend = await options.open(size);
      let current = backend;
      try {
        const unit = Math.max(backend.alignment ?? 1, 1);
        const granule = Math.max(backend.unmapGranularity ?? 4096, unit);
        const data = patternBytes(8, granule * 4);
        await backend.write(granule * 8, [data]);
        await backend.write(size - unit, [new Uint8Array(unit).fill(0xee)]);
        if (backend.unmap) await backend.unmap(granule * 9, granule);
        await backend.close?.();
        current = await options.reopen(backend);
        expect(current.size).toBe(size);
        const expected = data.slice();
        if (backend.unmap) expected.fill(0, granule, granule * 2);
        expectBytes(await readBytes(current, granule * 8, data.byteLength), expected);
        expect((await readBytes(current, size - unit, unit)).every((b) => b === 0xee)).toBe(true);
      } finally {
        await current.close?.();
      }
    });

    it('unmap makes the range read as zeros (unaligned edges too) and keeps its neighbours', async (context) => {
      await withBackend(async (backend, unit) => {
        if (!hasCapability(backend, 'unmap')) return context.skip('the backend has no unmap');
        const granule = Math.max(backend.unmapGranularity ?? 4096, unit);
        const start = granule * 4;
        const data = patternBytes(9, granule * 6);
        await backend.write(start, [data]);
        const edge = unit === 1 ? 13 : unit < granule ? unit : 0;
        const from = start + granule + edge;
        const length = granule * 3 - 2 * edge;
        await backend.unmap(from, length);
        const expected = data.slice();
        expected.fill(0, from - start, from - start + length);
        expectBytes(await readBytes(backend, start, data.byteLength, true), expected);
        await backend.unmap(size - unit, unit);
        await backend.unmap(size, 0);
        await expectCode(backend.unmap(size - unit, unit * 2), BackendErrorCode.OutOfRange);
        if (backend.getAllocation) {
          const extents = await backend.getAllocation(start, data.byteLength);
          checkTiling(extents, start, data.byteLength);
          // The whole granules strictly inside the unmapped range are deallocated; untouched ones mapped.
          if (!options.unmapMayNotDeallocate)
            expect(stateAt(extents, start + granule * 2)).toBe('deallocated');
          expect(stateAt(extents, start)).toBe('mapped');
          expect(stateAt(extents, start + granule * 5)).toBe('mapped');
        }
      });
    });

    it('writeZeroes makes the range read as zeros and keeps its neighbours', async (context) => {
      await withBackend(async (backend, unit) => {
        if (!hasCapability(backend, 'writeZeroes')) return context.skip('the backend has no writeZeroes');
        const data = patternBytes(10, unit * 64);
        await backend.write(unit * 64, [data]);
        await backend.writeZeroes(unit * 70, unit * 20);
        const expected = data.slice();
        expected.fill(0, unit * 6, unit * 26);
        expectBytes(await readBytes(backend, unit * 64, data.byteLength), expected);
        await expectCode(backend.writeZeroes(size - unit, unit * 2), BackendErrorCode.OutOfRange);
      });
    });

    it('compareAndWrite writes on match, reports the first differing byte on miscompare, and is atomic', async (context) => {
      await withBackend(async (backend, unit) => {
        if (!hasCapability(backend, 'compareAndWrite'))
          return context.skip('the backend has no compareAndWrite');
        const length = Math.max(unit * 4, 512);
        const offset = unit * 32;
        const old = patternBytes(11, length);
        await backend.write(offset, [old]);
        const next = patternBytes(12, length);
        await backend.compareAndWrite(offset, splitViews(old, [7, length]), splitViews(next, [length / 2]));
        expectBytes(await readBytes(backend, offset, length), next);

        const wrong = next.slice();
        const differing = length - 3;
        wrong[differing] = wrong[differing]! ^ 0xff;
        const failed = await expectCode(
          backend.compareAndWrite(offset, [wrong], [patternBytes(13, length)]),
          BackendErrorCode.Miscompare,
        );
        expect(failed.offset).toBe(differing);
        expectBytes(await readBytes(backend, offset, length), next);

        await expectCode(
          backend.compareAndWrite(offset, [next], [new Uint8Array(length + unit)]),
          BackendErrorCode.InvalidArgument,
        );
        await expectCode(
          backend.compareAndWrite(size - unit, [new Uint8Array(length)], [new Uint8Array(length)]),
          BackendErrorCode.OutOfRange,
        );

        // Many racers expecting the same old data: exactly one wins, the rest miscompare.
        const racers = Array.from({ length: 16 }, (_, i) => patternBytes(200 + i, length));
        const results = await Promise.all(
          racers.map((data) => outcome(backend.compareAndWrite(offset, [next], [data]))),
        );
        const winners = results.flatMap((result, i) => (result.ok ? [i] : []));
        expect(winners.length).toBe(1);
        for (const result of results) if (!result.ok) expect(result.code).toBe(BackendErrorCode.Miscompare);
        expectBytes(await readBytes(backend, offset, length), racers[winners[0]!]!);
      });
    });

    it('getAllocation tiles the asked range; deallocated extents read as zeros; written data is mapped', async (context) => {
      await withBackend(async (backend, unit) => {
        if (!hasCapability(backend, 'getAllocation')) return context.skip('the backend has no getAllocation');
        const granule = Math.max(backend.unmapGranularity ?? 4096, unit);
        const region = granule * 16;
        checkTiling(await backend.getAllocation(0, size), 0, size);
        await backend.write(granule * 3, [patternBytes(14, granule * 2)]);
        const extents = await backend.getAllocation(0, region);
        checkTiling(extents, 0, region);
        expect(stateAt(extents, granule * 3)).toBe('mapped');
        expect(stateAt(extents, granule * 4 + granule - 1)).toBe('mapped');
        for (const extent of extents) {
          if (extent.state === 'deallocated') {
            expect(isAllZero(await readBytes(backend, extent.offset, extent.length))).toBe(true);
          }
        }
        checkTiling(await backend.getAllocation(unit, unit), unit, unit);
        expect(await backend.getAllocation(size, 0)).toEqual([]);
        await expectCode(backend.getAllocation(size - unit, unit * 2), BackendErrorCode.OutOfRange);
      });
    });

    it('resize grows with zeros and shrinks discarding the tail', async (context) => {
      await withBackend(async (backend, unit) => {
        if (!hasCapability(backend, 'resize')) return context.skip('the backend has no resize');
        const granule = Math.max(backend.unmapGranularity ?? 4096, unit);
        const tail = patternBytes(15, granule);
        await backend.write(size - granule, [tail]);
        await backend.resize(size + granule * 4);
        expect(backend.size).toBe(size + granule * 4);
        expectBytes(await readBytes(backend, size - granule, granule), tail);
        expect(isAllZero(await readBytes(backend, size, granule * 4))).toBe(true);
        await backend.write(size + granule, [patternBytes(16, granule)]);
        await backend.resize(size - granule);
        expect(backend.size).toBe(size - granule);
        await expectCode(
          backend.read(size - granule, granule, [new Uint8Array(granule)]),
          BackendErrorCode.OutOfRange,
        );
        await backend.resize(size + granule * 4);
        expect(isAllZero(await readBytes(backend, size - granule, granule * 5))).toBe(true);
        await backend.resize(size);
      });
    });

    it('close is idempotent and every later call rejects with TCMU_ERR_BACKEND_CLOSED', async (context) => {
      const backend = await options.open(size);
      if (!hasCapability(backend, 'close')) return context.skip('the backend has no close');
      const inFlight = backend.write(0, [patternBytes(17, 4096)]);
      const closing = backend.close();
      await expect(inFlight).resolves.toBeUndefined();
      await closing;
      await backend.close();
      await expectCode(backend.read(0, 4096, [new Uint8Array(4096)]), BackendErrorCode.Closed);
      await expectCode(backend.write(0, [new Uint8Array(4096)]), BackendErrorCode.Closed);
      if (backend.tryReadSync)
        expectSyncRefusal(
          () => backend.tryReadSync!(0, 4096, [new Uint8Array(4096)]),
          BackendErrorCode.Closed,
        );
      if (backend.tryWriteSync)
        expectSyncRefusal(() => backend.tryWriteSync!(0, [new Uint8Array(4096)]), BackendErrorCode.Closed);
      if (backend.flush) await expectCode(backend.flush(), BackendErrorCode.Closed);
      if (backend.unmap) await expectCode(backend.unmap(0, 4096), BackendErrorCode.Closed);
    });

    it('random sequences of operations agree with a flat reference model', async () => {
      await withBackend(async (backend, unit) => {
        // Seeded, so a failure reproduces; the window covers the start and the end of the backend.
        let seed = 0x9e3779b9;
        const random = (below: number) => {
          seed ^= seed << 13;
          seed ^= seed >>> 17;
          seed ^= seed << 5;
          seed >>>= 0;
          return seed % below;
        };
        const window = Math.max(unit, 4096) * 64;
        const bases = [0, size - window];
        const models = bases.map(() => new Uint8Array(window));
        for (let step = 0; step < 300; step++) {
          const which = random(2);
          const base = bases[which]!;
          const model = models[which]!;
          const units = window / unit;
          const start = random(units) * unit;
          const length = Math.min(window - start, (1 + random(Math.min(units, 40))) * unit);
          const operation = random(10);
          if (operation < 4) {
            const data = patternBytes(step, length);
            const cut = unit === 1 ? random(length) : random(length / unit) * unit;
            await backend.write(base + start, [data.subarray(0, cut), data.subarray(cut)]);
            model.set(data, start);
          } else if (operation < 5 && backend.unmap) {
            await backend.unmap(base + start, length);
            model.fill(0, start, start + length);
          } else if (operation < 6 && backend.writeZeroes) {
            await backend.writeZeroes(base + start, length);
            model.fill(0, start, start + length);
          } else if (operation < 7 && backend.compareAndWrite) {
            const data = patternBytes(step + 1000, length);
            const expected = model.slice(start, start + length);
            const spoil = random(2) === 0;
            if (spoil) expected[length - 1] = expected[length - 1]! ^ 0x01;
            const result = await outcome(backend.compareAndWrite(base + start, [expected], [data]));
            if (spoil) {
              expect(result.ok ? 'resolved' : (result as { code: unknown }).code).toBe(
                BackendErrorCode.Miscompare,
              );
              expect((result as { offset?: unknown }).offset).toBe(length - 1);
            } else {
              expect(result.ok, `step ${step}: compareAndWrite with the model's bytes`).toBe(true);
              model.set(data, start);
            }
          } else {
            expectBytes(
              await readBytes(backend, base + start, length, random(2) === 0),
              model.subarray(start, start + length),
              `step ${step}: read [${base + start}, ${base + start + length})`,
            );
          }
        }
        for (const [index, base] of bases.entries()) {
          expectBytes(await readBytes(backend, base, window), models[index]!, `final window at ${base}`);
        }
      });
    });

    it('scatter-list content is what was written (a view list is one byte stream)', async () => {
      await withBackend(async (backend, unit) => {
        const data = patternBytes(18, unit * 16);
        const views = splitViews(data, [unit, 1, 2, 3]);
        await backend.write(0, views);
        expectBytes(scatterConcat([await readBytes(backend, 0, data.byteLength)]), data);
      });
    });
  });
}
