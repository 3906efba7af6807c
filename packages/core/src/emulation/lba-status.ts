import type { AllocationExtent, Backend } from '@tcmu/backend';
import {
  encodeLbaStatus,
  type GetLbaStatusCdb,
  invalidFieldInCdb,
  type LbaStatusDescriptor,
  lbaOutOfRange,
  ProvisioningStatus,
} from '@tcmu/scsi';
import type { ScsiCommand, ScsiResponse } from '../types';
import { fail, respondOnError } from './common';
import { respondWithData } from './inquiry';

/** Largest range asked of the backend's getAllocation per GET LBA STATUS, in bytes. */
const windowBytes = 1024 * 1024 * 1024;
const maxDescriptorBlocks = 0xffff_ffff;

/**
 * Turns byte extents into block runs starting at `lba`: a block is deallocated only when it lies
 * entirely inside deallocated extents; anything else is mapped.
 */
export function blockRuns(
  extents: readonly AllocationExtent[],
  lba: bigint,
  blocks: number,
  blockSize: number,
): { lba: bigint; blocks: number; deallocated: boolean }[] {
  const base = Number(lba) * blockSize;
  const deallocated: [number, number][] = [];
  for (const e of extents) {
    if (e.state !== 'deallocated') continue;
    const start = Math.max(0, Math.ceil((e.offset - base) / blockSize));
    const end = Math.min(blocks, Math.floor((e.offset + e.length - base) / blockSize));
    if (end <= start) continue;
    const last = deallocated[deallocated.length - 1];
    if (last && last[1] >= start) last[1] = Math.max(last[1], end);
    else deallocated.push([start, end]);
  }
  const runs: { lba: bigint; blocks: number; deallocated: boolean }[] = [];
  let at = 0;
  for (const [start, end] of deallocated) {
    if (start > at) runs.push({ lba: lba + BigInt(at), blocks: start - at, deallocated: false });
    runs.push({ lba: lba + BigInt(start), blocks: end - start, deallocated: true });
    at = end;
  }
  if (at < blocks) runs.push({ lba: lba + BigInt(at), blocks: blocks - at, deallocated: false });
  return runs;
}

function wanted(reportType: number, deallocated: boolean): boolean {
  switch (reportType) {
    case 0:
      return true;
    case 1:
    case 3:
      return deallocated;
    case 2:
      return !deallocated;
    default:
      return false; // 4: anchored (never, this device does not anchor)
  }
}

/**
 * GET LBA STATUS: from the STARTING LBA, the mapped and deallocated runs as the backend reports
 * them (`getAllocation`; without it everything is mapped), as many descriptors as fit the
 * allocation length (at most 1 GiB of the medium is examined per command). REPORT TYPE 0..4 filters
 * the descriptors; others are 05/24 00. A starting LBA past the end is 05/21 00.
 */
export function emulateGetLbaStatus(
  command: ScsiCommand<GetLbaStatusCdb>,
  backend: Backend,
): Promise<ScsiResponse> {
  const cdb = command.decoded;
  return respondOnError(async () => {
    const { device } = command;
    if (cdb.lba >= device.blockCount) fail(lbaOutOfRange(cdb.lba));
    if (cdb.reportType > 4) fail(invalidFieldInCdb(14));
    const blockSize = device.blockSize;
    const remaining = device.blockCount - cdb.lba;
    const maxDescriptors = Math.max(1, Math.floor((cdb.allocationLength - 8) / 16));
    let runs: { lba: bigint; blocks: number; deallocated: boolean }[];
    if (backend.getAllocation) {
      const blocks = Number(
        remaining < BigInt(windowBytes / blockSize) ? remaining : BigInt(windowBytes / blockSize),
      );
      const extents = await backend.getAllocation(Number(cdb.lba) * blockSize, blocks * blockSize);
      runs = blockRuns(extents, cdb.lba, blocks, blockSize);
    } else {
      runs = [
        {
          lba: cdb.lba,
          blocks: Number(remaining > BigInt(maxDescriptorBlocks) ? BigInt(maxDescriptorBlocks) : remaining),
          deallocated: false,
        },
      ];
    }
    const descriptors: LbaStatusDescriptor[] = [];
    for (const run of runs) {
      if (descriptors.length >= maxDescriptors) break;
      if (!wanted(cdb.reportType, run.deallocated)) continue;
      descriptors.push({
        lba: run.lba,
        length: Math.min(run.blocks, maxDescriptorBlocks),
        status: run.deallocated ? ProvisioningStatus.Deallocated : ProvisioningStatus.Mapped,
      });
    }
    return respondWithData(command, encodeLbaStatus(descriptors, cdb.allocationLength));
  }, cdb.lba);
}
