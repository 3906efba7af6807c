import type { Backend, BackendOperation } from '../backend';
import { optionalOperations } from '../capabilities';
import { scatterLength } from '../scatter';
import { type BackendLayer, wrapBackend } from './wrap-backend';

/** Counters for one operation. Times in milliseconds (performance.now()). */
export interface OperationStats {
  /** Calls started. */
  calls: number;
  /** Calls that resolved. */
  completed: number;
  /** Calls that rejected. */
  failed: number;
  /** Bytes moved or affected by calls that resolved (read/write: data; unmap/writeZeroes: range). */
  bytes: number;
  /** Sum of the durations of settled calls, in milliseconds. */
  totalMilliseconds: number;
  /** Longest settled call, in milliseconds. */
  maxMilliseconds: number;
}

/** A snapshot of {@link withStats} counters. */
export interface BackendStats {
  readonly operations: Readonly<Record<'read' | 'write' | BackendOperation, Readonly<OperationStats>>>;
  /** Calls in flight right now. */
  readonly inFlight: number;
  /** Highest number of calls in flight at once since creation or the last reset. */
  readonly maxInFlight: number;
  /** Rejections counted by error code (`TCMU_ERR_…`, or `other` for non-coded errors). */
  readonly errors: Readonly<Record<string, number>>;
}

/** A backend with counters, as returned by {@link withStats}. */
export type StatsBackend = Backend & {
  /** A copy of the counters (does not change as calls continue). */
  stats(): BackendStats;
  /** Zeroes every counter except `inFlight`. */
  resetStats(): void;
};

const names = ['read', 'write', ...optionalOperations] as const;
const emptyOperation = (): OperationStats => ({
  calls: 0,
  completed: 0,
  failed: 0,
  bytes: 0,
  totalMilliseconds: 0,
  maxMilliseconds: 0,
});

/**
 * A filter that counts calls, bytes, failures (by code), latency and concurrency per operation. Adds
 * no capability: only operations `next` has are wrapped. Cheap enough to leave on in production.
 */
export function withStats(next: Backend): StatsBackend {
  let operations = Object.fromEntries(names.map((name) => [name, emptyOperation()])) as Record<
    (typeof names)[number],
    OperationStats
  >;
  let errors: Record<string, number> = {};
  let inFlight = 0;
  let maxInFlight = 0;

  const measure = async <T>(
    name: (typeof names)[number],
    bytes: number,
    call: () => Promise<T>,
  ): Promise<T> => {
    const entry = operations[name];
    entry.calls++;
    inFlight++;
    if (inFlight > maxInFlight) maxInFlight = inFlight;
    const start = performance.now();
    const settle = () => {
      const elapsed = performance.now() - start;
      inFlight--;
      entry.totalMilliseconds += elapsed;
      if (elapsed > entry.maxMilliseconds) entry.maxMilliseconds = elapsed;
    };
    try {
      const value = await call();
      settle();
      entry.completed++;
      entry.bytes += bytes;
      return value;
    } catch (error) {
      settle();
      entry.failed++;
      const code = (error as { code?: unknown } | null)?.code;
      const key = typeof code === 'string' ? code : 'other';
      errors[key] = (errors[key] ?? 0) + 1;
      throw error;
    }
  };

  const layer: Record<string, unknown> = {
    read: (offset: number, length: number, into: readonly Uint8Array[]) =>
      measure('read', length, () => next.read(offset, length, into)),
    write: (offset: number, data: readonly Uint8Array[]) =>
      measure('write', scatterLength(data), () => next.write(offset, data)),
  };
  const bytesOf: Partial<Record<BackendOperation, (args: unknown[]) => number>> = {
    unmap: (args) => args[1] as number,
    writeZeroes: (args) => args[1] as number,
    compareAndWrite: (args) => scatterLength(args[2] as Uint8Array[]),
  };
  for (const name of optionalOperations) {
    const method = next[name] as ((...args: unknown[]) => Promise<unknown>) | undefined;
    if (typeof method !== 'function') continue;
    layer[name] = (...args: unknown[]) =>
      measure(name, bytesOf[name]?.(args) ?? 0, () => method.apply(next, args));
  }
  const wrapped = wrapBackend(next, layer as BackendLayer) as StatsBackend;
  wrapped.stats = () => ({
    operations: Object.fromEntries(
      names.map((name) => [name, { ...operations[name] }]),
    ) as BackendStats['operations'],
    inFlight,
    maxInFlight,
    errors: { ...errors },
  });
  wrapped.resetStats = () => {
    operations = Object.fromEntries(names.map((name) => [name, emptyOperation()])) as typeof operations;
    errors = {};
    maxInFlight = inFlight;
  };
  return wrapped;
}
