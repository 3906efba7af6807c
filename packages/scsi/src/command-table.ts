// The CDB layouts this package knows, as data: decodeCdb, buildCdb and the CDB usage data of
// REPORT SUPPORTED OPERATION CODES are all derived from this one table.
import type { CommandName, DataDirection } from './cdb-types';
import { invalidFieldInCdb, type SenseInfo } from './sense';

/** Operation codes (byte 0) this package knows by name. */
export const Opcode = {
  TestUnitReady: 0x00,
  RequestSense: 0x03,
  FormatUnit: 0x04,
  Read6: 0x08,
  Write6: 0x0a,
  Inquiry: 0x12,
  ModeSelect6: 0x15,
  Reserve6: 0x16,
  Release6: 0x17,
  ModeSense6: 0x1a,
  StartStopUnit: 0x1b,
  PreventAllowMediumRemoval: 0x1e,
  ReadCapacity10: 0x25,
  Read10: 0x28,
  Write10: 0x2a,
  WriteAndVerify10: 0x2e,
  Verify10: 0x2f,
  SynchronizeCache10: 0x35,
  WriteSame10: 0x41,
  Unmap: 0x42,
  ModeSelect10: 0x55,
  Reserve10: 0x56,
  Release10: 0x57,
  ModeSense10: 0x5a,
  PersistentReserveIn: 0x5e,
  PersistentReserveOut: 0x5f,
  VariableLength: 0x7f,
  ExtendedCopy: 0x83,
  ReceiveCopyResults: 0x84,
  Read16: 0x88,
  CompareAndWrite: 0x89,
  Write16: 0x8a,
  WriteAndVerify16: 0x8e,
  Verify16: 0x8f,
  SynchronizeCache16: 0x91,
  WriteSame16: 0x93,
  ServiceActionIn16: 0x9e,
  ReportLuns: 0xa0,
  MaintenanceIn: 0xa3,
  MaintenanceOut: 0xa4,
  Read12: 0xa8,
  Write12: 0xaa,
} as const;

/** Service actions of SERVICE ACTION IN(16) (9Eh), MAINTENANCE IN (A3h) and MAINTENANCE OUT (A4h). */
export const ServiceAction = {
  ReadCapacity16: 0x10,
  GetLbaStatus: 0x12,
  ReportTargetPortGroups: 0x0a,
  ReportSupportedOperationCodes: 0x0c,
  SetTargetPortGroups: 0x0a,
} as const;

/** One field of a CDB layout. */
export type FieldSpec =
  /** A single bit → boolean. */
  | { key: string; kind: 'flag'; byte: number; bit: number }
  /** `width` bits ending at bit `shift` of one byte → number. `zero`: must be 0 (unsupported protection). */
  | { key: string; kind: 'bits'; byte: number; shift: number; width: number; zero?: boolean }
  /** Big-endian unsigned integer of `length` bytes (1..4) → number. */
  | { key: string; kind: 'uint'; byte: number; length: number }
  /** Big-endian unsigned integer of `length` bytes (4 or 8) → bigint. */
  | { key: string; kind: 'lba'; byte: number; length: number }
  /** The 21-bit LBA of READ(6)/WRITE(6) (byte 1 bits 4:0, bytes 2-3) → bigint. */
  | { key: 'lba'; kind: 'lba21' }
  /** The 6-byte TRANSFER LENGTH (byte 4): 0 means 256 → number. */
  | { key: 'transferLength'; kind: 'length256' };

export interface CommandSpec {
  opcode: number;
  serviceAction?: number;
  name: CommandName;
  length: number;
  fields: FieldSpec[];
  /** Fields the command's interface has but this CDB layout lacks (e.g. LLBAA of MODE SENSE(6)). */
  constants?: Record<string, unknown>;
  /** Obsolete, vendor-specific or restricted bits per byte: accepted and ignored. */
  ignored?: Record<number, number>;
  /** Value checks after the reserved-bit checks; returns the sense to report. */
  check?: (cdb: Uint8Array, fields: Record<string, unknown>) => SenseInfo | undefined;
  direction: (fields: Record<string, unknown>) => DataDirection;
}

const flag = (key: string, byte: number, bit: number): FieldSpec => ({ key, kind: 'flag', byte, bit });
const bits = (key: string, byte: number, shift: number, width: number): FieldSpec => ({
  key,
  kind: 'bits',
  byte,
  shift,
  width,
});
const uint = (key: string, byte: number, length: number): FieldSpec => ({ key, kind: 'uint', byte, length });
const lba = (byte: number, length: number): FieldSpec => ({ key: 'lba', kind: 'lba', byte, length });
const protection = (key: string): FieldSpec => ({
  key,
  kind: 'bits',
  byte: 1,
  shift: 5,
  width: 3,
  zero: true,
});
const serviceAction: FieldSpec = bits('serviceAction', 1, 0, 5);

const none = () => 'none' as const;
const dataIn = () => 'in' as const;
const dataOut = () => 'out' as const;
const outIf = (key: string) => (f: Record<string, unknown>) =>
  f[key] ? ('out' as const) : ('none' as const);

function bytchkCheck(values: readonly number[]) {
  return (_cdb: Uint8Array, f: Record<string, unknown>) =>
    values.includes(f.bytchk as number) ? undefined : invalidFieldInCdb(1, 2);
}

// Group number: 6 bits (SBC-4). In 16-byte CDBs bits 7:6 carry duration-limit hints, ignored.
const specs: CommandSpec[] = [
  { opcode: 0x00, name: 'TEST UNIT READY', length: 6, fields: [], direction: none },
  {
    opcode: 0x03,
    name: 'REQUEST SENSE',
    length: 6,
    fields: [flag('desc', 1, 0), uint('allocationLength', 4, 1)],
    direction: dataIn,
  },
  {
    opcode: 0x04,
    name: 'FORMAT UNIT',
    length: 6,
    fields: [
      { key: 'fmtpinfo', kind: 'bits', byte: 1, shift: 6, width: 2, zero: true },
      flag('longList', 1, 5),
      flag('fmtdata', 1, 4),
      flag('cmplst', 1, 3),
      bits('defectListFormat', 1, 0, 3),
      bits('fastFormat', 4, 0, 2),
    ],
    ignored: { 2: 0xff, 3: 0xff },
    check: (_c, f) => (f.fastFormat === 3 ? invalidFieldInCdb(4, 1) : undefined),
    direction: outIf('fmtdata'),
  },
  {
    opcode: 0x08,
    name: 'READ(6)',
    length: 6,
    fields: [
      { key: 'lba', kind: 'lba21' },
      { key: 'transferLength', kind: 'length256' },
    ],
    direction: dataIn,
  },
  {
    opcode: 0x0a,
    name: 'WRITE(6)',
    length: 6,
    fields: [
      { key: 'lba', kind: 'lba21' },
      { key: 'transferLength', kind: 'length256' },
    ],
    direction: dataOut,
  },
  {
    opcode: 0x12,
    name: 'INQUIRY',
    length: 6,
    fields: [flag('evpd', 1, 0), uint('pageCode', 2, 1), uint('allocationLength', 3, 2)],
    check: (_c, f) => (!f.evpd && f.pageCode !== 0 ? invalidFieldInCdb(2, 7) : undefined),
    direction: dataIn,
  },
  {
    opcode: 0x15,
    name: 'MODE SELECT(6)',
    length: 6,
    fields: [flag('pf', 1, 4), flag('sp', 1, 0), uint('parameterListLength', 4, 1)],
    direction: dataOut,
  },
  {
    opcode: 0x16,
    name: 'RESERVE(6)',
    length: 6,
    constants: { parameterListLength: 0 },
    fields: [],
    ignored: { 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff },
    direction: none,
  },
  {
    opcode: 0x17,
    name: 'RELEASE(6)',
    length: 6,
    constants: { parameterListLength: 0 },
    fields: [],
    ignored: { 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff },
    direction: none,
  },
  {
    opcode: 0x1a,
    name: 'MODE SENSE(6)',
    length: 6,
    constants: { llbaa: false },
    fields: [
      flag('dbd', 1, 3),
      bits('pc', 2, 6, 2),
      bits('pageCode', 2, 0, 6),
      uint('subpageCode', 3, 1),
      uint('allocationLength', 4, 1),
    ],
    direction: dataIn,
  },
  {
    opcode: 0x1b,
    name: 'START STOP UNIT',
    length: 6,
    fields: [
      flag('immed', 1, 0),
      bits('powerConditionModifier', 3, 0, 4),
      bits('powerCondition', 4, 4, 4),
      flag('noFlush', 4, 2),
      flag('loej', 4, 1),
      flag('start', 4, 0),
    ],
    direction: none,
  },
  {
    opcode: 0x1e,
    name: 'PREVENT ALLOW MEDIUM REMOVAL',
    length: 6,
    fields: [bits('prevent', 4, 0, 2)],
    direction: none,
  },
  {
    opcode: 0x25,
    name: 'READ CAPACITY(10)',
    length: 10,
    fields: [lba(2, 4), flag('pmi', 8, 0)],
    ignored: { 1: 0x01 },
    check: (_c, f) => (!f.pmi && f.lba !== 0n ? invalidFieldInCdb(2, 7) : undefined),
    direction: dataIn,
  },
  ...[
    [0x28, 'READ(10)', 10],
    [0xa8, 'READ(12)', 12],
    [0x88, 'READ(16)', 16],
  ].map(([opcode, name, length]) =>
    readWriteSpec(opcode as number, name as CommandName, length as number, true),
  ),
  ...[
    [0x2a, 'WRITE(10)', 10],
    [0xaa, 'WRITE(12)', 12],
    [0x8a, 'WRITE(16)', 16],
  ].map(([opcode, name, length]) =>
    readWriteSpec(opcode as number, name as CommandName, length as number, false),
  ),
  ...[
    [0x2e, 'WRITE AND VERIFY(10)', 10],
    [0x8e, 'WRITE AND VERIFY(16)', 16],
  ].map(
    ([opcode, name, length]): CommandSpec => ({
      opcode: opcode as number,
      name: name as CommandName,
      length: length as number,
      fields: [
        protection('wrprotect'),
        flag('dpo', 1, 4),
        bits('bytchk', 1, 1, 2),
        ...addressing(length as number),
      ],
      ignored: { 1: 0x01, ...groupIgnored(length as number) },
      check: bytchkCheck([0, 1]),
      direction: dataOut,
    }),
  ),
  ...[
    [0x2f, 'VERIFY(10)', 10],
    [0x8f, 'VERIFY(16)', 16],
  ].map(
    ([opcode, name, length]): CommandSpec => ({
      opcode: opcode as number,
      name: name as CommandName,
      length: length as number,
      fields: [
        protection('vrprotect'),
        flag('dpo', 1, 4),
        bits('bytchk', 1, 1, 2),
        ...addressing(length as number),
      ],
      ignored: { 1: 0x01, ...groupIgnored(length as number) },
      check: bytchkCheck([0, 1, 3]),
      direction: (f) => (f.bytchk === 0 ? 'none' : 'out'),
    }),
  ),
  ...[
    [0x35, 'SYNCHRONIZE CACHE(10)', 10],
    [0x91, 'SYNCHRONIZE CACHE(16)', 16],
  ].map(
    ([opcode, name, length]): CommandSpec => ({
      opcode: opcode as number,
      name: name as CommandName,
      length: length as number,
      fields: [flag('immed', 1, 1), ...addressing(length as number)],
      ignored: { 1: 0x05, ...groupIgnored(length as number) },
      direction: none,
    }),
  ),
  {
    opcode: 0x41,
    name: 'WRITE SAME(10)',
    length: 10,
    constants: { ndob: false },
    fields: [protection('wrprotect'), flag('anchor', 1, 4), flag('unmap', 1, 3), ...addressing(10)],
    ignored: { 1: 0x01 },
    direction: dataOut,
  },
  {
    opcode: 0x93,
    name: 'WRITE SAME(16)',
    length: 16,
    fields: [
      protection('wrprotect'),
      flag('anchor', 1, 4),
      flag('unmap', 1, 3),
      flag('ndob', 1, 0),
      ...addressing(16),
    ],
    ignored: groupIgnored(16),
    direction: (f) => (f.ndob ? 'none' : 'out'),
  },
  {
    opcode: 0x42,
    name: 'UNMAP',
    length: 10,
    fields: [flag('anchor', 1, 0), bits('groupNumber', 6, 0, 6), uint('parameterListLength', 7, 2)],
    direction: (f) => (f.parameterListLength ? 'out' : 'none'),
  },
  {
    opcode: 0x89,
    name: 'COMPARE AND WRITE',
    length: 16,
    fields: [
      protection('wrprotect'),
      flag('dpo', 1, 4),
      flag('fua', 1, 3),
      lba(2, 8),
      uint('transferLength', 13, 1),
      bits('groupNumber', 14, 0, 6),
    ],
    ignored: { 1: 0x02, 14: 0xc0 },
    direction: dataOut,
  },
  {
    opcode: 0x55,
    name: 'MODE SELECT(10)',
    length: 10,
    fields: [flag('pf', 1, 4), flag('sp', 1, 0), uint('parameterListLength', 7, 2)],
    direction: dataOut,
  },
  {
    opcode: 0x56,
    name: 'RESERVE(10)',
    length: 10,
    fields: [uint('parameterListLength', 7, 2)],
    ignored: { 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff },
    direction: (f) => (f.parameterListLength ? 'out' : 'none'),
  },
  {
    opcode: 0x57,
    name: 'RELEASE(10)',
    length: 10,
    fields: [uint('parameterListLength', 7, 2)],
    ignored: { 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff },
    direction: (f) => (f.parameterListLength ? 'out' : 'none'),
  },
  {
    opcode: 0x5a,
    name: 'MODE SENSE(10)',
    length: 10,
    fields: [
      flag('llbaa', 1, 4),
      flag('dbd', 1, 3),
      bits('pc', 2, 6, 2),
      bits('pageCode', 2, 0, 6),
      uint('subpageCode', 3, 1),
      uint('allocationLength', 7, 2),
    ],
    direction: dataIn,
  },
  // PERSISTENT RESERVE IN: READ KEYS, READ RESERVATION, REPORT CAPABILITIES, READ FULL STATUS.
  ...[0, 1, 2, 3].map(
    (sa): CommandSpec => ({
      opcode: 0x5e,
      serviceAction: sa,
      name: 'PERSISTENT RESERVE IN',
      length: 10,
      fields: [serviceAction, uint('allocationLength', 7, 2)],
      direction: dataIn,
    }),
  ),
  // PERSISTENT RESERVE OUT: REGISTER … REPLACE LOST RESERVATION.
  ...[0, 1, 2, 3, 4, 5, 6, 7, 8].map(
    (sa): CommandSpec => ({
      opcode: 0x5f,
      serviceAction: sa,
      name: 'PERSISTENT RESERVE OUT',
      length: 10,
      fields: [
        serviceAction,
        bits('scope', 2, 4, 4),
        bits('type', 2, 0, 4),
        uint('parameterListLength', 5, 4),
      ],
      direction: dataOut,
    }),
  ),
  // EXTENDED COPY (LID1) and (LID4).
  ...[0, 1].map(
    (sa): CommandSpec => ({
      opcode: 0x83,
      serviceAction: sa,
      name: 'EXTENDED COPY',
      length: 16,
      fields: [serviceAction, uint('parameterListLength', 10, 4)],
      direction: dataOut,
    }),
  ),
  // RECEIVE COPY RESULTS: COPY STATUS (LID1), RECEIVE DATA (LID1), OPERATING PARAMETERS,
  // FAILED SEGMENT DETAILS (LID1), COPY STATUS (LID4), RECEIVE DATA (LID4).
  ...[0, 1, 3, 4, 5, 6].map(
    (sa): CommandSpec => ({
      opcode: 0x84,
      serviceAction: sa,
      name: 'RECEIVE COPY RESULTS',
      length: 16,
      constants: { listIdentifier: 0 },
      fields: [
        serviceAction,
        ...(sa === 3 ? [] : sa >= 5 ? [uint('listIdentifier', 2, 4)] : [uint('listIdentifier', 2, 1)]),
        uint('allocationLength', 10, 4),
      ],
      direction: dataIn,
    }),
  ),
  {
    opcode: 0x9e,
    serviceAction: 0x10,
    name: 'READ CAPACITY(16)',
    length: 16,
    fields: [serviceAction, lba(2, 8), uint('allocationLength', 10, 4), flag('pmi', 14, 0)],
    check: (_c, f) => (!f.pmi && f.lba !== 0n ? invalidFieldInCdb(2, 7) : undefined),
    direction: dataIn,
  },
  {
    opcode: 0x9e,
    serviceAction: 0x12,
    name: 'GET LBA STATUS',
    length: 16,
    fields: [serviceAction, lba(2, 8), uint('allocationLength', 10, 4), bits('reportType', 14, 0, 3)],
    check: (_c, f) => ((f.reportType as number) > 4 ? invalidFieldInCdb(14, 2) : undefined),
    direction: dataIn,
  },
  {
    opcode: 0xa0,
    name: 'REPORT LUNS',
    length: 12,
    fields: [uint('selectReport', 2, 1), uint('allocationLength', 6, 4)],
    direction: dataIn,
  },
  {
    opcode: 0xa3,
    serviceAction: 0x0a,
    name: 'REPORT TARGET PORT GROUPS',
    length: 12,
    fields: [serviceAction, bits('parameterDataFormat', 1, 5, 3), uint('allocationLength', 6, 4)],
    check: (_c, f) => ((f.parameterDataFormat as number) > 1 ? invalidFieldInCdb(1, 7) : undefined),
    direction: dataIn,
  },
  {
    opcode: 0xa3,
    serviceAction: 0x0c,
    name: 'REPORT SUPPORTED OPERATION CODES',
    length: 12,
    fields: [
      serviceAction,
      flag('rctd', 2, 7),
      bits('reportingOptions', 2, 0, 3),
      uint('requestedOpcode', 3, 1),
      uint('requestedServiceAction', 4, 2),
      uint('allocationLength', 6, 4),
    ],
    check: (_c, f) => ((f.reportingOptions as number) > 3 ? invalidFieldInCdb(2, 2) : undefined),
    direction: dataIn,
  },
  {
    opcode: 0xa4,
    serviceAction: 0x0a,
    name: 'SET TARGET PORT GROUPS',
    length: 12,
    fields: [serviceAction, uint('parameterListLength', 6, 4)],
    direction: dataOut,
  },
];

/** LBA, transfer length and group number of a 10/12/16-byte read/write-like CDB. */
function addressing(length: number): FieldSpec[] {
  if (length === 10) return [lba(2, 4), uint('transferLength', 7, 2), bits('groupNumber', 6, 0, 6)];
  if (length === 12) return [lba(2, 4), uint('transferLength', 6, 4), bits('groupNumber', 10, 0, 6)];
  return [lba(2, 8), uint('transferLength', 10, 4), bits('groupNumber', 14, 0, 6)];
}

/** Byte 10 bit 7 of 12-byte CDBs is restricted for MMC; byte 14 bits 7:6 of 16-byte ones carry DLD. */
function groupIgnored(length: number): Record<number, number> {
  if (length === 12) return { 10: 0x80 };
  if (length === 16) return { 14: 0xc0 };
  return {};
}

function readWriteSpec(opcode: number, name: CommandName, length: number, read: boolean): CommandSpec {
  const fields: FieldSpec[] = read
    ? [protection('rdprotect'), flag('dpo', 1, 4), flag('fua', 1, 3), flag('rarc', 1, 2)]
    : [protection('wrprotect'), flag('dpo', 1, 4), flag('fua', 1, 3)];
  // Byte 1 bits 1:0: obsolete (FUA_NV) and, in READ(16), DLD2.
  return {
    opcode,
    name,
    length,
    fields: [...fields, ...addressing(length)],
    ignored: { 1: 0x03, ...groupIgnored(length) },
    direction: read ? dataIn : dataOut,
  };
}

/** Every command layout, in opcode order. */
export const commandSpecs: readonly CommandSpec[] = [...specs].sort(
  (a, b) => a.opcode - b.opcode || (a.serviceAction ?? -1) - (b.serviceAction ?? -1),
);

/** Opcodes whose byte 1 bits 4:0 hold a SERVICE ACTION. */
export const serviceActionOpcodes: ReadonlySet<number> = new Set([
  0x5e, 0x5f, 0x83, 0x84, 0x9e, 0x9f, 0xa3, 0xa4,
]);

const byOpcode = new Map<number, CommandSpec[]>();
const byName = new Map<string, CommandSpec>();
for (const spec of commandSpecs) {
  const list = byOpcode.get(spec.opcode) ?? [];
  list.push(spec);
  byOpcode.set(spec.opcode, list);
  if (!byName.has(spec.name)) byName.set(spec.name, spec);
}

export function specsForOpcode(opcode: number): readonly CommandSpec[] | undefined {
  return byOpcode.get(opcode);
}

export function specForName(name: string): CommandSpec | undefined {
  return byName.get(name);
}

/** Names of opcodes this package does not decode, for messages and logs. */
export const otherOpcodeNames: Readonly<Record<number, string>> = {
  1: 'REZERO UNIT',
  7: 'REASSIGN BLOCKS',
  11: 'SEEK(6)',
  28: 'RECEIVE DIAGNOSTIC RESULTS',
  29: 'SEND DIAGNOSTIC',
  43: 'SEEK(10)',
  52: 'PRE-FETCH(10)',
  55: 'READ DEFECT DATA(10)',
  59: 'WRITE BUFFER',
  60: 'READ BUFFER',
  62: 'READ LONG(10)',
  63: 'WRITE LONG(10)',
  70: 'GET CONFIGURATION',
  72: 'SANITIZE',
  74: 'GET EVENT STATUS NOTIFICATION',
  76: 'LOG SELECT',
  77: 'LOG SENSE',
  126: 'EXTENDED CDB',
  133: 'ATA PASS-THROUGH(16)',
  134: 'ACCESS CONTROL IN',
  135: 'ACCESS CONTROL OUT',
  140: 'READ ATTRIBUTE',
  141: 'WRITE ATTRIBUTE',
  144: 'PRE-FETCH(16)',
  159: 'SERVICE ACTION OUT(16)',
  161: 'ATA PASS-THROUGH(12)',
  162: 'SECURITY PROTOCOL IN',
  181: 'SECURITY PROTOCOL OUT',
  183: 'READ DEFECT DATA(12)',
};

/** Service actions of VARIABLE LENGTH (7Fh) CDBs, by name (none is served: they carry protection information). */
export const variableLengthNames: Readonly<Record<number, string>> = {
  9: 'READ(32)',
  10: 'VERIFY(32)',
  11: 'WRITE(32)',
  12: 'WRITE AND VERIFY(32)',
  13: 'WRITE SAME(32)',
  14: 'ORWRITE(32)',
};

/**
 * The CDB length the group code (opcode bits 7:5) defines: 6, 10, 10, -, 16, 12; undefined for the
 * reserved group 3 (except 7Eh/7Fh, whose length is in the CDB) and the vendor-specific groups 6 and 7.
 */
export function cdbLengthForOpcode(opcode: number): number | undefined {
  switch ((opcode >> 5) & 0x07) {
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    default:
      return undefined;
  }
}

/**
 * The length of a CDB from its first bytes: by group code, or for VARIABLE LENGTH (7Fh) 8 + ADDITIONAL
 * CDB LENGTH (byte 7), and for EXTENDED CDB (7Eh) 4 + byte 2-3. Undefined when it cannot be known.
 */
export function cdbLength(cdb: Uint8Array): number | undefined {
  const opcode = cdb[0];
  if (opcode === undefined) return undefined;
  if (opcode === 0x7f) return cdb.length > 7 ? 8 + cdb[7]! : undefined;
  if (opcode === 0x7e) return cdb.length > 3 ? 4 + ((cdb[2]! << 8) | cdb[3]!) : undefined;
  return cdbLengthForOpcode(opcode);
}

/** Bits of each CDB byte that a command interprets (its CDB USAGE DATA, SPC-5 §6.35.3), by spec. */
export function usageMask(spec: CommandSpec): Uint8Array {
  const used = new Uint8Array(spec.length);
  used[0] = spec.opcode;
  for (const field of spec.fields) {
    switch (field.kind) {
      case 'flag':
        used[field.byte]! |= 1 << field.bit;
        break;
      case 'bits':
        if (field.zero) break;
        if (field.key === 'serviceAction') break;
        used[field.byte]! |= ((1 << field.width) - 1) << field.shift;
        break;
      case 'uint':
      case 'lba':
        for (let i = 0; i < field.length; i++) used[field.byte + i] = 0xff;
        break;
      case 'lba21':
        used[1]! |= 0x1f;
        used[2] = 0xff;
        used[3] = 0xff;
        break;
      case 'length256':
        used[4] = 0xff;
        break;
    }
  }
  if (spec.serviceAction !== undefined) used[1]! |= spec.serviceAction;
  return used;
}
