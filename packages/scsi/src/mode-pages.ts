// Mode pages 01h/08h/0Ah, MODE SENSE(6/10) data and MODE SELECT(6/10) parameter parsing (SPC-5 §7.5, SBC-4 §6.5).
import { fit, readBig, readUint, writeBig, writeUint } from './bytes';
import type { ModeSelectCdb, ModeSenseCdb } from './cdb-types';
import { PageControl } from './cdb-types';
import type { FieldSpec } from './command-table';
import { ScsiError, ScsiErrorCode } from './errors';
import {
  invalidFieldInCdb,
  invalidFieldInParameterList,
  parameterListLengthError,
  type SenseInfo,
  SenseKey,
  sense,
} from './sense';

/** Read-Write Error Recovery mode page (01h), SBC-4 §6.5.10. */
export interface ReadWriteErrorRecoveryPage {
  awre: boolean;
  arre: boolean;
  tb: boolean;
  rc: boolean;
  eer: boolean;
  per: boolean;
  dte: boolean;
  dcr: boolean;
  readRetryCount: number;
  writeRetryCount: number;
  /** RECOVERY TIME LIMIT in milliseconds. */
  recoveryTimeLimit: number;
}

/** Caching mode page (08h), SBC-4 §6.5.5. `wce`: write cache enabled; `rcd`: read cache disabled. */
export interface CachingPage {
  ic: boolean;
  abpf: boolean;
  cap: boolean;
  disc: boolean;
  size: boolean;
  wce: boolean;
  mf: boolean;
  rcd: boolean;
  demandReadRetentionPriority: number;
  writeRetentionPriority: number;
  disablePrefetchTransferLength: number;
  minimumPrefetch: number;
  maximumPrefetch: number;
  maximumPrefetchCeiling: number;
  fsw: boolean;
  lbcss: boolean;
  dra: boolean;
  nvDis: boolean;
  numberOfCacheSegments: number;
  cacheSegmentSize: number;
}

/** Control mode page (0Ah), SPC-5 §7.5.8. `dSense`: report descriptor-format sense. */
export interface ControlPage {
  tst: number;
  tmfOnly: boolean;
  dpicz: boolean;
  dSense: boolean;
  gltsd: boolean;
  rlec: boolean;
  queueAlgorithmModifier: number;
  nuar: boolean;
  qerr: number;
  rac: boolean;
  uaInterlockControl: number;
  swp: boolean;
  ato: boolean;
  tas: boolean;
  atmpe: boolean;
  rwwp: boolean;
  autoloadMode: number;
  /** BUSY TIMEOUT PERIOD in 100 ms units (0xFFFF = unlimited). */
  busyTimeoutPeriod: number;
  /** EXTENDED SELF-TEST COMPLETION TIME in seconds. */
  extendedSelfTestCompletionTime: number;
}

/**
 * A set of mode pages, one value set (current, changeable, default or saved). A page that is absent
 * is not supported. Fields left out are 0/false. In the *changeable* set a field's value is its mask:
 * `true` (or all ones for numbers) = the initiator may change it.
 */
export interface ModePages {
  readWriteErrorRecovery?: Partial<ReadWriteErrorRecoveryPage>;
  caching?: Partial<CachingPage>;
  control?: Partial<ControlPage>;
}

export type ModePageName = keyof ModePages;

/** Mode page codes. */
export const ModePageCode = {
  ReadWriteErrorRecovery: 0x01,
  Caching: 0x08,
  Control: 0x0a,
  AllPages: 0x3f,
} as const;

interface PageSpec {
  name: ModePageName;
  pageCode: number;
  subpageCode: number;
  /** Total bytes including the 2-byte header. */
  length: number;
  fields: FieldSpec[];
}

const f = (key: string, byte: number, bit: number): FieldSpec => ({ key, kind: 'flag', byte, bit });
const b = (key: string, byte: number, shift: number, width: number): FieldSpec => ({
  key,
  kind: 'bits',
  byte,
  shift,
  width,
});
const u = (key: string, byte: number, length: number): FieldSpec => ({ key, kind: 'uint', byte, length });

const pageSpecs: readonly PageSpec[] = [
  {
    name: 'readWriteErrorRecovery',
    pageCode: 0x01,
    subpageCode: 0,
    length: 12,
    fields: [
      f('awre', 2, 7),
      f('arre', 2, 6),
      f('tb', 2, 5),
      f('rc', 2, 4),
      f('eer', 2, 3),
      f('per', 2, 2),
      f('dte', 2, 1),
      f('dcr', 2, 0),
      u('readRetryCount', 3, 1),
      u('writeRetryCount', 8, 1),
      u('recoveryTimeLimit', 10, 2),
    ],
  },
  {
    name: 'caching',
    pageCode: 0x08,
    subpageCode: 0,
    length: 20,
    fields: [
      f('ic', 2, 7),
      f('abpf', 2, 6),
      f('cap', 2, 5),
      f('disc', 2, 4),
      f('size', 2, 3),
      f('wce', 2, 2),
      f('mf', 2, 1),
      f('rcd', 2, 0),
      b('demandReadRetentionPriority', 3, 4, 4),
      b('writeRetentionPriority', 3, 0, 4),
      u('disablePrefetchTransferLength', 4, 2),
      u('minimumPrefetch', 6, 2),
      u('maximumPrefetch', 8, 2),
      u('maximumPrefetchCeiling', 10, 2),
      f('fsw', 12, 7),
      f('lbcss', 12, 6),
      f('dra', 12, 5),
      f('nvDis', 12, 0),
      u('numberOfCacheSegments', 13, 1),
      u('cacheSegmentSize', 14, 2),
    ],
  },
  {
    name: 'control',
    pageCode: 0x0a,
    subpageCode: 0,
    length: 12,
    fields: [
      b('tst', 2, 5, 3),
      f('tmfOnly', 2, 4),
      f('dpicz', 2, 3),
      f('dSense', 2, 2),
      f('gltsd', 2, 1),
      f('rlec', 2, 0),
      b('queueAlgorithmModifier', 3, 4, 4),
      f('nuar', 3, 3),
      b('qerr', 3, 1, 2),
      f('rac', 4, 6),
      b('uaInterlockControl', 4, 4, 2),
      f('swp', 4, 3),
      f('ato', 5, 7),
      f('tas', 5, 6),
      f('atmpe', 5, 5),
      f('rwwp', 5, 4),
      b('autoloadMode', 5, 0, 3),
      u('busyTimeoutPeriod', 8, 2),
      u('extendedSelfTestCompletionTime', 10, 2),
    ],
  },
];

function specOf(name: ModePageName): PageSpec {
  return pageSpecs.find((p) => p.name === name)!;
}

function writePageFields(
  out: Uint8Array,
  spec: PageSpec,
  values: Record<string, unknown>,
  mask: boolean,
): void {
  for (const field of spec.fields) {
    const v = values[field.key];
    if (v === undefined || v === false || v === 0) continue;
    if (field.kind === 'flag') {
      if (v) out[field.byte]! |= 1 << field.bit;
    } else if (field.kind === 'bits') {
      const max = (1 << field.width) - 1;
      const n = v === true && mask ? max : Number(v);
      if (!Number.isInteger(n) || n < 0 || n > max)
        throw new ScsiError(ScsiErrorCode.FieldRange, `${spec.name}.${field.key} must be 0..${max}`);
      out[field.byte]! |= n << field.shift;
    } else if (field.kind === 'uint') {
      const max = 2 ** (8 * field.length) - 1;
      writeUint(
        out,
        field.byte,
        field.length,
        v === true && mask ? max : Number(v),
        `${spec.name}.${field.key}`,
      );
    }
  }
}

function readPageFields(bytes: Uint8Array, spec: PageSpec): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of spec.fields) {
    if (field.kind === 'flag') out[field.key] = (bytes[field.byte]! & (1 << field.bit)) !== 0;
    else if (field.kind === 'bits')
      out[field.key] = (bytes[field.byte]! >> field.shift) & ((1 << field.width) - 1);
    else if (field.kind === 'uint') out[field.key] = readUint(bytes, field.byte, field.length);
  }
  return out;
}

/**
 * One mode page's bytes (header + parameters). `parametersSavable` sets PS. In changeable masks a
 * number field may be given as `true` to mean all ones.
 */
export function encodeModePage(
  name: ModePageName,
  values: ModePages[ModePageName],
  options: { parametersSavable?: boolean; changeableMask?: boolean } = {},
): Uint8Array {
  const spec = specOf(name);
  const out = new Uint8Array(spec.length);
  out[0] = (options.parametersSavable ? 0x80 : 0) | spec.pageCode;
  out[1] = spec.length - 2;
  writePageFields(out, spec, (values ?? {}) as Record<string, unknown>, options.changeableMask ?? false);
  return out;
}

/** Decode one mode page's bytes (header included) into its fields; undefined for an unknown page. */
export function decodeModePage(
  bytes: Uint8Array,
): { name: ModePageName; values: Record<string, unknown> } | undefined {
  const spec = pageSpecs.find((p) => p.pageCode === ((bytes[0] ?? 0) & 0x3f));
  if (!spec || bytes.length < spec.length || (bytes[0]! & 0x40) !== 0) return undefined;
  return { name: spec.name, values: readPageFields(bytes, spec) };
}

/** The four value sets a device keeps (SPC-5 §7.5.2). `saved` absent = saving not supported. */
export interface ModePageSets {
  current: ModePages;
  changeable: ModePages;
  default: ModePages;
  saved?: ModePages;
}

/** A mode parameter block descriptor (SBC-4 §6.5.2): the medium's geometry. */
export interface BlockDescriptor {
  numberOfBlocks: bigint;
  blockLength: number;
}

export interface ModeSenseDevice {
  pages: ModePageSets;
  /** WP bit of the DEVICE-SPECIFIC PARAMETER: the medium is write-protected. */
  writeProtect?: boolean;
  /** DPOFUA bit: DPO and FUA are supported. Default true. */
  dpoFua?: boolean;
  /** Returned unless DBD is set; omitted when absent. */
  blockDescriptor?: BlockDescriptor;
}

/** The fields of MODE SENSE(6/10) that matter here (a decoded ModeSenseCdb fits). */
export type ModeSenseRequest = Pick<
  ModeSenseCdb,
  'name' | 'dbd' | 'llbaa' | 'pc' | 'pageCode' | 'subpageCode' | 'allocationLength'
>;

export type EncodeResult = { ok: true; data: Uint8Array } | { ok: false; sense: SenseInfo };

const pageSetKey = ['current', 'changeable', 'default', 'saved'] as const;

/**
 * MODE SENSE(6) or (10) parameter data: header, block descriptor (unless DBD or none), the requested
 * page(s) in ascending page-code order for 3Fh. Truncated to the allocation length with MODE DATA
 * LENGTH unchanged. Errors (as sense): unsupported page → 05/24 00 at CDB byte 2 bit 5, unsupported
 * subpage → 05/24 00 at byte 3, saved values without saving → 05/39 00 at byte 2 bit 7.
 */
export function encodeModeSense(request: ModeSenseRequest, device: ModeSenseDevice): EncodeResult {
  const ten = request.name === 'MODE SENSE(10)';
  const { pageCode, subpageCode } = request;
  const set = device.pages[pageSetKey[request.pc]];
  if (request.pc === PageControl.Saved && !set) {
    return {
      ok: false,
      sense: sense(SenseKey.IllegalRequest, 0x39, 0x00, {
        fieldPointer: { commandData: true, byte: 2, bit: 7 },
      }),
    };
  }
  const values = set ?? {};
  const supported = pageSpecs.filter((p) => device.pages.current[p.name] !== undefined);
  let selected: PageSpec[];
  if (pageCode === ModePageCode.AllPages) {
    if (subpageCode !== 0x00 && subpageCode !== 0xff) return { ok: false, sense: invalidFieldInCdb(3, 7) };
    selected = supported;
  } else {
    const page = supported.find((p) => p.pageCode === pageCode);
    if (!page) return { ok: false, sense: invalidFieldInCdb(2, 5) };
    if (subpageCode !== page.subpageCode && subpageCode !== 0xff)
      return { ok: false, sense: invalidFieldInCdb(3, 7) };
    selected = [page];
  }
  const savable = device.pages.saved !== undefined;
  const pages = selected.map((p) =>
    encodeModePage(p.name, values[p.name] ?? {}, {
      parametersSavable: savable,
      changeableMask: request.pc === PageControl.Changeable,
    }),
  );

  const descriptor = !request.dbd && device.blockDescriptor ? device.blockDescriptor : undefined;
  const long = ten && request.llbaa && descriptor !== undefined;
  const descriptorBytes = new Uint8Array(descriptor ? (long ? 16 : 8) : 0);
  if (descriptor) {
    if (long) {
      writeBig(descriptorBytes, 0, 8, descriptor.numberOfBlocks, 'numberOfBlocks');
      writeUint(descriptorBytes, 12, 4, descriptor.blockLength, 'blockLength');
    } else {
      const blocks =
        descriptor.numberOfBlocks > 0xffff_ffffn ? 0xffff_ffff : Number(descriptor.numberOfBlocks);
      writeUint(descriptorBytes, 0, 4, blocks, 'numberOfBlocks');
      writeUint(descriptorBytes, 5, 3, descriptor.blockLength, 'blockLength');
    }
  }
  const headerLength = ten ? 8 : 4;
  const total = headerLength + descriptorBytes.length + pages.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  const deviceSpecific = (device.writeProtect ? 0x80 : 0) | ((device.dpoFua ?? true) ? 0x10 : 0);
  if (ten) {
    writeUint(out, 0, 2, total - 2, 'mode data length');
    out[3] = deviceSpecific;
    if (long) out[4] = 0x01;
    writeUint(out, 6, 2, descriptorBytes.length, 'block descriptor length');
  } else {
    if (total - 1 > 0xff)
      throw new ScsiError(ScsiErrorCode.FieldRange, 'mode data too long for MODE SENSE(6)');
    out[0] = total - 1;
    out[2] = deviceSpecific;
    out[3] = descriptorBytes.length;
  }
  out.set(descriptorBytes, headerLength);
  let at = headerLength + descriptorBytes.length;
  for (const p of pages) {
    out.set(p, at);
    at += p.length;
  }
  return { ok: true, data: fit(out, request.allocationLength) };
}

export interface ModeSelectDevice {
  /** The current values: a field not changeable must be sent back unchanged. */
  current: ModePages;
  /** Changeable masks (see {@link ModePages}). */
  changeable: ModePages;
  /** SP = 1 is accepted only when true. Default false. */
  savable?: boolean;
  /** The medium's geometry: a block descriptor must carry this block length. */
  blockDescriptor?: BlockDescriptor;
}

export type ModeSelectRequest = Pick<ModeSelectCdb, 'name' | 'pf' | 'sp' | 'parameterListLength'>;

export type ModeSelectResult =
  | {
      ok: true;
      /** The new values of every page in the list (complete pages: unchanged fields included). */
      pages: ModePages;
      /** The block descriptor, when one was sent. */
      blockDescriptor?: BlockDescriptor;
      /** SP was set (the caller saves the pages). */
      save: boolean;
    }
  | { ok: false; sense: SenseInfo };

/**
 * Parse and check a MODE SELECT(6/10) parameter list against the device's current and changeable values.
 * Only `min(parameterListLength, data.length)` bytes are read. Errors (as sense, field pointers into the
 * parameter list unless noted): PF = 0 → 05/24 00 CDB byte 1 bit 4; SP = 1 without saving → 05/24 00 CDB
 * byte 1 bit 0; list shorter than a header/descriptor/page → 05/1A 00; nonzero MODE DATA LENGTH or
 * MEDIUM TYPE, reserved bits, bad BLOCK DESCRIPTOR LENGTH, wrong block length, unknown page, wrong PAGE
 * LENGTH, or a changed bit that is not changeable → 05/26 00 at that byte and bit. The PS bit is ignored.
 */
export function parseModeSelect(
  request: ModeSelectRequest,
  data: Uint8Array,
  device: ModeSelectDevice,
): ModeSelectResult {
  const ten = request.name === 'MODE SELECT(10)';
  const length = Math.min(request.parameterListLength, data.length);
  const list = data.subarray(0, length);
  if (length === 0) return { ok: true, pages: {}, save: request.sp };
  if (!request.pf) return { ok: false, sense: invalidFieldInCdb(1, 4) };
  if (request.sp && !device.savable) return { ok: false, sense: invalidFieldInCdb(1, 0) };
  const headerLength = ten ? 8 : 4;
  if (length < headerLength) return { ok: false, sense: parameterListLengthError() };
  const bad = (byte: number, bit?: number) => ({
    ok: false as const,
    sense: invalidFieldInParameterList(byte, bit),
  });
  const leftmost = (mask: number) => 31 - Math.clz32(mask);

  let descriptorLength: number;
  let longLba = false;
  if (ten) {
    if (list[0] || list[1]) return bad(list[0] ? 0 : 1, leftmost(list[0] || list[1]!));
    if (list[2]) return bad(2, leftmost(list[2]));
    if (list[4]! & 0xfe) return bad(4, leftmost(list[4]! & 0xfe));
    longLba = (list[4]! & 0x01) !== 0;
    if (list[5]) return bad(5, leftmost(list[5]));
    descriptorLength = readUint(list, 6, 2);
  } else {
    if (list[0]) return bad(0, leftmost(list[0]));
    if (list[1]) return bad(1, leftmost(list[1]));
    descriptorLength = list[3]!;
  }
  const descriptorLengthByte = ten ? 6 : 3;
  if (descriptorLength !== 0 && descriptorLength !== (longLba ? 16 : 8)) return bad(descriptorLengthByte);
  if (headerLength + descriptorLength > length) return { ok: false, sense: parameterListLengthError() };

  let blockDescriptor: BlockDescriptor | undefined;
  if (descriptorLength) {
    const at = headerLength;
    const blockLengthAt = longLba ? at + 12 : at + 5;
    const blockLength = readUint(list, blockLengthAt, longLba ? 4 : 3);
    const numberOfBlocks = longLba ? readBig(list, at, 8) : BigInt(readUint(list, at, 4));
    if (longLba && readUint(list, at + 8, 4)) return bad(at + 8);
    if (!longLba && list[at + 4]) return bad(at + 4);
    if (device.blockDescriptor && blockLength !== device.blockDescriptor.blockLength)
      return bad(blockLengthAt);
    blockDescriptor = { numberOfBlocks, blockLength };
  }

  const pages: ModePages = {};
  let at = headerLength + descriptorLength;
  while (at < length) {
    if (at + 2 > length) return { ok: false, sense: parameterListLengthError() };
    const pageByte = list[at]!;
    if (pageByte & 0x40) return bad(at, 6); // SPF: no subpages are supported
    const spec = pageSpecs.find((p) => p.pageCode === (pageByte & 0x3f));
    if (!spec || device.current[spec.name] === undefined) return bad(at, 5);
    if (list[at + 1] !== spec.length - 2) return bad(at + 1, 7);
    if (at + spec.length > length) return { ok: false, sense: parameterListLengthError() };
    const sent = list.subarray(at, at + spec.length);
    const current = encodeModePage(spec.name, device.current[spec.name]);
    const mask = encodeModePage(spec.name, device.changeable[spec.name] ?? {}, { changeableMask: true });
    for (let i = 2; i < spec.length; i++) {
      const locked = (sent[i]! ^ current[i]!) & ~mask[i]! & 0xff;
      if (locked) return bad(at + i, leftmost(locked));
    }
    (pages as Record<string, unknown>)[spec.name] = readPageFields(sent, spec);
    at += spec.length;
  }
  const result: ModeSelectResult = { ok: true, pages, save: request.sp };
  if (blockDescriptor) result.blockDescriptor = blockDescriptor;
  return result;
}
