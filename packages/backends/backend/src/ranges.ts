import type { Backend } from './backend';
import { BackendError, BackendErrorCode } from './errors';

/**
 * Checks a byte range against a backend's size and alignment, the way every backend must (see the
 * contract's Range and Alignment rules). Throws `TCMU_ERR_BACKEND_OUT_OF_RANGE` for negative,
 * non-integer or past-the-end ranges and `TCMU_ERR_BACKEND_INVALID_ARGUMENT` for misaligned ones.
 * `operation` names the call in the message.
 */
export function checkRange(
  operation: string,
  offset: number,
  length: number,
  size: number,
  alignment = 1,
): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new BackendError(
      BackendErrorCode.OutOfRange,
      `${operation}: offset ${offset} and length ${length} must be non-negative integers`,
    );
  }
  if (offset + length > size) {
    throw new BackendError(
      BackendErrorCode.OutOfRange,
      `${operation}: bytes [${offset}, ${offset + length}) reach past the end of the ${size}-byte backend`,
      { offset },
    );
  }
  if (alignment > 1 && (offset % alignment !== 0 || length % alignment !== 0)) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `${operation}: offset ${offset} and length ${length} must be multiples of the ${alignment}-byte alignment`,
      { offset },
    );
  }
}

/** {@link checkRange} with the size and alignment taken from `backend`. */
export function checkBackendRange(backend: Backend, operation: string, offset: number, length: number): void {
  checkRange(operation, offset, length, backend.size, backend.alignment ?? 1);
}
