import { isBackendError } from '@tcmu/backend';
import {
  abortedCommand,
  hardwareError,
  invalidOpcode,
  lbaOutOfRange,
  miscompare,
  ScsiStatus,
  type SenseInfo,
  sense,
  spaceAllocationFailed,
  unrecoveredReadError,
  writeError,
  writeProtected,
} from '@tcmu/scsi';
import type { ScsiResponse } from './types';

/** GOOD status; `dataInLength` = valid data-in bytes for data-in commands. */
export function good(dataInLength?: number): ScsiResponse {
  return dataInLength === undefined ? { status: ScsiStatus.Good } : { status: ScsiStatus.Good, dataInLength };
}

/** CHECK CONDITION with sense (fields, encoded in the device's sense format, or raw bytes). */
export function checkCondition(senseData: SenseInfo | Uint8Array): ScsiResponse {
  return { status: ScsiStatus.CheckCondition, sense: senseData };
}

/** A status without sense or data (BUSY, TASK SET FULL, RESERVATION CONFLICT…). */
export function statusOnly(status: number): ScsiResponse {
  return { status };
}

/** Which kind of backend call failed: decides the sense of errors that carry no specific meaning. */
export type BackendOperationKind = 'read' | 'write' | 'other';

/**
 * The response for an error thrown by a backend call (or a handler). BackendError codes map as the
 * backend contract documents (read 03/11 00, write 03/0C 00, out of range 05/21 00, no space
 * 07/27 07, read-only 07/27 00, miscompare 0E/1D 00, busy → BUSY status, timeout 0B/00 00, closed
 * 02/04 00, unsupported 05/20 00, invalid argument 05/24 00); anything else is 04/44 00.
 * `lba` (the first block of the failed range) goes into INFORMATION for medium errors.
 */
export function responseForError(error: unknown, lba?: bigint): ScsiResponse {
  if (!isBackendError(error)) return checkCondition(hardwareError());
  return { ...backendErrorResponse(error, lba), error };
}

function backendErrorResponse(error: { code: string; offset?: number }, lba?: bigint): ScsiResponse {
  switch (error.code) {
    case 'TCMU_ERR_BACKEND_READ':
      return checkCondition(unrecoveredReadError(lba));
    case 'TCMU_ERR_BACKEND_WRITE':
      return checkCondition(writeError(lba));
    case 'TCMU_ERR_BACKEND_OUT_OF_RANGE':
      return checkCondition(lbaOutOfRange(lba));
    case 'TCMU_ERR_BACKEND_NO_SPACE':
      return checkCondition(spaceAllocationFailed());
    case 'TCMU_ERR_BACKEND_READ_ONLY':
      return checkCondition(writeProtected());
    case 'TCMU_ERR_BACKEND_MISCOMPARE':
      return checkCondition(miscompare(error.offset ?? 0));
    case 'TCMU_ERR_BACKEND_BUSY':
      return statusOnly(ScsiStatus.Busy);
    case 'TCMU_ERR_BACKEND_TIMEOUT':
      return checkCondition(abortedCommand());
    case 'TCMU_ERR_BACKEND_CLOSED':
      return checkCondition(sense(0x02, 0x04, 0x00));
    case 'TCMU_ERR_BACKEND_UNSUPPORTED':
      return checkCondition(invalidOpcode());
    case 'TCMU_ERR_BACKEND_INVALID_ARGUMENT':
      return checkCondition(sense(0x05, 0x24, 0x00));
    default:
      return checkCondition(hardwareError());
  }
}
