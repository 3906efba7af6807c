import type { DecodedCdb, DecodedCommand, RejectedCdb } from './cdb-types';
import {
  type CommandSpec,
  cdbLengthForOpcode,
  type FieldSpec,
  otherOpcodeNames,
  serviceActionOpcodes,
  specsForOpcode,
  variableLengthNames,
} from './command-table';
import { invalidFieldInCdb, invalidOpcode, type SenseInfo } from './sense';

/** Control byte bits that must be zero: reserved 5:3, NACA (2), LINK (0). Bits 7:6 vendor, 1 obsolete. */
const CONTROL_REJECT = 0x3d;

function leftmostBit(mask: number): number {
  return 31 - Math.clz32(mask);
}

function readUint(cdb: Uint8Array, byte: number, length: number): number {
  let v = 0;
  for (let i = 0; i < length; i++) v = v * 256 + cdb[byte + i]!;
  return v;
}

function readBig(cdb: Uint8Array, byte: number, length: number): bigint {
  if (length <= 6) return BigInt(readUint(cdb, byte, length));
  const high = readUint(cdb, byte, length - 4);
  const low = readUint(cdb, byte + length - 4, 4);
  return high === 0 ? BigInt(low) : (BigInt(high) << 32n) | BigInt(low);
}

interface Prepared {
  spec: CommandSpec;
  /** Bits that are defined or ignored, per byte; anything else set is rejected. */
  allowed: Uint8Array;
  /** Must-be-zero multi-bit fields (protection) as [byte, mask, left-most bit]. */
  zeroFields: Array<[number, number, number]>;
}

const prepared = new Map<CommandSpec, Prepared>();

function prepare(spec: CommandSpec): Prepared {
  let p = prepared.get(spec);
  if (p) return p;
  const allowed = new Uint8Array(spec.length);
  const zeroFields: Array<[number, number, number]> = [];
  for (const field of spec.fields) {
    switch (field.kind) {
      case 'flag':
        allowed[field.byte]! |= 1 << field.bit;
        break;
      case 'bits': {
        const mask = ((1 << field.width) - 1) << field.shift;
        if (field.zero) zeroFields.push([field.byte, mask, field.shift + field.width - 1]);
        else allowed[field.byte]! |= mask;
        break;
      }
      case 'uint':
      case 'lba':
        for (let i = 0; i < field.length; i++) allowed[field.byte + i] = 0xff;
        break;
      case 'lba21':
        allowed[1]! |= 0x1f;
        allowed[2] = 0xff;
        allowed[3] = 0xff;
        break;
      case 'length256':
        allowed[4] = 0xff;
        break;
    }
  }
  for (const [byte, mask] of Object.entries(spec.ignored ?? {})) allowed[Number(byte)]! |= mask;
  p = { spec, allowed, zeroFields };
  prepared.set(spec, p);
  return p;
}

function extract(cdb: Uint8Array, field: FieldSpec): unknown {
  switch (field.kind) {
    case 'flag':
      return (cdb[field.byte]! & (1 << field.bit)) !== 0;
    case 'bits':
      return (cdb[field.byte]! >> field.shift) & ((1 << field.width) - 1);
    case 'uint':
      return readUint(cdb, field.byte, field.length);
    case 'lba':
      return readBig(cdb, field.byte, field.length);
    case 'lba21':
      return BigInt(((cdb[1]! & 0x1f) << 16) | (cdb[2]! << 8) | cdb[3]!);
    case 'length256':
      return cdb[4] === 0 ? 256 : cdb[4]!;
  }
}

function reject(
  opcode: number,
  name: string,
  sense: SenseInfo,
  cdbLength: number | undefined,
  serviceAction?: number,
): RejectedCdb {
  const out: RejectedCdb = { ok: false, opcode, name, sense };
  if (cdbLength !== undefined) out.cdbLength = cdbLength;
  if (serviceAction !== undefined) out.serviceAction = serviceAction;
  return out;
}

/** Name of an opcode for messages: the decoded command's, a known other command's, or UNKNOWN. */
export function opcodeName(opcode: number, serviceAction?: number): string {
  const specs = specsForOpcode(opcode);
  if (specs) {
    const exact = specs.find((s) => s.serviceAction === serviceAction);
    if (exact) return exact.name;
    // One name for every service action (PERSISTENT RESERVE IN/OUT, EXTENDED COPY, …), or no service actions.
    if (specs.every((s) => s.name === specs[0]!.name)) return specs[0]!.name;
  }
  if (opcode === 0x7f && serviceAction !== undefined)
    return variableLengthNames[serviceAction] ?? 'VARIABLE LENGTH';
  const other = otherOpcodeNames[opcode];
  if (other) return other;
  if (opcode === 0x9e) return 'SERVICE ACTION IN(16)';
  if (opcode === 0xa3) return 'MAINTENANCE IN';
  if (opcode === 0xa4) return 'MAINTENANCE OUT';
  if (opcode >= 0xc0) return 'VENDOR SPECIFIC';
  return 'UNKNOWN';
}

/**
 * Decode a CDB. Never throws, for any byte sequence of any length.
 *
 * - Known command, all fields valid → `{ ok: true, name, opcode, serviceAction?, cdbLength, control,
 *   direction, lba?, transferLength?, …flags }` (see the per-command interfaces in cdb-types).
 * - Otherwise `{ ok: false, opcode, name, sense }` where `sense` is exactly what to return:
 *   empty CDB or unknown opcode → 05/20 00 (field pointer: byte 0);
 *   unsupported service action → 05/24 00 pointing at the SERVICE ACTION field;
 *   CDB shorter than its opcode's length → 05/24 00 pointing at the first missing byte;
 *   a reserved bit set, RDPROTECT/WRPROTECT/VRPROTECT/FMTPINFO ≠ 0, a reserved value (e.g. BYTCHK = 2),
 *   or NACA/LINK/reserved bits in the CONTROL byte → 05/24 00 pointing at the byte and left-most bit.
 * Bytes beyond the command's length are ignored (the ring may hand over a padded buffer).
 */
export function decodeCdb(cdb: Uint8Array): DecodedCdb {
  // An empty CDB has no opcode (undefined finds no layout) and is answered by the table's decode.
  const readWrite = readWriteLayouts.get(cdb[0]!);
  return readWrite === undefined ? decodeCdbByTable(cdb) : decodeReadWrite(cdb, readWrite);
}

/**
 * What {@link decodeCdb} answers, found by walking the command table for every opcode (no fast
 * path). Internal: the tests compare the fast paths with it; not exported by the package.
 */
export function decodeCdbByTable(cdb: Uint8Array): DecodedCdb {
  if (cdb.length === 0) return reject(-1, 'UNKNOWN', invalidOpcode(), undefined);
  const opcode = cdb[0]!;
  if (opcode === 0x7f) return decodeVariableLength(cdb);
  const groupLength = cdbLengthForOpcode(opcode);
  const specs = specsForOpcode(opcode);
  if (!specs) return reject(opcode, opcodeName(opcode), invalidOpcode(), groupLength);

  let spec = specs[0]!;
  let serviceAction: number | undefined;
  if (serviceActionOpcodes.has(opcode)) {
    if (cdb.length < 2) return reject(opcode, opcodeName(opcode), invalidFieldInCdb(1), spec.length);
    serviceAction = cdb[1]! & 0x1f;
    const found = specs.find((s) => s.serviceAction === serviceAction);
    if (!found) {
      return reject(
        opcode,
        opcodeName(opcode, serviceAction),
        invalidFieldInCdb(1, 4),
        spec.length,
        serviceAction,
      );
    }
    spec = found;
  }
  return decodeWithSpec(cdb, spec, serviceAction);
}

function decodeWithSpec(cdb: Uint8Array, spec: CommandSpec, serviceAction?: number): DecodedCdb {
  const { allowed, zeroFields } = prepare(spec);
  const length = spec.length;
  if (cdb.length < length) {
    return reject(spec.opcode, spec.name, invalidFieldInCdb(cdb.length), length, serviceAction);
  }
  for (let i = 1; i < length - 1; i++) {
    const byte = cdb[i]!;
    let bad = byte & ~allowed[i]!;
    if (bad === 0) continue;
    for (const [zeroByte, mask, left] of zeroFields) {
      if (zeroByte === i && (bad & mask) !== 0) {
        // A set bit outside the field but further left is reported first.
        const outside = bad & ~mask;
        const bit = outside !== 0 && leftmostBit(outside) > left ? leftmostBit(outside) : left;
        return reject(spec.opcode, spec.name, invalidFieldInCdb(i, bit), length, serviceAction);
      }
    }
    bad &= 0xff;
    return reject(spec.opcode, spec.name, invalidFieldInCdb(i, leftmostBit(bad)), length, serviceAction);
  }
  const control = cdb[length - 1]!;
  if (control & CONTROL_REJECT) {
    return reject(
      spec.opcode,
      spec.name,
      invalidFieldInCdb(length - 1, leftmostBit(control & CONTROL_REJECT)),
      length,
      serviceAction,
    );
  }
  const result: Record<string, unknown> = {
    ok: true,
    opcode: spec.opcode,
    name: spec.name,
    cdbLength: length,
    control,
    direction: 'none',
  };
  if (spec.constants) Object.assign(result, spec.constants);
  for (const field of spec.fields) result[field.key] = extract(cdb, field);
  if (spec.check) {
    const problem = spec.check(cdb, result);
    if (problem) return reject(spec.opcode, spec.name, problem, length, serviceAction);
  }
  result.direction = spec.direction(result);
  return result as unknown as DecodedCommand;
}

/** READ and WRITE (10) and (16): nearly every command a disk serves. */
interface ReadWriteLayout {
  readonly spec: CommandSpec;
  readonly read: boolean;
}

const readWriteLayouts = new Map<number, ReadWriteLayout>(
  [0x28, 0x2a, 0x88, 0x8a].map((opcode) => {
    const spec = specsForOpcode(opcode)![0]!;
    return [opcode, { spec, read: opcode === 0x28 || opcode === 0x88 }];
  }),
);

/**
 * READ/WRITE (10/16) without walking the table's fields: the object `decodeWithSpec` makes for the
 * same bytes, with the same properties in the same order (a test compares the two on random CDBs).
 * A CDB with any bit the table does not allow, or too short, goes to `decodeWithSpec`, which names
 * the offending field.
 */
function decodeReadWrite(cdb: Uint8Array, { spec, read }: ReadWriteLayout): DecodedCdb {
  const length = spec.length;
  const long = length === 16;
  if (cdb.length < length) return decodeWithSpec(cdb, spec);
  const { allowed } = prepare(spec);
  for (let i = 1; i < length - 1; i++) if ((cdb[i]! & ~allowed[i]!) !== 0) return decodeWithSpec(cdb, spec);
  const control = cdb[length - 1]!;
  if (control & CONTROL_REJECT) return decodeWithSpec(cdb, spec);
  const flags = cdb[1]!;
  const opcode = spec.opcode;
  const name = spec.name;
  const dpo = (flags & 0x10) !== 0;
  const fua = (flags & 0x08) !== 0;
  const lba = long ? readBig(cdb, 2, 8) : BigInt(readUint(cdb, 2, 4));
  const transferLength = long ? readUint(cdb, 10, 4) : readUint(cdb, 7, 2);
  const groupNumber = cdb[long ? 14 : 6]! & 0x3f;
  if (read) {
    const rarc = (flags & 0x04) !== 0;
    return {
      ok: true,
      opcode,
      name,
      cdbLength: length,
      control,
      direction: 'in',
      rdprotect: 0,
      dpo,
      fua,
      rarc,
      lba,
      transferLength,
      groupNumber,
    } as DecodedCdb;
  }
  return {
    ok: true,
    opcode,
    name,
    cdbLength: length,
    control,
    direction: 'out',
    wrprotect: 0,
    dpo,
    fua,
    lba,
    transferLength,
    groupNumber,
  } as DecodedCdb;
}

function decodeVariableLength(cdb: Uint8Array): RejectedCdb {
  // 7Fh: byte 1 CONTROL, byte 7 ADDITIONAL CDB LENGTH, bytes 8-9 SERVICE ACTION.
  if (cdb.length < 8) return reject(0x7f, 'VARIABLE LENGTH', invalidFieldInCdb(cdb.length), undefined);
  const length = 8 + cdb[7]!;
  // An ADDITIONAL CDB LENGTH too small to hold the SERVICE ACTION is the invalid field itself.
  if (length < 10) return reject(0x7f, 'VARIABLE LENGTH', invalidFieldInCdb(7), length);
  if (cdb.length < length) return reject(0x7f, 'VARIABLE LENGTH', invalidFieldInCdb(cdb.length), length);
  const serviceAction = (cdb[8]! << 8) | cdb[9]!;
  const control = cdb[1]!;
  if (control & CONTROL_REJECT) {
    return reject(
      0x7f,
      opcodeName(0x7f, serviceAction),
      invalidFieldInCdb(1, leftmostBit(control & CONTROL_REJECT)),
      length,
      serviceAction,
    );
  }
  // None of the 32-byte commands is served: they exist for protection information, which is not supported.
  return reject(0x7f, opcodeName(0x7f, serviceAction), invalidFieldInCdb(8, 7), length, serviceAction);
}
