import type { Backend, BackendOperation } from '../backend';
import { optionalOperations } from '../capabilities';

const properties = [
  'size',
  'blockSize',
  'alignment',
  'unmapGranularity',
  'concurrencyLimit',
  'readOnly',
  'persistent',
  'writesSurviveCrash',
] as const;

/** Overrides a filter supplies. Anything absent is forwarded to `next`. */
export type BackendLayer = Partial<Backend>;

export interface WrapBackendOptions {
  /** Optional operations the filter removes even though `next` has them (e.g. readOnly drops unmap). */
  readonly omit?: readonly BackendOperation[];
}

/**
 * Builds a filter: a backend that forwards to `next` except where `layer` overrides. The filter model
 * of nbdkit: layering instead of flags.
 *
 * - Properties (`size`, `blockSize`, `alignment`, …) are live getters on `next` unless `layer`
 *   defines them, so a `resize()` below is visible above.
 * - An optional operation exists on the result only if `layer` defines it, or `next` has it and it is
 *   not in `omit`: capabilities stay honest through any stack of filters.
 * - `layer` methods are called with `this` bound to the layer object.
 */
export function wrapBackend(next: Backend, layer: BackendLayer, options: WrapBackendOptions = {}): Backend {
  const omit = new Set(options.omit ?? []);
  const result = {} as Record<string, unknown>;
  for (const name of properties) {
    const own = Object.getOwnPropertyDescriptor(layer, name);
    if (own) Object.defineProperty(result, name, { ...own, enumerable: true });
    else Object.defineProperty(result, name, { get: () => next[name], enumerable: true });
  }
  result.read = layer.read ? layer.read.bind(layer) : next.read.bind(next);
  result.write = layer.write ? layer.write.bind(layer) : next.write.bind(next);
  for (const name of optionalOperations) {
    const own = layer[name];
    if (typeof own === 'function') result[name] = own.bind(layer);
    else if (!omit.has(name) && typeof next[name] === 'function') result[name] = next[name].bind(next);
  }
  return result as unknown as Backend;
}
