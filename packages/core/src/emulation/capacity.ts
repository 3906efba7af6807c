import {
  encodeReadCapacity10,
  encodeReadCapacity16,
  invalidFieldInCdb,
  type ReadCapacity10Cdb,
  type ReadCapacity16Cdb,
} from '@tcmu/scsi';
import { checkCondition } from '../response';
import type { ScsiCommand, ScsiResponse } from '../types';
import { respondWithData } from './inquiry';

/**
 * READ CAPACITY(10): last LBA (0xFFFFFFFF when the medium has 2^32 blocks or more, telling the
 * initiator to use READ CAPACITY(16)) and the block length. PMI = 0 with a nonzero LBA is 05/24 00.
 */
export function emulateReadCapacity10(command: ScsiCommand<ReadCapacity10Cdb>): ScsiResponse {
  const cdb = command.decoded;
  if (!cdb.pmi && cdb.lba !== 0n) return checkCondition(invalidFieldInCdb(2));
  const { device } = command;
  return respondWithData(
    command,
    encodeReadCapacity10({ lastLba: device.blockCount - 1n, blockLength: device.blockSize }),
  );
}

/**
 * READ CAPACITY(16): last LBA, block length, and LBPME/LBPRZ when the backend can deallocate
 * (unmapped blocks read as zeros), truncated to the allocation length.
 */
export function emulateReadCapacity16(command: ScsiCommand<ReadCapacity16Cdb>): ScsiResponse {
  const cdb = command.decoded;
  if (!cdb.pmi && cdb.lba !== 0n) return checkCondition(invalidFieldInCdb(2));
  const { device } = command;
  const thin = device.capabilities.unmap;
  return respondWithData(
    command,
    encodeReadCapacity16(
      {
        lastLba: device.blockCount - 1n,
        blockLength: device.blockSize,
        provisioningManagement: thin,
        readZeros: thin,
      },
      cdb.allocationLength,
    ),
  );
}
