import { errnoName, libc } from '@tcmu/libc';

/** Stable error codes of @tcmu/ring. Match errors by `code`, never by class identity or message. */
export type RingErrorCode =
  /** The uio device (or its sysfs entry) does not exist. */
  | 'TCMU_ERR_RING_NOT_FOUND'
  /** open/read/mmap/write on the uio device failed (the message has the errno name). */
  | 'TCMU_ERR_RING_IO'
  /** The mailbox is not one this package understands (version, offsets, sizes, missing CAP_OOOC). */
  | 'TCMU_ERR_RING_UNSUPPORTED'
  /** The kernel wrote an entry the ring cannot walk past (bad length, bad cmd_head): the ring stops consuming. */
  | 'TCMU_ERR_RING_CORRUPT'
  /** One command entry is malformed (iovecs or CDB outside the mapping): it was completed with UNKNOWN_OP. */
  | 'TCMU_ERR_RING_MALFORMED_ENTRY'
  /** An entry of an operation this package does not know: flagged UNKNOWN_OP and skipped. */
  | 'TCMU_ERR_RING_UNKNOWN_ENTRY'
  /** `complete()` for an id that is not in flight (never handed out, or already completed). */
  | 'TCMU_ERR_RING_UNKNOWN_COMMAND'
  /** A completion argument is invalid (status out of range, sense too long, negative readLength). */
  | 'TCMU_ERR_RING_INVALID_COMPLETION'
  /** A command handler threw: the command was completed with UNKNOWN_OP (CHECK CONDITION by the kernel). */
  | 'TCMU_ERR_RING_HANDLER'
  /** The ring is closed (or closing). */
  | 'TCMU_ERR_RING_CLOSED'
  /** `start()` was called twice. */
  | 'TCMU_ERR_RING_STARTED'
  /** The simulated kernel found a completion it cannot reap and marked the ring broken. */
  | 'TCMU_ERR_RING_BROKEN'
  /** The simulated kernel aborted a queued command (task management). */
  | 'TCMU_ERR_RING_ABORTED'
  /** Invalid argument to a public function (options). */
  | 'TCMU_ERR_RING_INVALID_ARGUMENT';

/** Every error this package throws or reports. */
export class RingError extends Error {
  override name = 'RingError';
  readonly code: RingErrorCode;
  /** The errno name (e.g. `EBUSY`) when a system call failed. */
  readonly errno?: string;
  /** The uio path or device the error is about, when there is one. */
  readonly device?: string;

  constructor(
    code: RingErrorCode,
    message: string,
    options: { errno?: string; device?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options.errno !== undefined) this.errno = options.errno;
    if (options.device !== undefined) this.device = options.device;
  }
}

/** True if `error` is a RingError (or a copy from another instance of this package) with `code`. */
export function isRingError(error: unknown, code?: RingErrorCode): error is RingError {
  if (typeof error !== 'object' || error === null) return false;
  const c = (error as { code?: unknown }).code;
  return typeof c === 'string' && c.startsWith('TCMU_ERR_RING_') && (code === undefined || c === code);
}

/** A RingError for a failed system call, with the errno name in message and field. */
export function systemError(code: RingErrorCode, what: string, device?: string): RingError {
  const name = errnoName(libc().errno());
  return new RingError(code, `${what} failed: ${name}${device ? ` (${device})` : ''}`, {
    errno: name,
    ...(device === undefined ? {} : { device }),
  });
}
