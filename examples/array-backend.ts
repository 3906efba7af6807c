import {
  type Backend,
  BackendError,
  BackendErrorCode,
  checkRange,
  scatterCopyFrom,
  scatterCopyTo,
  scatterLength,
} from '@tcmu/backend';

/** A complete backend: a byte array. Reads of a range never written return zeros. */
export function openArrayBackend(size: number): Backend {
  const bytes = new Uint8Array(size);
  return {
    size,
    async read(offset, length, into) {
      checkRange('read', offset, length, size);
      if (scatterLength(into) < length) {
        throw new BackendError(
          BackendErrorCode.InvalidArgument,
          `read: ${length} bytes do not fit the scatter list`,
        );
      }
      scatterCopyFrom(into, 0, bytes.subarray(offset, offset + length));
    },
    async write(offset, data) {
      const length = scatterLength(data);
      checkRange('write', offset, length, size);
      scatterCopyTo(data, 0, bytes.subarray(offset, offset + length));
    },
  };
}
