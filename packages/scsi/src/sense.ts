// Sense data (SPC-5 §4.4): what a device returns with CHECK CONDITION, in fixed or descriptor format.

/** Sense keys (SPC-5 table 49). */
export const SenseKey = {
  NoSense: 0x0,
  RecoveredError: 0x1,
  NotReady: 0x2,
  MediumError: 0x3,
  HardwareError: 0x4,
  IllegalRequest: 0x5,
  UnitAttention: 0x6,
  DataProtect: 0x7,
  BlankCheck: 0x8,
  VendorSpecific: 0x9,
  CopyAborted: 0xa,
  AbortedCommand: 0xb,
  VolumeOverflow: 0xd,
  Miscompare: 0xe,
  Completed: 0xf,
} as const;

export type SenseKey = (typeof SenseKey)[keyof typeof SenseKey];

/**
 * Where the error is, for the sense-key-specific FIELD POINTER (SPC-5 §4.4.2.3.2).
 * `commandData: true` = the byte is in the CDB (C/D = 1), `false` = in the parameter list (data-out).
 * `byte` is the zero-based byte offset (0..65535). `bit` (0..7), when given, sets BPV and points at the
 * left-most bit of the field in error.
 */
export interface FieldPointer {
  commandData: boolean;
  byte: number;
  bit?: number;
}

/**
 * The meaning of one sense response, independent of its format.
 * At most one of `fieldPointer` and `progress` is used (both live in the sense-key-specific bytes).
 */
export interface SenseInfo {
  key: number;
  /** ADDITIONAL SENSE CODE. */
  asc: number;
  /** ADDITIONAL SENSE CODE QUALIFIER. */
  ascq: number;
  /** Sense-key-specific field pointer (ILLEGAL REQUEST). */
  fieldPointer?: FieldPointer;
  /**
   * Sense-key-specific PROGRESS INDICATION (NOT READY, e.g. FORMAT in progress): a fraction of 65536
   * (0 = just started, 65535 = almost done).
   */
  progress?: number;
  /** INFORMATION field: e.g. the first LBA in error, or the miscompare offset in bytes. */
  information?: bigint;
  /** COMMAND-SPECIFIC INFORMATION field. */
  commandSpecificInformation?: bigint;
}

export interface EncodeSenseOptions {
  /** Descriptor format (0x72/0x73), used when the control mode page has D_SENSE = 1. Default: fixed (0x70/0x71). */
  descriptor?: boolean;
  /** A deferred error (0x71/0x73) instead of a current one (0x70/0x72). */
  deferred?: boolean;
}

/** The longest sense the kernel ring carries (TCMU_SENSE_BUFFERSIZE). */
export const maximumSenseLength = 96;

const FIXED_LENGTH = 18;
const MAX_U32 = 0xffff_ffffn;
const MAX_U64 = 0xffff_ffff_ffff_ffffn;

function senseKeySpecific(info: SenseInfo): [number, number, number] | undefined {
  if (info.fieldPointer) {
    const { commandData, byte, bit } = info.fieldPointer;
    let b0 = 0x80;
    if (commandData) b0 |= 0x40;
    if (bit !== undefined) b0 |= 0x08 | (bit & 0x07);
    return [b0, (byte >> 8) & 0xff, byte & 0xff];
  }
  if (info.progress !== undefined) {
    const p = Math.max(0, Math.min(0xffff, Math.trunc(info.progress)));
    return [0x80, p >> 8, p & 0xff];
  }
  return undefined;
}

function writeBigEndian(target: Uint8Array, offset: number, length: number, value: bigint): void {
  let v = value;
  for (let i = offset + length - 1; i >= offset; i--) {
    target[i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

/**
 * Encode sense data. Fixed format is 18 bytes; the INFORMATION field is marked VALID only when given
 * and it fits in 32 bits (otherwise use descriptor format, which carries 64 bits).
 * Descriptor format carries: information (type 00h), command-specific information (01h) and
 * sense-key specific (02h) descriptors, in that order, only those that are given.
 */
export function encodeSense(info: SenseInfo, options: EncodeSenseOptions = {}): Uint8Array {
  const sks = senseKeySpecific(info);
  if (!options.descriptor) {
    const out = new Uint8Array(FIXED_LENGTH);
    out[0] = options.deferred ? 0x71 : 0x70;
    out[2] = info.key & 0x0f;
    if (info.information !== undefined && info.information >= 0n && info.information <= MAX_U32) {
      out[0] |= 0x80;
      writeBigEndian(out, 3, 4, info.information);
    }
    out[7] = FIXED_LENGTH - 8;
    if (info.commandSpecificInformation !== undefined) {
      writeBigEndian(out, 8, 4, BigInt.asUintN(32, info.commandSpecificInformation));
    }
    out[12] = info.asc & 0xff;
    out[13] = info.ascq & 0xff;
    if (sks) out.set(sks, 15);
    return out;
  }
  const descriptors: Uint8Array[] = [];
  if (info.information !== undefined) {
    const d = new Uint8Array(12);
    d[0] = 0x00;
    d[1] = 0x0a;
    d[2] = 0x80;
    writeBigEndian(d, 4, 8, BigInt.asUintN(64, info.information) & MAX_U64);
    descriptors.push(d);
  }
  if (info.commandSpecificInformation !== undefined) {
    const d = new Uint8Array(12);
    d[0] = 0x01;
    d[1] = 0x0a;
    writeBigEndian(d, 4, 8, BigInt.asUintN(64, info.commandSpecificInformation));
    descriptors.push(d);
  }
  if (sks) {
    const d = new Uint8Array(8);
    d[0] = 0x02;
    d[1] = 0x06;
    d.set(sks, 4);
    descriptors.push(d);
  }
  const total = 8 + descriptors.reduce((n, d) => n + d.length, 0);
  const out = new Uint8Array(total);
  out[0] = options.deferred ? 0x73 : 0x72;
  out[1] = info.key & 0x0f;
  out[2] = info.asc & 0xff;
  out[3] = info.ascq & 0xff;
  out[7] = total - 8;
  let at = 8;
  for (const d of descriptors) {
    out.set(d, at);
    at += d.length;
  }
  return out;
}

/** The result of {@link decodeSense}: the meaning plus how it was encoded. */
export interface DecodedSense extends SenseInfo {
  responseCode: number;
  descriptor: boolean;
  deferred: boolean;
}

function readBigEndian(bytes: Uint8Array, offset: number, length: number): bigint {
  let v = 0n;
  for (let i = 0; i < length; i++) v = (v << 8n) | BigInt(bytes[offset + i] ?? 0);
  return v;
}

function parseSenseKeySpecific(key: number, b0: number, b1: number, b2: number): Partial<SenseInfo> {
  if ((b0 & 0x80) === 0) return {};
  if (key === SenseKey.IllegalRequest) {
    const pointer: FieldPointer = { commandData: (b0 & 0x40) !== 0, byte: (b1 << 8) | b2 };
    if (b0 & 0x08) pointer.bit = b0 & 0x07;
    return { fieldPointer: pointer };
  }
  if (key === SenseKey.NotReady || key === SenseKey.NoSense) return { progress: (b1 << 8) | b2 };
  return {};
}

/**
 * Decode fixed or descriptor sense data (what an initiator does). Returns undefined when the bytes are
 * not sense data (too short or an unknown response code). Never throws.
 */
export function decodeSense(bytes: Uint8Array): DecodedSense | undefined {
  if (bytes.length < 1) return undefined;
  const responseCode = bytes[0]! & 0x7f;
  if (responseCode === 0x70 || responseCode === 0x71) {
    if (bytes.length < 3) return undefined;
    const key = bytes[2]! & 0x0f;
    const out: DecodedSense = {
      responseCode,
      descriptor: false,
      deferred: responseCode === 0x71,
      key,
      asc: bytes[12] ?? 0,
      ascq: bytes[13] ?? 0,
    };
    if (bytes[0]! & 0x80) out.information = readBigEndian(bytes, 3, 4);
    const csi = readBigEndian(bytes, 8, 4);
    if (csi !== 0n) out.commandSpecificInformation = csi;
    Object.assign(out, parseSenseKeySpecific(key, bytes[15] ?? 0, bytes[16] ?? 0, bytes[17] ?? 0));
    return out;
  }
  if (responseCode === 0x72 || responseCode === 0x73) {
    if (bytes.length < 4) return undefined;
    const key = bytes[1]! & 0x0f;
    const out: DecodedSense = {
      responseCode,
      descriptor: true,
      deferred: responseCode === 0x73,
      key,
      asc: bytes[2]!,
      ascq: bytes[3]!,
    };
    const end = Math.min(bytes.length, 8 + (bytes[7] ?? 0));
    let at = 8;
    while (at + 2 <= end) {
      const type = bytes[at]!;
      const length = bytes[at + 1]!;
      if (at + 2 + length > end) break;
      if (type === 0x00 && length >= 0x0a && bytes[at + 2]! & 0x80)
        out.information = readBigEndian(bytes, at + 4, 8);
      if (type === 0x01 && length >= 0x0a) out.commandSpecificInformation = readBigEndian(bytes, at + 4, 8);
      if (type === 0x02 && length >= 0x06)
        Object.assign(out, parseSenseKeySpecific(key, bytes[at + 4]!, bytes[at + 5]!, bytes[at + 6]!));
      at += 2 + length;
    }
    return out;
  }
  return undefined;
}

// ---- Ready-made sense for the mapping in scsi-coverage.md (tcmu-runner's, which initiators expect).

/** Any sense key / ASC / ASCQ. */
export function sense(key: number, asc: number, ascq: number, extra: Partial<SenseInfo> = {}): SenseInfo {
  return { key, asc, ascq, ...extra };
}

/** 05/21 00 LOGICAL BLOCK ADDRESS OUT OF RANGE. `lba`, when given, goes in the INFORMATION field. */
export function lbaOutOfRange(lba?: bigint): SenseInfo {
  return sense(SenseKey.IllegalRequest, 0x21, 0x00, lba === undefined ? {} : { information: lba });
}

/** 05/24 00 INVALID FIELD IN CDB, pointing at CDB byte `byte` (and bit `bit`, the left-most bit of the field). */
export function invalidFieldInCdb(byte: number, bit?: number): SenseInfo {
  return sense(SenseKey.IllegalRequest, 0x24, 0x00, {
    fieldPointer: bit === undefined ? { commandData: true, byte } : { commandData: true, byte, bit },
  });
}

/** 05/26 00 INVALID FIELD IN PARAMETER LIST, pointing at parameter-list byte `byte` (and bit `bit`). */
export function invalidFieldInParameterList(byte: number, bit?: number): SenseInfo {
  return sense(SenseKey.IllegalRequest, 0x26, 0x00, {
    fieldPointer: bit === undefined ? { commandData: false, byte } : { commandData: false, byte, bit },
  });
}

/** 05/1A 00 PARAMETER LIST LENGTH ERROR. */
export function parameterListLengthError(): SenseInfo {
  return sense(SenseKey.IllegalRequest, 0x1a, 0x00);
}

/** 05/20 00 INVALID COMMAND OPERATION CODE, pointing at CDB byte 0. */
export function invalidOpcode(): SenseInfo {
  return sense(SenseKey.IllegalRequest, 0x20, 0x00, { fieldPointer: { commandData: true, byte: 0, bit: 7 } });
}

/** 05/25 00 LOGICAL UNIT NOT SUPPORTED. */
export function logicalUnitNotSupported(): SenseInfo {
  return sense(SenseKey.IllegalRequest, 0x25, 0x00);
}

/** 05/39 00 SAVING PARAMETERS NOT SUPPORTED (MODE SELECT with SP = 1), pointing at the SP bit when given. */
export function savingParametersNotSupported(byte = 1, bit = 0): SenseInfo {
  return sense(SenseKey.IllegalRequest, 0x39, 0x00, { fieldPointer: { commandData: true, byte, bit } });
}

/** 05/55 03 INSUFFICIENT RESOURCES. */
export function insufficientResources(): SenseInfo {
  return sense(SenseKey.IllegalRequest, 0x55, 0x03);
}

/** 03/11 00 UNRECOVERED READ ERROR; `lba` = first failing LBA in INFORMATION. */
export function unrecoveredReadError(lba?: bigint): SenseInfo {
  return sense(SenseKey.MediumError, 0x11, 0x00, lba === undefined ? {} : { information: lba });
}

/** 03/0C 00 WRITE ERROR; `lba` = first failing LBA in INFORMATION. */
export function writeError(lba?: bigint): SenseInfo {
  return sense(SenseKey.MediumError, 0x0c, 0x00, lba === undefined ? {} : { information: lba });
}

/** 03/31 01 FORMAT COMMAND FAILED. */
export function formatCommandFailed(): SenseInfo {
  return sense(SenseKey.MediumError, 0x31, 0x01);
}

/** 04/44 00 INTERNAL TARGET FAILURE: any backend failure that is not a read or write error. */
export function hardwareError(): SenseInfo {
  return sense(SenseKey.HardwareError, 0x44, 0x00);
}

/** 0E/1D 00 MISCOMPARE DURING VERIFY OPERATION; `offset` = byte offset of the first miscompare. */
export function miscompare(offset?: bigint | number): SenseInfo {
  return sense(SenseKey.Miscompare, 0x1d, 0x00, offset === undefined ? {} : { information: BigInt(offset) });
}

/** 06/29 00 POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (unit attention). */
export function powerOnReset(): SenseInfo {
  return sense(SenseKey.UnitAttention, 0x29, 0x00);
}

/** 06/2A 01 MODE PARAMETERS CHANGED (unit attention, to the other initiators). */
export function modeParametersChanged(): SenseInfo {
  return sense(SenseKey.UnitAttention, 0x2a, 0x01);
}

/** 06/2A 09 CAPACITY DATA HAS CHANGED (unit attention after a resize). */
export function capacityChanged(): SenseInfo {
  return sense(SenseKey.UnitAttention, 0x2a, 0x09);
}

/** 06/3F 0E REPORTED LUNS DATA HAS CHANGED. */
export function reportedLunsDataChanged(): SenseInfo {
  return sense(SenseKey.UnitAttention, 0x3f, 0x0e);
}

/** 06/38 07 THIN PROVISIONING SOFT THRESHOLD REACHED. */
export function thinProvisioningSoftThresholdReached(): SenseInfo {
  return sense(SenseKey.UnitAttention, 0x38, 0x07);
}

/**
 * 02/04 04 LOGICAL UNIT NOT READY, FORMAT IN PROGRESS, with the PROGRESS INDICATION.
 * `progress` is a fraction 0..1 of the work done, or an integer 0..65535 already scaled when > 1.
 */
export function formatInProgress(progress: number): SenseInfo {
  const scaled = progress <= 1 ? Math.floor(progress * 65536) : progress;
  return sense(SenseKey.NotReady, 0x04, 0x04, { progress: Math.max(0, Math.min(0xffff, scaled)) });
}

/** 02/04 01 LOGICAL UNIT IS IN PROCESS OF BECOMING READY. */
export function becomingReady(): SenseInfo {
  return sense(SenseKey.NotReady, 0x04, 0x01);
}

/** 02/04 02 LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED (stopped by START STOP UNIT). */
export function initializingCommandRequired(): SenseInfo {
  return sense(SenseKey.NotReady, 0x04, 0x02);
}

/** 02/3A 00 MEDIUM NOT PRESENT. */
export function mediumNotPresent(): SenseInfo {
  return sense(SenseKey.NotReady, 0x3a, 0x00);
}

/** 07/27 00 WRITE PROTECTED (a write to a read-only device). */
export function writeProtected(): SenseInfo {
  return sense(SenseKey.DataProtect, 0x27, 0x00);
}

/** 07/27 07 SPACE ALLOCATION FAILED WRITE PROTECT (thin pool out of space). */
export function spaceAllocationFailed(): SenseInfo {
  return sense(SenseKey.DataProtect, 0x27, 0x07);
}

/** 0B/00 00 ABORTED COMMAND, no additional sense. */
export function abortedCommand(): SenseInfo {
  return sense(SenseKey.AbortedCommand, 0x00, 0x00);
}

/** 00/00 00 NO SENSE (e.g. REQUEST SENSE with nothing to report). */
export function noSense(): SenseInfo {
  return sense(SenseKey.NoSense, 0x00, 0x00);
}
