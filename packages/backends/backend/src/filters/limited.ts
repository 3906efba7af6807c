import type { Backend } from '../backend';
import { optionalOperations } from '../capabilities';
import { BackendError, BackendErrorCode } from '../errors';
import { type BackendLayer, wrapBackend } from './wrap-backend';

/**
 * A filter that lets at most `limit` calls reach `next` at once and queues the others in call order
 * (a call starts when an earlier one settles; a failed call frees its place like any other). Sets
 * `concurrencyLimit` to `limit`. `serialized` is this with a limit of 1; the core applies it for a
 * backend that declares a `concurrencyLimit`. Capabilities are unchanged and properties stay live.
 */
export function limited(next: Backend, limit: number): Backend {
  if (!Number.isInteger(limit) || limit < 1)
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `a concurrency limit must be a positive integer, got ${limit}`,
    );
  let running = 0;
  const waiting: (() => void)[] = [];
  const release = () => {
    const queued = waiting.shift();
    if (queued) queued();
    else running--;
  };
  const start = <T>(call: () => Promise<T>): Promise<T> => {
    let result: Promise<T>;
    try {
      result = call();
    } catch (error) {
      result = Promise.reject(error);
    }
    return result.finally(release);
  };
  const run = <T>(call: () => Promise<T>): Promise<T> => {
    if (running < limit) {
      running++;
      return start(call);
    }
    return new Promise<void>((resolve) => waiting.push(resolve)).then(() => start(call));
  };
  const layer: Record<string, unknown> = {
    concurrencyLimit: limit,
    read: (offset: number, length: number, into: readonly Uint8Array[]) =>
      run(() => next.read(offset, length, into)),
    write: (offset: number, data: readonly Uint8Array[]) => run(() => next.write(offset, data)),
  };
  for (const name of optionalOperations) {
    const method = next[name] as ((...args: unknown[]) => Promise<unknown>) | undefined;
    if (typeof method === 'function')
      layer[name] = (...args: unknown[]) => run(() => method.apply(next, args));
  }
  return wrapBackend(next, layer as BackendLayer);
}
