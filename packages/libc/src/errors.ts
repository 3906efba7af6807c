/** Every code this package throws. */
export type LibcErrorCode =
  /** koffi (an optional dependency) is not installed or has no build for this platform. */
  | 'TCMU_ERR_LIBC_NO_KOFFI'
  /** koffi loaded but libc.so.6 did not (not glibc Linux) or lacks a function tcmu binds. */
  | 'TCMU_ERR_LIBC_NO_LIBC'
  /** libuv's uv_poll functions cannot be bound from the running node binary (see `watchFd`). */
  | 'TCMU_ERR_LIBC_NO_LIBUV';

/** The error this package throws. Match by `code` (two copies of the package may be loaded). */
export class LibcError extends Error {
  override readonly name = 'LibcError';
  readonly code: LibcErrorCode;

  constructor(code: LibcErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** True when `error` is a LibcError (by code, not class identity), optionally with `code`. */
export function isLibcError(error: unknown, code?: LibcErrorCode): error is LibcError {
  if (!(error instanceof Error)) return false;
  const value = (error as { code?: unknown }).code;
  if (
    value !== 'TCMU_ERR_LIBC_NO_KOFFI' &&
    value !== 'TCMU_ERR_LIBC_NO_LIBC' &&
    value !== 'TCMU_ERR_LIBC_NO_LIBUV'
  )
    return false;
  return code === undefined || value === code;
}
