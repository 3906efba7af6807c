import type { Backend } from '../backend';
import { optionalOperations } from '../capabilities';
import { type BackendLayer, wrapBackend } from './wrap-backend';

/**
 * A filter that lets one call at a time reach `next`, in the order the calls were made (nbdkit's
 * "serialize all requests" thread model). For backends that are not safe with overlapping calls;
 * sets `concurrencyLimit` to 1. A failed call does not stop the queue.
 */
export function serialized(next: Backend): Backend {
  let tail: Promise<unknown> = Promise.resolve();
  const run = <T>(call: () => Promise<T>): Promise<T> => {
    const result = tail.then(call, call);
    tail = result.catch(() => undefined);
    return result;
  };
  const layer: Record<string, unknown> = {
    concurrencyLimit: 1,
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
