/**
 * Every failure this package reports is a {@link ConfigfsError} with a stable `code`. Match on `code`,
 * not on `instanceof`: two copies of the package may be loaded at once.
 */
export type ConfigfsErrorCode =
  /** The process is not root (configfs and sysfs writes need CAP_SYS_ADMIN). */
  | 'TCMU_ERR_NOT_ROOT'
  /** configfs is not mounted where expected; `mountConfigfs()` mounts it. */
  | 'TCMU_ERR_CONFIGFS_NOT_MOUNTED'
  /** A kernel module is missing and could not be loaded (`modules` on the error says which). */
  | 'TCMU_ERR_MODULE_MISSING'
  /** The running kernel lacks a feature this call needs (`feature` on the error says which). */
  | 'TCMU_ERR_KERNEL_FEATURE_MISSING'
  /** A name (device, HBA, WWN, LUN, serial, attribute, link) is not acceptable; nothing was created. */
  | 'TCMU_ERR_INVALID_NAME'
  /** A numeric or other argument is out of range; nothing was created. */
  | 'TCMU_ERR_INVALID_ARGUMENT'
  /** The device (or LUN, or target) already exists in configfs. */
  | 'TCMU_ERR_ALREADY_EXISTS'
  /** The device named does not exist in configfs. */
  | 'TCMU_ERR_NOT_FOUND'
  /** The configfs entry exists but was not created by this toolkit (or by this process): left alone. */
  | 'TCMU_ERR_NOT_OWNER'
  /** The device belongs to a live process; it is not stale. */
  | 'TCMU_ERR_DEVICE_IN_USE'
  /** The kernel did not produce the uio device or the SCSI disk in time. */
  | 'TCMU_ERR_TIMEOUT'
  /** A configfs or sysfs operation failed (`path`, `operation` and `cause` on the error say which). */
  | 'TCMU_ERR_CONFIGFS_IO'
  /** The object was removed already (e.g. `resize()` after `remove()`). */
  | 'TCMU_ERR_REMOVED';

export interface ConfigfsErrorDetails {
  /** The configfs/sysfs path involved, when there is one. */
  path?: string;
  /** The operation that failed: `mkdir`, `write`, `symlink`, `modprobe`, … */
  operation?: string;
  /** For TCMU_ERR_MODULE_MISSING: the modules that are still missing. */
  modules?: readonly string[];
  /** For TCMU_ERR_KERNEL_FEATURE_MISSING: the feature (attribute) that is missing. */
  feature?: string;
  /** Errors raised while rolling back a failed creation (the creation error is the main one). */
  rollbackErrors?: readonly Error[];
  cause?: unknown;
}

export class ConfigfsError extends Error {
  override readonly name = 'ConfigfsError';
  readonly code: ConfigfsErrorCode;
  readonly path: string | undefined;
  readonly operation: string | undefined;
  readonly modules: readonly string[] | undefined;
  readonly feature: string | undefined;
  readonly rollbackErrors: readonly Error[] | undefined;

  constructor(code: ConfigfsErrorCode, message: string, details: ConfigfsErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.path = details.path;
    this.operation = details.operation;
    this.modules = details.modules;
    this.feature = details.feature;
    this.rollbackErrors = details.rollbackErrors;
  }
}

/** True when `error` is a ConfigfsError (from any loaded copy of this package), optionally with `code`. */
export function isConfigfsError(error: unknown, code?: ConfigfsErrorCode): error is ConfigfsError {
  if (typeof error !== 'object' || error === null) return false;
  const c = (error as { code?: unknown }).code;
  if ((error as { name?: unknown }).name !== 'ConfigfsError' || typeof c !== 'string') return false;
  return code === undefined || c === code;
}

/** The errno code (`ENOENT`, …) of a Node system error, if any. */
export function errnoCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('E')) return code;
  }
  return undefined;
}

/** Wraps a system error from a configfs/sysfs operation into TCMU_ERR_CONFIGFS_IO. */
export function ioError(operation: string, path: string, cause: unknown): ConfigfsError {
  if (isConfigfsError(cause)) return cause;
  const errno = errnoCode(cause) ?? 'error';
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new ConfigfsError('TCMU_ERR_CONFIGFS_IO', `${operation} ${path} failed (${errno}): ${detail}`, {
    path,
    operation,
    cause,
  });
}
