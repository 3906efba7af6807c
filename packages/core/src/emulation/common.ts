import { type Backend, isBackendError, type LockRange } from '@tcmu/backend';
import { invalidFieldInCdb, lbaOutOfRange, type SenseInfo, writeProtected } from '@tcmu/scsi';
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

/**
 * Stops a building block with CHECK CONDITION and `sense`: use inside {@link respondOnError} (or a
 * block that calls it), which turns the throw into the response.
 */
export function fail(sense: SenseInfo): never {
  throw new ScsiOutcome(checkCondition(sense));
}

/**
 * Runs a building block body, turning a {@link fail} into its response and a backend error into its
 * mapped sense (`lba` goes into INFORMATION for medium errors); anything else is a bug and rejects
 * (the core answers 04/44 00 and counts it in `stats.handlerFailures`).
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
 * What {@link respondOnError} answers for a thrown value: the response of a {@link fail}, the mapped
 * sense of a backend error (`responseForError`, the one mapping); anything else (a bug) is rethrown.
 */
export function responseForThrown(error: unknown, lba?: bigint): ScsiResponse {
  if (error instanceof ScsiOutcome) return error.response;
  if (isBackendError(error)) return responseForError(error, lba);
  throw error;
}

/** {@link fail}s with 05/21 00 unless [lba, lba + blocks) lies inside the medium (0 blocks: lba must exist). */
export function checkLbaRange(device: DeviceContext, lba: bigint, blocks: number | bigint): void {
  const count = BigInt(blocks);
  if (lba >= device.blockCount || lba + count > device.blockCount) fail(lbaOutOfRange(lba));
}

/** {@link fail}s with 07/27 00 when the device is read-only. */
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

/** True when a write must be followed by a flush: `force` (FUA) or the write cache disabled (WCE = 0), and the backend can. */
export function needsFlush(device: DeviceContext, backend: Backend, force: boolean): boolean {
  return (force || !device.writeCacheEnabled) && backend.flush !== undefined;
}

/** Flushes when {@link needsFlush} says so. */
export async function flushIfNeeded(device: DeviceContext, backend: Backend, force: boolean): Promise<void> {
  if (needsFlush(device, backend, force)) await backend.flush!();
}

/**
 * The lock range of `blocks` blocks at `lba` (checked against the medium first), in numbers: every
 * site locks in the same unit, and numbers compare without BigInt's allocations (exact for any
 * medium below 2^53 blocks).
 */
export function blockRange(lba: bigint | number, blocks: bigint | number): LockRange {
  return { start: Number(lba), length: Number(blocks) };
}
