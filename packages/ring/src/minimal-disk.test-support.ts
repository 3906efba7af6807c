// A deliberately small SCSI disk for the ring's own tests (the real emulation lives in @tcmu/core):
// enough to satisfy the Linux sd probe and to read and write blocks of a Buffer. Hand-built bytes.

import { scatterCopyFrom, scatterCopyTo } from '@tcmu/backend';
import type { Ring } from './ring';
import type { RingCommand } from './types';

export interface MinimalDisk {
  /** The disk's bytes. */
  readonly data: Buffer;
  readonly blockSize: number;
  /** Serve one command: complete it on `ring`. Returns what it did (for traces). */
  handle(ring: Ring, command: RingCommand): HandledCommand;
}

export interface HandledCommand {
  opcode: number;
  cdbLength: number;
  direction: 'in' | 'out' | 'none';
  status: number;
}

const GOOD = 0;
const CHECK_CONDITION = 2;

/** Fixed-format sense data (18 bytes). */
export function fixedSense(key: number, asc: number, ascq: number): Uint8Array {
  const sense = new Uint8Array(18);
  sense[0] = 0x70;
  sense[2] = key;
  sense[7] = 10;
  sense[12] = asc;
  sense[13] = ascq;
  return sense;
}

/** CDB length from the group code of the opcode (SPC-4 4.2.5.1). */
export function cdbLength(opcode: number): number {
  const group = opcode >> 5;
  if (group === 0) return 6;
  if (group === 1 || group === 2) return 10;
  if (group === 4) return 16;
  if (group === 5) return 12;
  return 16;
}

const ascii = (text: string, length: number) =>
  Buffer.from(text.padEnd(length, ' ').slice(0, length), 'latin1');

export function minimalDisk(size: number, blockSize = 512, serial = 'ring-test'): MinimalDisk {
  const data = Buffer.alloc(size);
  const blocks = size / blockSize;

  function dataIn(ring: Ring, command: RingCommand, bytes: Uint8Array, allocation: number): HandledCommand {
    const length = Math.min(bytes.length, allocation, command.dataLength);
    scatterCopyFrom(command.iovecs, 0, bytes.subarray(0, length));
    ring.complete(command.id, { status: GOOD, readLength: length });
    return { opcode: command.cdb[0]!, cdbLength: cdbLength(command.cdb[0]!), direction: 'in', status: GOOD };
  }

  function fail(ring: Ring, command: RingCommand, key: number, asc: number, ascq: number): HandledCommand {
    ring.complete(command.id, { status: CHECK_CONDITION, sense: fixedSense(key, asc, ascq), readLength: 0 });
    const opcode = command.cdb[0]!;
    const direction = command.dataLength === 0 ? 'none' : opcode === 0x2a || opcode === 0x8a ? 'out' : 'in';
    return { opcode, cdbLength: cdbLength(opcode), direction, status: 2 };
  }

  function inquiry(ring: Ring, command: RingCommand, cdb: DataView): HandledCommand {
    const allocation = cdb.getUint16(3);
    if ((command.cdb[1]! & 1) === 0) {
      if (command.cdb[2] !== 0) return fail(ring, command, 5, 0x24, 0);
      const standard = Buffer.alloc(36);
      standard[2] = 6; // SPC-4
      standard[3] = 2; // response data format
      standard[4] = 31;
      standard[7] = 0x02; // CmdQue
      ascii('TCMU-TS', 8).copy(standard, 8);
      ascii('ring kernel test', 16).copy(standard, 16);
      ascii('0001', 4).copy(standard, 32);
      return dataIn(ring, command, standard, allocation);
    }
    const page = command.cdb[2]!;
    if (page === 0x00) return dataIn(ring, command, Uint8Array.of(0, 0, 0, 2, 0x00, 0x80), allocation);
    if (page === 0x80) {
      const text = Buffer.from(serial, 'latin1');
      return dataIn(ring, command, Buffer.concat([Buffer.from([0, 0x80, 0, text.length]), text]), allocation);
    }
    return fail(ring, command, 5, 0x24, 0);
  }

  function transfer(
    ring: Ring,
    command: RingCommand,
    lba: number,
    count: number,
    write: boolean,
  ): HandledCommand {
    const opcode = command.cdb[0]!;
    if (lba + count > blocks) return fail(ring, command, 5, 0x21, 0);
    const offset = lba * blockSize;
    const length = Math.min(count * blockSize, command.dataLength);
    if (write) scatterCopyTo(command.iovecs, 0, data.subarray(offset, offset + length));
    else scatterCopyFrom(command.iovecs, 0, data.subarray(offset, offset + length));
    ring.complete(command.id, { status: GOOD });
    return {
      opcode,
      cdbLength: cdbLength(opcode),
      direction: count === 0 ? 'none' : write ? 'out' : 'in',
      status: 0,
    };
  }

  return {
    data,
    blockSize,
    handle(ring, command) {
      const cdb = new DataView(command.cdb.buffer, command.cdb.byteOffset, command.cdb.byteLength);
      const opcode = command.cdb[0]!;
      const none = (): HandledCommand => {
        ring.complete(command.id, { status: GOOD });
        return { opcode, cdbLength: cdbLength(opcode), direction: 'none', status: GOOD };
      };
      switch (opcode) {
        case 0x00: // TEST UNIT READY
        case 0x35: // SYNCHRONIZE CACHE(10)
        case 0x91: // SYNCHRONIZE CACHE(16)
          return none();
        case 0x12:
          return inquiry(ring, command, cdb);
        case 0x25: {
          // READ CAPACITY(10)
          const out = Buffer.alloc(8);
          out.writeUInt32BE(Math.min(blocks - 1, 0xffffffff), 0);
          out.writeUInt32BE(blockSize, 4);
          return dataIn(ring, command, out, 8);
        }
        case 0x9e: {
          if ((command.cdb[1]! & 0x1f) !== 0x10) return fail(ring, command, 5, 0x24, 0);
          const out = Buffer.alloc(32); // READ CAPACITY(16)
          out.writeBigUInt64BE(BigInt(blocks - 1), 0);
          out.writeUInt32BE(blockSize, 8);
          return dataIn(ring, command, out, cdb.getUint32(10));
        }
        case 0x1a: // MODE SENSE(6): header only, no block descriptors, no pages
          return dataIn(ring, command, Uint8Array.of(3, 0, 0, 0), command.cdb[4]!);
        case 0x5a: // MODE SENSE(10)
          return dataIn(ring, command, Uint8Array.of(0, 6, 0, 0, 0, 0, 0, 0), cdb.getUint16(7));
        case 0x28:
          return transfer(ring, command, cdb.getUint32(2), cdb.getUint16(7), false);
        case 0x2a:
          return transfer(ring, command, cdb.getUint32(2), cdb.getUint16(7), true);
        case 0x88:
          return transfer(ring, command, Number(cdb.getBigUint64(2)), cdb.getUint32(10), false);
        case 0x8a:
          return transfer(ring, command, Number(cdb.getBigUint64(2)), cdb.getUint32(10), true);
        default: // REPORT SUPPORTED OPERATION CODES and everything else: INVALID COMMAND OPERATION CODE
          return fail(ring, command, 5, 0x20, 0);
      }
    },
  };
}
