import {
  checkCondition,
  createEmulation,
  handlerFunction,
  respondWithData,
  type ScsiHandler,
} from '@tcmu/core';
import { ScsiStatus } from '@tcmu/scsi';

/** The vendor-specific opcode this target adds: returns its counters (8 bytes, big-endian). */
export const READ_COUNTERS_OPCODE = 0xc0;

export interface Counters {
  /** READ commands completed with GOOD status. */
  reads: number;
  /** WRITE commands completed with GOOD status. */
  writes: number;
  /** WRITEs refused because they touched the protected first block. */
  refused: number;
}

/**
 * A custom SCSI target in three moves: the standard SBC/SPC emulation (`createEmulation`) plus one
 * vendor command, wrapped by a handler function that applies a policy before the emulation (block 0
 * is write-protected: DATA PROTECT / WRITE PROTECTED) and counts what the emulation served after it.
 */
export function createCountingHandler(): { handler: ScsiHandler; counters: Counters } {
  const counters: Counters = { reads: 0, writes: 0, refused: 0 };
  const emulation = createEmulation({
    commands: [
      {
        name: 'READ COUNTERS (vendor)',
        opcode: READ_COUNTERS_OPCODE,
        handle: (command) => {
          const page = new Uint8Array(12);
          const view = new DataView(page.buffer);
          view.setUint32(0, counters.reads);
          view.setUint32(4, counters.writes);
          view.setUint32(8, counters.refused);
          return respondWithData(command, page);
        },
      },
    ],
  });
  const handler = handlerFunction(async (command) => {
    const { decoded } = command;
    const isWrite = decoded.ok && decoded.name.startsWith('WRITE(');
    if (isWrite && (decoded as { lba: bigint }).lba === 0n) {
      counters.refused += 1;
      // DATA PROTECT, ASC/ASCQ 27/00 WRITE PROTECTED: the initiator reports a read-only block.
      return checkCondition({ key: 0x07, asc: 0x27, ascq: 0x00 });
    }
    const response = await emulation.handle(command);
    if (response.status === ScsiStatus.Good && decoded.ok) {
      if (decoded.name.startsWith('READ(')) counters.reads += 1;
      if (isWrite) counters.writes += 1;
    }
    return response;
  });
  return { handler, counters };
}
