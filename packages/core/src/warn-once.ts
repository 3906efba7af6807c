import type { Logger } from './types';

/**
 * Logs a warning the first time each `key` is seen and only counts the repeats: for conditions that
 * recur on every command (a full backing file system) and would otherwise flood the log. Returns
 * whether this call logged. One instance per device (or per whatever scope the keys should be unique
 * in); `repeats(key)` tells how many were not logged.
 */
export interface WarnOnce {
  (key: string, context: object, message: string): boolean;
  repeats(key: string): number;
}

export function createWarnOnce(logger: Logger | undefined): WarnOnce {
  const seen = new Map<string, number>();
  const warn = ((key: string, context: object, message: string) => {
    const count = seen.get(key);
    if (count !== undefined) {
      seen.set(key, count + 1);
      return false;
    }
    seen.set(key, 0);
    logger?.warn?.(context, message);
    return true;
  }) as WarnOnce;
  warn.repeats = (key: string) => seen.get(key) ?? 0;
  return warn;
}

/** What kind of backend failure an error is, what the initiator sees, and what the operator can do. */
export interface BackendFailureAdvice {
  /** Stable key: `no-space`, `read-only`, `io-error`, or the BackendError code. */
  readonly kind: string;
  /** One sentence for the operator. */
  readonly advice: string;
}

function errnoOf(error: unknown): string | undefined {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * Classifies a BackendError (code `TCMU_ERR_BACKEND_…`, errno in its `cause`) for the once-only
 * warning: ENOSPC/EDQUOT, EROFS and EIO get specific advice, any other code a generic one.
 */
export function describeBackendFailure(error: unknown): BackendFailureAdvice {
  const code = String((error as { code?: unknown } | undefined)?.code ?? 'unknown');
  const errno = errnoOf((error as { cause?: unknown } | undefined)?.cause);
  if (code === 'TCMU_ERR_BACKEND_NO_SPACE' || errno === 'ENOSPC' || errno === 'EDQUOT')
    return {
      kind: 'no-space',
      advice:
        'the backing file system is full (or over quota): free space or grow it; until then writes fail with 07/27 07 (space allocation failed)',
    };
  if (code === 'TCMU_ERR_BACKEND_READ_ONLY' || errno === 'EROFS')
    return {
      kind: 'read-only',
      advice:
        'the backing storage is read-only (a file system remounted read-only after errors?): check dmesg, repair it and remount it read-write; until then writes fail with 07/27 00 (write protected)',
    };
  if (errno === 'EIO')
    return {
      kind: 'io-error',
      advice:
        "the backing storage reports I/O errors: check dmesg and the disk's health; the initiator sees medium errors (reads 03/11 00, writes 03/0C 00)",
    };
  if (code === 'TCMU_ERR_BACKEND_TIMEOUT')
    return {
      kind: code,
      advice:
        'the backend timed out: check that its storage is reachable; commands fail with 0B/00 00 and initiators retry them',
    };
  return { kind: code, advice: 'the backend failed; the initiator gets the mapped CHECK CONDITION' };
}
