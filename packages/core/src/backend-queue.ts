import { type Backend, type BackendLayer, optionalOperations, wrapBackend } from '@tcmu/backend';
import { CoreError, CoreErrorCode } from './errors';

/**
 * Honours `backend.concurrencyLimit`: returns a backend that lets at most that many calls reach
 * `backend` at once and queues the others in call order (a call starts when an earlier one settles).
 * Without a limit (absent or Infinity) `backend` itself is returned: no cost on the hot path.
 * Capabilities are unchanged (the same optional methods exist) and properties stay live.
 */
export function limitConcurrency(backend: Backend): Backend {
  const limit = backend.concurrencyLimit;
  if (limit === undefined || limit === Number.POSITIVE_INFINITY) return backend;
  if (!Number.isInteger(limit) || limit < 1)
    throw new CoreError(
      CoreErrorCode.InvalidOption,
      `backend.concurrencyLimit must be a positive integer, got ${limit}`,
    );
  let running = 0;
  const waiting: (() => void)[] = [];
  const release = () => {
    const next = waiting.shift();
    if (next) next();
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
    read: (offset: number, length: number, into: readonly Uint8Array[]) =>
      run(() => backend.read(offset, length, into)),
    write: (offset: number, data: readonly Uint8Array[]) => run(() => backend.write(offset, data)),
  };
  for (const name of optionalOperations) {
    const method = backend[name] as ((...args: unknown[]) => Promise<unknown>) | undefined;
    if (typeof method === 'function')
      layer[name] = (...args: unknown[]) => run(() => method.apply(backend, args));
  }
  return wrapBackend(backend, layer as BackendLayer);
}
