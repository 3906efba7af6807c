import type { AllocationExtent, Backend } from '../backend';
import { BackendError, BackendErrorCode } from '../errors';
import { checkRange } from '../ranges';
import { scatterCompare, scatterCopyFrom, scatterCopyTo, scatterLength } from '../scatter';

export interface ReferenceBackendOptions {
  /** Leave out these optional operations (to test capability gating in callers). */
  readonly without?: readonly (
    | 'flush'
    | 'unmap'
    | 'writeZeroes'
    | 'compareAndWrite'
    | 'getAllocation'
    | 'resize'
  )[];
  /** Declared `blockSize`. */
  readonly blockSize?: number;
  /** Allocation unit tracked by getAllocation/unmap, bytes. Default 4096. */
  readonly unmapGranularity?: number;
}

/**
 * The simplest correct backend: one flat Uint8Array (so keep `size` small, ≤ 1 GiB), every optional
 * operation implemented, allocation tracked per `unmapGranularity` unit. The yardstick the filters
 * and the conformance suite are tested against, and a handy fake for callers' tests. Not sparse: use
 * @tcmu/backend-memory for real work.
 */
export function createReferenceBackend(size: number, options: ReferenceBackendOptions = {}): Backend {
  const granularity = options.unmapGranularity ?? 4096;
  let bytes = new Uint8Array(size);
  let mapped = new Uint8Array(Math.ceil(size / granularity));
  let closed = false;
  const ensureOpen = () => {
    if (closed) throw new BackendError(BackendErrorCode.Closed, 'reference backend is closed');
  };
  const markMapped = (offset: number, length: number) => {
    for (let unit = Math.floor(offset / granularity); unit * granularity < offset + length; unit++)
      mapped[unit] = 1;
  };
  const zero = (offset: number, length: number) => {
    bytes.fill(0, offset, offset + length);
    const first = Math.ceil(offset / granularity);
    const end = Math.floor((offset + length) / granularity);
    for (let unit = first; unit < end; unit++) mapped[unit] = 0;
  };
  const backend: Backend & Record<string, unknown> = {
    get size() {
      return bytes.byteLength;
    },
    blockSize: options.blockSize,
    unmapGranularity: granularity,
    async read(offset, length, into) {
      ensureOpen();
      checkRange('read', offset, length, bytes.byteLength);
      if (scatterLength(into) < length)
        throw new BackendError(BackendErrorCode.InvalidArgument, 'read: scatter list shorter than length');
      scatterCopyFrom(into, 0, bytes.subarray(offset, offset + length));
    },
    async write(offset, data) {
      ensureOpen();
      const length = scatterLength(data);
      checkRange('write', offset, length, bytes.byteLength);
      scatterCopyTo(data, 0, bytes.subarray(offset, offset + length));
      if (length > 0) markMapped(offset, length);
    },
    async flush() {
      ensureOpen();
    },
    async unmap(offset, length) {
      ensureOpen();
      checkRange('unmap', offset, length, bytes.byteLength);
      zero(offset, length);
    },
    async writeZeroes(offset, length) {
      ensureOpen();
      checkRange('writeZeroes', offset, length, bytes.byteLength);
      zero(offset, length);
    },
    async compareAndWrite(offset, expected, data) {
      ensureOpen();
      const length = scatterLength(data);
      if (scatterLength(expected) !== length)
        throw new BackendError(
          BackendErrorCode.InvalidArgument,
          'compareAndWrite: expected and data lengths differ',
        );
      checkRange('compareAndWrite', offset, length, bytes.byteLength);
      const differs = scatterCompare([bytes.subarray(offset, offset + length)], expected, length);
      if (differs >= 0)
        throw new BackendError(BackendErrorCode.Miscompare, `miscompare at byte ${differs}`, {
          offset: differs,
        });
      scatterCopyTo(data, 0, bytes.subarray(offset, offset + length));
      if (length > 0) markMapped(offset, length);
    },
    async getAllocation(offset, length) {
      ensureOpen();
      checkRange('getAllocation', offset, length, bytes.byteLength);
      const extents: AllocationExtent[] = [];
      let position = offset;
      while (position < offset + length) {
        const unit = Math.floor(position / granularity);
        const state = mapped[unit] ? 'mapped' : 'deallocated';
        const end = Math.min((unit + 1) * granularity, offset + length);
        const last = extents[extents.length - 1];
        if (last && last.state === state)
          extents[extents.length - 1] = { ...last, length: end - last.offset };
        else extents.push({ offset: position, length: end - position, state });
        position = end;
      }
      return extents;
    },
    async resize(newSize) {
      ensureOpen();
      if (!Number.isSafeInteger(newSize) || newSize < 0)
        throw new BackendError(BackendErrorCode.InvalidArgument, `resize: bad size ${newSize}`);
      const grown = new Uint8Array(newSize);
      grown.set(bytes.subarray(0, Math.min(newSize, bytes.byteLength)));
      const grownMap = new Uint8Array(Math.ceil(newSize / granularity));
      grownMap.set(mapped.subarray(0, grownMap.byteLength));
      bytes = grown;
      mapped = grownMap;
    },
    async close() {
      closed = true;
    },
  };
  for (const name of options.without ?? []) delete backend[name];
  return backend;
}
