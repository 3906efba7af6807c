/**
 * Stable error codes every backend uses. Match errors by `code`, never by class identity or message:
 * two copies of this package may be loaded in one process. The core maps each code to SCSI sense
 * (see the README's Errors table).
 */
export const BackendErrorCode = {
  /** Reading the medium failed (I/O error, lost object, short read). Sense 03/11 00. */
  Read: 'TCMU_ERR_BACKEND_READ',
  /** Writing the medium failed (I/O error, short write). Sense 03/0C 00. */
  Write: 'TCMU_ERR_BACKEND_WRITE',
  /** The byte range reaches past `size` (or offset/length is negative or not an integer). Sense 05/21 00. */
  OutOfRange: 'TCMU_ERR_BACKEND_OUT_OF_RANGE',
  /** The operation is not available on this backend (or on this medium, e.g. O_DIRECT refused). Sense 05/20 00 or 05/24 00. */
  Unsupported: 'TCMU_ERR_BACKEND_UNSUPPORTED',
  /** The medium is full: a write or allocation needed space that is not there. Sense 07/27 07 (space allocation failed). */
  NoSpace: 'TCMU_ERR_BACKEND_NO_SPACE',
  /** The backend was closed; no call succeeds after `close()` started. Sense 02/04 00 (not ready). */
  Closed: 'TCMU_ERR_BACKEND_CLOSED',
  /** compareAndWrite found different data; `offset` is the first differing byte, counted from the call's offset. Sense 0E/1D 00. */
  Miscompare: 'TCMU_ERR_BACKEND_MISCOMPARE',
  /** The backend is temporarily unable to serve the call; retrying later may succeed. SCSI status BUSY. */
  Busy: 'TCMU_ERR_BACKEND_BUSY',
  /** The backend gave up waiting for its medium (network, device). Sense 0B/00 00 style retryable abort. */
  Timeout: 'TCMU_ERR_BACKEND_TIMEOUT',
  /** The backend (or a readOnly filter) refuses writes. Sense 07/27 00 (write protected). */
  ReadOnly: 'TCMU_ERR_BACKEND_READ_ONLY',
  /** Offset, length or buffer violate the backend's declared `alignment`, or an argument is malformed. Sense 05/24 00. */
  InvalidArgument: 'TCMU_ERR_BACKEND_INVALID_ARGUMENT',
  /** Opening failed: the path, folder, bucket or device does not exist. */
  NotFound: 'TCMU_ERR_BACKEND_NOT_FOUND',
  /** Opening failed: the process lacks permission to read or write the medium. */
  Permission: 'TCMU_ERR_BACKEND_PERMISSION',
  /** Opening failed: another process (or another backend in this process) already serves this medium. */
  Locked: 'TCMU_ERR_BACKEND_LOCKED',
  /** Opening failed: the existing medium's size differs from the size that was asked for. */
  SizeMismatch: 'TCMU_ERR_BACKEND_SIZE_MISMATCH',
  /** Opening failed for another reason (wrong file type, bad option); the message says which. */
  Open: 'TCMU_ERR_BACKEND_OPEN',
} as const;

export type BackendErrorCode = (typeof BackendErrorCode)[keyof typeof BackendErrorCode];

const knownCodes: ReadonlySet<string> = new Set(Object.values(BackendErrorCode));

export interface BackendErrorOptions {
  /**
   * The byte offset the error concerns. For `TCMU_ERR_BACKEND_MISCOMPARE` it is required and is the
   * offset of the first differing byte relative to the compareAndWrite call's `offset` (what SCSI
   * reports in the sense INFORMATION field). For other codes, an absolute byte offset on the medium
   * when known.
   */
  offset?: number;
  /** The underlying error (an errno error, an HTTP error), kept for diagnostics. */
  cause?: unknown;
}

/**
 * The one error type backends throw (reject with). `code` is stable and is what callers match on;
 * `message` is for humans and may change. Any other thrown value reaching the core is treated as a
 * bug in the backend and mapped to 04/44 00 (internal target failure).
 */
export class BackendError extends Error {
  override readonly name = 'BackendError';
  /** One of {@link BackendErrorCode}. */
  readonly code: BackendErrorCode;
  /** See {@link BackendErrorOptions.offset}. */
  readonly offset: number | undefined;

  constructor(code: BackendErrorCode, message: string, options: BackendErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.offset = options.offset;
  }
}

/**
 * True when `error` is a backend error (from any copy of this package), optionally with the given
 * code. Checks the `code` string, not the class, so it works across duplicated installs.
 */
export function isBackendError(error: unknown, code?: BackendErrorCode): error is BackendError {
  if (!(error instanceof Error)) return false;
  const value = (error as { code?: unknown }).code;
  if (typeof value !== 'string' || !knownCodes.has(value)) return false;
  return code === undefined || value === code;
}
