// Data-out parameter lists: UNMAP (SBC-4 §5.32.2) and FORMAT UNIT (SBC-4 §5.4.2), parsed and built.
import { readBig, readUint, writeBig, writeUint } from './bytes';
import {
  encodeSense,
  invalidFieldInParameterList,
  lbaOutOfRange,
  noSense,
  parameterListLengthError,
  type SenseInfo,
} from './sense';

/** One UNMAP block descriptor: `count` blocks from `lba`. */
export interface UnmapDescriptor {
  lba: bigint;
  /** NUMBER OF LOGICAL BLOCKS (0 = nothing, not an error). */
  count: number;
}

export interface UnmapLimits {
  /** Blocks on the medium: a descriptor past the end → 05/21 00. */
  capacityBlocks?: bigint;
  /** MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT of the Block Limits page (0 = no check). */
  maximumDescriptors?: number;
  /** MAXIMUM UNMAP LBA COUNT of the Block Limits page: blocks per command, all descriptors together (0 = no check). */
  maximumLbaCount?: number;
}

export type UnmapParseResult = { ok: true; descriptors: UnmapDescriptor[] } | { ok: false; sense: SenseInfo };

/**
 * Parse an UNMAP parameter list (8-byte header, 16-byte block descriptors). Reads
 * `min(parameterListLength, data.length)` bytes. Length 0 → no descriptors. Errors (LIO's mapping):
 * 1..7 bytes, or UNMAP DATA LENGTH / BLOCK DESCRIPTOR DATA LENGTH larger than the list → 05/1A 00;
 * more descriptors than `maximumDescriptors` → 05/26 00 at byte 2; the running block total above
 * `maximumLbaCount` → 05/26 00 at the count that crossed it; a range past `capacityBlocks` → 05/21 00
 * with the LBA in INFORMATION.
 * An incomplete trailing descriptor (length not a multiple of 16) is ignored, as SBC-4 allows.
 */
export function parseUnmapParameterList(
  data: Uint8Array,
  parameterListLength: number,
  limits: UnmapLimits = {},
): UnmapParseResult {
  const length = Math.min(parameterListLength, data.length);
  if (length === 0) return { ok: true, descriptors: [] };
  if (length < 8) return { ok: false, sense: parameterListLengthError() };
  const dataLength = readUint(data, 0, 2);
  const descriptorLength = readUint(data, 2, 2);
  if (dataLength > length - 2 || descriptorLength > length - 8)
    return { ok: false, sense: parameterListLengthError() };
  const n = Math.floor(descriptorLength / 16);
  if (limits.maximumDescriptors && n > limits.maximumDescriptors)
    return { ok: false, sense: invalidFieldInParameterList(2, 7) };
  const descriptors: UnmapDescriptor[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    const at = 8 + 16 * i;
    const lba = readBig(data, at, 8);
    const count = readUint(data, at + 8, 4);
    total += count;
    if (limits.maximumLbaCount && total > limits.maximumLbaCount)
      return { ok: false, sense: invalidFieldInParameterList(at + 8, 7) };
    if (limits.capacityBlocks !== undefined && lba + BigInt(count) > limits.capacityBlocks)
      return { ok: false, sense: lbaOutOfRange(lba) };
    descriptors.push({ lba, count });
  }
  return { ok: true, descriptors };
}

/** Build an UNMAP parameter list (what Linux sd and sg_unmap send). */
export function buildUnmapParameterList(descriptors: readonly UnmapDescriptor[]): Uint8Array {
  const out = new Uint8Array(8 + 16 * descriptors.length);
  writeUint(out, 0, 2, out.length - 2, 'unmap data length');
  writeUint(out, 2, 2, 16 * descriptors.length, 'block descriptor data length');
  descriptors.forEach((d, i) => {
    writeBig(out, 8 + 16 * i, 8, d.lba, 'lba');
    writeUint(out, 16 + 16 * i, 4, d.count, 'count');
  });
  return out;
}

/** The FORMAT UNIT parameter list header (short: 4 bytes, long: 8 bytes). */
export interface FormatUnitHeader {
  /** PROTECTION FIELD USAGE (always 0 here). */
  protectionFieldUsage: number;
  /** FOV: the following option bits are valid. */
  formatOptionsValid: boolean;
  dpry: boolean;
  dcrt: boolean;
  stpf: boolean;
  ip: boolean;
  /** IMMED: return status at once; progress is then reported through sense (02/04 04). */
  immed: boolean;
  defectListLength: number;
}

export type FormatUnitParseResult = { ok: true; header: FormatUnitHeader } | { ok: false; sense: SenseInfo };

/**
 * Parse the FORMAT UNIT parameter list header (FMTDATA = 1). `longList` is the LONGLIST bit of the CDB.
 * Errors: list shorter than the header → 05/1A 00; PROTECTION FIELD USAGE ≠ 0, DPRY/DCRT/STPF/IP set
 * with FOV = 0, IP (initialization pattern) or a defect list (not supported) → 05/26 00 at the field.
 */
export function parseFormatUnitParameterList(data: Uint8Array, longList: boolean): FormatUnitParseResult {
  const headerLength = longList ? 8 : 4;
  if (data.length < headerLength) return { ok: false, sense: parameterListLengthError() };
  const b1 = data[1]!;
  const header: FormatUnitHeader = {
    protectionFieldUsage: data[0]! & 0x07,
    formatOptionsValid: (b1 & 0x80) !== 0,
    dpry: (b1 & 0x40) !== 0,
    dcrt: (b1 & 0x20) !== 0,
    stpf: (b1 & 0x10) !== 0,
    ip: (b1 & 0x08) !== 0,
    immed: (b1 & 0x02) !== 0,
    defectListLength: longList ? readUint(data, 4, 4) : readUint(data, 2, 2),
  };
  if (data[0]! & 0xf8)
    return { ok: false, sense: invalidFieldInParameterList(0, 31 - Math.clz32(data[0]! & 0xf8)) };
  if (header.protectionFieldUsage) return { ok: false, sense: invalidFieldInParameterList(0, 2) };
  if (!header.formatOptionsValid && b1 & 0x78)
    return { ok: false, sense: invalidFieldInParameterList(1, 31 - Math.clz32(b1 & 0x78)) };
  if (header.ip) return { ok: false, sense: invalidFieldInParameterList(1, 3) };
  if (b1 & 0x05) return { ok: false, sense: invalidFieldInParameterList(1, b1 & 0x04 ? 2 : 0) };
  if (header.defectListLength) return { ok: false, sense: invalidFieldInParameterList(longList ? 4 : 2, 7) };
  return { ok: true, header };
}

/**
 * REQUEST SENSE parameter data: the pending sense (or NO SENSE), in descriptor format when DESC is set,
 * truncated to the allocation length.
 */
export function encodeRequestSense(
  pending: SenseInfo | undefined,
  request: { desc: boolean; allocationLength: number },
): Uint8Array {
  const data = encodeSense(pending ?? noSense(), { descriptor: request.desc });
  return data.length > request.allocationLength ? data.slice(0, request.allocationLength) : data;
}
