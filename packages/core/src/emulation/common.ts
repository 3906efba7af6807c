import type { Backend } from '@tcmu/backend';
import { hardwareError, invalidFieldInCdb, lbaOutOfRange, type SenseInfo, writeProtected } from '@tcmu/scsi';
import type { DeviceContext } from '../device';
import { checkCondition, responseForError } from '../response';
import type { ScsiCommand, ScsiResponse } from '../types';

/** Bytes moved per backend call by operations that loop over a range (VERIFY, WRITE SAME, FORMAT). */
export const chunkBytes = 1024 * 1024;

/** Thrown inside a building block to answer with a given response (caught by `respondOnError`). */
export class ScsiOutcome extends Error {
  constructor(readonly response: ScsiResponse) {
    super('SCSI outcome');
  }
}

/** Stops a building block with CHECK CONDITION and `sense`. */
export function fail(sense: SenseInfo): never {
  throw new ScsiOutcome(checkCondition(sense));
}

/** The device's backend, or 04/44 00 when the device was served without one. */
export function backendOf(command: ScsiCommand): Backend {
  const backend = command.device.backend;
  if (!backend) fail(hardwareError());
  return backend;
}

/**
 * Runs a building block body, turning a thrown {@link ScsiOutcome} into its response and a backend
 * error into its mapped sense (`lba` goes into INFORMATION for medium errors).
 */
export async function respondOnError(
  body: () => Promise<ScsiResponse> | ScsiResponse,
  lba?: bigint,
): Promise<ScsiResponse> {
  try {
    return await body();
  } catch (error) {
    return responseForThrown(error, lba);
  }
}

/**
 * What {@link respondOnError} answers for a thrown value: the response of a {@link ScsiOutcome},
 * the mapped sense of a backend error; anything else (a bug) is rethrown.
 */
export function responseForThrown(error: unknown, lba?: bigint): ScsiResponse {
  if (error instanceof ScsiOutcome) return error.response;
  if (isBackendLike(error)) return responseForError(error, lba);
  throw error;
}

function isBackendLike(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && code.startsWith('TCMU_ERR_BACKEND_');
}

/** 05/21 00 unless [lba, lba + blocks) lies inside the medium (with 0 blocks: lba must exist). */
export function checkRange(device: DeviceContext, lba: bigint, blocks: number | bigint): void {
  const count = BigInt(blocks);
  if (lba >= device.blockCount || lba + count > device.blockCount) fail(lbaOutOfRange(lba));
}

/** 07/27 00 when the device is read-only. */
export function checkWritable(device: DeviceContext): void {
  if (device.readOnly) fail(writeProtected());
}

/** Byte offset of the TRANSFER LENGTH / NUMBER OF LOGICAL BLOCKS field by CDB length. */
export function transferLengthByte(cdbLength: number): number {
  switch (cdbLength) {
    case 6:
      return 4;
    case 10:
      return 7;
    case 12:
      return 6;
    default:
      return 10;
  }
}

/** 05/24 00 pointing at the transfer length when `blocks` exceeds `max`. */
export function checkTransferLimit(command: ScsiCommand, blocks: number, max: number): void {
  if (blocks > max) fail(invalidFieldInCdb(transferLengthByte(command.cdb.length)));
}

/**
 * 05/24 00 when the kernel's data buffer is shorter than the transfer the CDB asks for (the
 * initiator's buffer and the CDB disagree).
 */
export function checkDataLength(command: ScsiCommand, bytes: number): void {
  if (command.dataLength < bytes) fail(invalidFieldInCdb(transferLengthByte(command.cdb.length)));
}

/** Flushes when `force` (FUA) or the write cache is disabled (WCE = 0), if the backend can. */
export async function flushIfNeeded(device: DeviceContext, backend: Backend, force: boolean): Promise<void> {
  if ((force || !device.writeCacheEnabled) && backend.flush) await backend.flush();
}
