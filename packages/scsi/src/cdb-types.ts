// What decodeCdb returns: one interface per command family, discriminated by `ok` then by `name`.
import type { SenseInfo } from './sense';

/** Which way data moves for a command: none, data-in (device → initiator) or data-out. */
export type DataDirection = 'none' | 'in' | 'out';

/** Fields every successfully decoded CDB has. */
export interface CdbCommon {
  ok: true;
  /** Byte 0. */
  opcode: number;
  /** The SERVICE ACTION field, for commands that have one (9Eh, A3h, A4h, 5Eh, 5Fh, 7Fh, …). */
  serviceAction?: number;
  /** The command's name as in the standards, e.g. `'READ(10)'`, `'SERVICE ACTION IN(16)'` is never used: the service action's name is. */
  name: string;
  /** The CDB's length in bytes as the standards define it for this opcode (by group code, or byte 7 + 8 for 7Fh). */
  cdbLength: number;
  /** The CONTROL byte (NACA and LINK are always 0 here: CDBs with them set are rejected). */
  control: number;
  /** Direction of the data transfer this command implies. */
  direction: DataDirection;
  /** First logical block, for commands that address the medium. */
  lba?: bigint;
  /** Number of logical blocks (not bytes) the command addresses. */
  transferLength?: number;
}

export interface TestUnitReadyCdb extends CdbCommon {
  name: 'TEST UNIT READY';
}

export interface RequestSenseCdb extends CdbCommon {
  name: 'REQUEST SENSE';
  /** DESC: return descriptor-format sense. */
  desc: boolean;
  allocationLength: number;
}

export interface FormatUnitCdb extends CdbCommon {
  name: 'FORMAT UNIT';
  /** FMTPINFO (always 0: protection information is not supported, a nonzero value is rejected). */
  fmtpinfo: number;
  longList: boolean;
  /** FMTDATA: a parameter list (header + optional defect list) follows. */
  fmtdata: boolean;
  cmplst: boolean;
  defectListFormat: number;
  /** FFMT (SBC-4 byte 4 bits 1:0): fast format. */
  fastFormat: number;
}

/** READ(6/10/12/16). RDPROTECT is always 0 (a nonzero value is rejected: no protection information). */
export interface ReadCdb extends CdbCommon {
  name: 'READ(6)' | 'READ(10)' | 'READ(12)' | 'READ(16)';
  lba: bigint;
  /** Blocks; READ(6) with 0 in the CDB means 256. */
  transferLength: number;
  rdprotect: number;
  dpo: boolean;
  fua: boolean;
  /** RARC: rebuild assist recovery control. */
  rarc: boolean;
  groupNumber: number;
}

/** WRITE(6/10/12/16). WRPROTECT is always 0 (a nonzero value is rejected). */
export interface WriteCdb extends CdbCommon {
  name: 'WRITE(6)' | 'WRITE(10)' | 'WRITE(12)' | 'WRITE(16)';
  lba: bigint;
  /** Blocks; WRITE(6) with 0 in the CDB means 256. */
  transferLength: number;
  wrprotect: number;
  dpo: boolean;
  fua: boolean;
  groupNumber: number;
}

/** WRITE AND VERIFY(10/16). BYTCHK 0 = verify the medium, 1 = compare (the data is written then compared). */
export interface WriteAndVerifyCdb extends CdbCommon {
  name: 'WRITE AND VERIFY(10)' | 'WRITE AND VERIFY(16)';
  lba: bigint;
  transferLength: number;
  wrprotect: number;
  dpo: boolean;
  bytchk: number;
  groupNumber: number;
}

/**
 * VERIFY(10/16). BYTCHK 0 = medium verification only (no data-out), 1 = compare `transferLength` blocks
 * of data-out, 3 = compare one block of data-out against every block of the range. 2 is rejected.
 */
export interface VerifyCdb extends CdbCommon {
  name: 'VERIFY(10)' | 'VERIFY(16)';
  lba: bigint;
  /** VERIFICATION LENGTH, in blocks. */
  transferLength: number;
  vrprotect: number;
  dpo: boolean;
  bytchk: number;
  groupNumber: number;
}

/** SYNCHRONIZE CACHE(10/16). `transferLength` 0 = from `lba` to the end of the medium. */
export interface SynchronizeCacheCdb extends CdbCommon {
  name: 'SYNCHRONIZE CACHE(10)' | 'SYNCHRONIZE CACHE(16)';
  lba: bigint;
  /** NUMBER OF LOGICAL BLOCKS. */
  transferLength: number;
  immed: boolean;
  groupNumber: number;
}

/**
 * WRITE SAME(10/16). Data-out is one block unless NDOB (16 only) is set. `transferLength` 0 means "to the
 * end of the medium" when the device allows it (WSNZ = 0 in the Block Limits page); the core decides.
 */
export interface WriteSameCdb extends CdbCommon {
  name: 'WRITE SAME(10)' | 'WRITE SAME(16)';
  lba: bigint;
  /** NUMBER OF LOGICAL BLOCKS. */
  transferLength: number;
  wrprotect: number;
  anchor: boolean;
  unmap: boolean;
  /** NDOB: no data-out buffer, write zeros (WRITE SAME(16) only; false for (10)). */
  ndob: boolean;
  groupNumber: number;
}

export interface UnmapCdb extends CdbCommon {
  name: 'UNMAP';
  anchor: boolean;
  groupNumber: number;
  /** Bytes of data-out (UNMAP parameter list: 8-byte header + 16-byte block descriptors). */
  parameterListLength: number;
}

/** COMPARE AND WRITE: data-out is 2 × `transferLength` blocks (verify data, then write data). */
export interface CompareAndWriteCdb extends CdbCommon {
  name: 'COMPARE AND WRITE';
  lba: bigint;
  /** NUMBER OF LOGICAL BLOCKS (0..255). */
  transferLength: number;
  wrprotect: number;
  dpo: boolean;
  fua: boolean;
  groupNumber: number;
}

export interface InquiryCdb extends CdbCommon {
  name: 'INQUIRY';
  evpd: boolean;
  /** VPD page code (0 when `evpd` is false: a nonzero page without EVPD is rejected). */
  pageCode: number;
  allocationLength: number;
}

/** Page control field of MODE SENSE. */
export const PageControl = {
  Current: 0,
  Changeable: 1,
  Default: 2,
  Saved: 3,
} as const;
export type PageControl = (typeof PageControl)[keyof typeof PageControl];

export interface ModeSenseCdb extends CdbCommon {
  name: 'MODE SENSE(6)' | 'MODE SENSE(10)';
  /** DBD: disable block descriptors. */
  dbd: boolean;
  /** LLBAA: long LBA block descriptors accepted (MODE SENSE(10) only; false for (6)). */
  llbaa: boolean;
  /** PC: page control (see {@link PageControl}). */
  pc: PageControl;
  pageCode: number;
  subpageCode: number;
  allocationLength: number;
}

export interface ModeSelectCdb extends CdbCommon {
  name: 'MODE SELECT(6)' | 'MODE SELECT(10)';
  /** PF: page format (SPC pages follow the header). */
  pf: boolean;
  /** SP: save pages. */
  sp: boolean;
  parameterListLength: number;
}

export interface StartStopUnitCdb extends CdbCommon {
  name: 'START STOP UNIT';
  immed: boolean;
  powerConditionModifier: number;
  powerCondition: number;
  noFlush: boolean;
  loej: boolean;
  start: boolean;
}

export interface PreventAllowMediumRemovalCdb extends CdbCommon {
  name: 'PREVENT ALLOW MEDIUM REMOVAL';
  /** PREVENT field (0..3). */
  prevent: number;
}

export interface ReadCapacity10Cdb extends CdbCommon {
  name: 'READ CAPACITY(10)';
  /** Obsolete LBA field (0 unless `pmi`). */
  lba: bigint;
  pmi: boolean;
}

export interface ReadCapacity16Cdb extends CdbCommon {
  name: 'READ CAPACITY(16)';
  lba: bigint;
  pmi: boolean;
  allocationLength: number;
}

export interface GetLbaStatusCdb extends CdbCommon {
  name: 'GET LBA STATUS';
  /** STARTING LOGICAL BLOCK ADDRESS. */
  lba: bigint;
  allocationLength: number;
  /** REPORT TYPE (SBC-4; 0 = all). */
  reportType: number;
}

export interface ReportSupportedOperationCodesCdb extends CdbCommon {
  name: 'REPORT SUPPORTED OPERATION CODES';
  /** RCTD: return command timeouts descriptors. */
  rctd: boolean;
  /** REPORTING OPTIONS: 0 all, 1 one command (no SA), 2 one command with SA, 3 one command either way. */
  reportingOptions: number;
  requestedOpcode: number;
  requestedServiceAction: number;
  allocationLength: number;
}

export interface ReportTargetPortGroupsCdb extends CdbCommon {
  name: 'REPORT TARGET PORT GROUPS';
  parameterDataFormat: number;
  allocationLength: number;
}

export interface SetTargetPortGroupsCdb extends CdbCommon {
  name: 'SET TARGET PORT GROUPS';
  parameterListLength: number;
}

/** Handled by the kernel (LIO); decoded anyway. */
export interface ReportLunsCdb extends CdbCommon {
  name: 'REPORT LUNS';
  selectReport: number;
  allocationLength: number;
}

/** Handled by the kernel (LIO); decoded anyway. */
export interface PersistentReserveInCdb extends CdbCommon {
  name: 'PERSISTENT RESERVE IN';
  allocationLength: number;
}

/** Handled by the kernel (LIO); decoded anyway. */
export interface PersistentReserveOutCdb extends CdbCommon {
  name: 'PERSISTENT RESERVE OUT';
  scope: number;
  type: number;
  parameterListLength: number;
}

/** Handled by the kernel (LIO); decoded anyway. RESERVE/RELEASE(6/10) of SPC-2. */
export interface ReserveReleaseCdb extends CdbCommon {
  name: 'RESERVE(6)' | 'RELEASE(6)' | 'RESERVE(10)' | 'RELEASE(10)';
  /** Bytes of data-out (RESERVE(10) with 3RDPTY/LONGID only; 0 otherwise). */
  parameterListLength: number;
}

/** EXTENDED COPY (LID4/LID1) and RECEIVE COPY RESULTS: decoded, served "later" by the core. */
export interface ExtendedCopyCdb extends CdbCommon {
  name: 'EXTENDED COPY';
  parameterListLength: number;
}

export interface ReceiveCopyResultsCdb extends CdbCommon {
  name: 'RECEIVE COPY RESULTS';
  listIdentifier: number;
  allocationLength: number;
}

/** A CDB that decoded: switch on `name` (or `opcode`/`serviceAction`) to narrow. */
export type DecodedCommand =
  | TestUnitReadyCdb
  | RequestSenseCdb
  | FormatUnitCdb
  | ReadCdb
  | WriteCdb
  | WriteAndVerifyCdb
  | VerifyCdb
  | SynchronizeCacheCdb
  | WriteSameCdb
  | UnmapCdb
  | CompareAndWriteCdb
  | InquiryCdb
  | ModeSenseCdb
  | ModeSelectCdb
  | StartStopUnitCdb
  | PreventAllowMediumRemovalCdb
  | ReadCapacity10Cdb
  | ReadCapacity16Cdb
  | GetLbaStatusCdb
  | ReportSupportedOperationCodesCdb
  | ReportTargetPortGroupsCdb
  | SetTargetPortGroupsCdb
  | ReportLunsCdb
  | PersistentReserveInCdb
  | PersistentReserveOutCdb
  | ReserveReleaseCdb
  | ExtendedCopyCdb
  | ReceiveCopyResultsCdb;

/** The names {@link decodeCdb} can return for a decoded command. */
export type CommandName = DecodedCommand['name'];

/**
 * A CDB that did not decode: `sense` is exactly what to return with CHECK CONDITION
 * (05/20 00 for an unknown opcode, 05/24 00 with the field pointer for a bad field or a short CDB).
 * `opcode` is -1 for an empty CDB; `name` is the command's name when the opcode is known, else
 * `'UNKNOWN'` (or `'VENDOR SPECIFIC'` for groups 6 and 7).
 */
export interface RejectedCdb {
  ok: false;
  opcode: number;
  serviceAction?: number;
  name: string;
  /** The expected CDB length when the group code defines one. */
  cdbLength?: number;
  sense: SenseInfo;
}

export type DecodedCdb = DecodedCommand | RejectedCdb;
