import type { DecodedCommand } from './cdb-types';

/**
 * Bytes of data the command transfers (data-out or data-in, see `direction`), as the CDB implies it
 * for a device with `blockLength`-byte blocks: READ/WRITE/WRITE AND VERIFY n blocks; COMPARE AND WRITE
 * 2n blocks; WRITE SAME one block (0 with NDOB); VERIFY 0 (BYTCHK 0), n blocks (1) or one block (3);
 * parameter-list commands their PARAMETER LIST LENGTH; data-in commands their ALLOCATION LENGTH
 * (the most the initiator accepts). FORMAT UNIT's list length is not in its CDB: `undefined`.
 * The result may exceed Number.MAX_SAFE_INTEGER only for absurd inputs (2^32 blocks × large blocks): it
 * is a plain number, compare it against the buffer the kernel gave.
 */
export function dataTransferLength(cdb: DecodedCommand, blockLength: number): number | undefined {
  switch (cdb.name) {
    case 'READ(6)':
    case 'READ(10)':
    case 'READ(12)':
    case 'READ(16)':
    case 'WRITE(6)':
    case 'WRITE(10)':
    case 'WRITE(12)':
    case 'WRITE(16)':
    case 'WRITE AND VERIFY(10)':
    case 'WRITE AND VERIFY(16)':
      return cdb.transferLength * blockLength;
    case 'COMPARE AND WRITE':
      return 2 * cdb.transferLength * blockLength;
    case 'WRITE SAME(10)':
    case 'WRITE SAME(16)':
      return cdb.ndob ? 0 : blockLength;
    case 'VERIFY(10)':
    case 'VERIFY(16)':
      return cdb.bytchk === 0 ? 0 : cdb.bytchk === 3 ? blockLength : cdb.transferLength * blockLength;
    case 'FORMAT UNIT':
      return cdb.fmtdata ? undefined : 0;
    case 'TEST UNIT READY':
    case 'START STOP UNIT':
    case 'PREVENT ALLOW MEDIUM REMOVAL':
    case 'SYNCHRONIZE CACHE(10)':
    case 'SYNCHRONIZE CACHE(16)':
      return 0;
    case 'READ CAPACITY(10)':
      return 8;
    default:
      if ('parameterListLength' in cdb) return cdb.parameterListLength;
      if ('allocationLength' in cdb) return cdb.allocationLength;
      return 0;
  }
}
