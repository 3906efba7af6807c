/** Stable codes of the errors @tcmu/core throws. Match by `code`, never by class or message. */
export const CoreErrorCode = {
  /** An option passed to openDevice/serveRing is missing or invalid; the message names it. */
  InvalidOption: 'TCMU_ERR_CORE_INVALID_OPTION',
  /** The device is closed (or closing) and cannot do what was asked. */
  Closed: 'TCMU_ERR_CORE_CLOSED',
  /** openDevice failed part-way; everything it had created was removed again. `cause` says why. */
  Open: 'TCMU_ERR_CORE_OPEN',
  /** resize() failed (backend refused, or not a whole number of blocks); the device kept its size. */
  Resize: 'TCMU_ERR_CORE_RESIZE',
  /** The backend cannot do what the device was asked to do (for example resize without `resize`). */
  Unsupported: 'TCMU_ERR_CORE_UNSUPPORTED',
} as const;

export type CoreErrorCode = (typeof CoreErrorCode)[keyof typeof CoreErrorCode];

/** The errors @tcmu/core throws (SCSI outcomes are never exceptions: they are responses). */
export class CoreError extends Error {
  override readonly name = 'CoreError';
  readonly code: CoreErrorCode;

  constructor(code: CoreErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

/** True when `error` is a CoreError (from any copy of this package), optionally with `code`. */
export function isCoreError(error: unknown, code?: CoreErrorCode): error is CoreError {
  if (!(error instanceof Error)) return false;
  const value = (error as { code?: unknown }).code;
  if (typeof value !== 'string' || !value.startsWith('TCMU_ERR_CORE_')) return false;
  return code === undefined || value === code;
}
