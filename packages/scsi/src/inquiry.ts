// INQUIRY data (SPC-5 §6.7) and the Vital Product Data pages a block device serves (SPC-5 §7.7, SBC-4 §6.6).
import { asciiBytes, checkRange, fit, writeAsciiPadded, writeBig, writeUint } from './bytes';
import { ScsiError, ScsiErrorCode } from './errors';

/** Byte 0 of INQUIRY and every VPD page. */
export interface PeripheralOptions {
  /** PERIPHERAL DEVICE TYPE; default 0 (direct access block device). */
  peripheralDeviceType?: number;
  /** PERIPHERAL QUALIFIER; default 0 (connected). 1 = not connected, 3 = no such LUN. */
  peripheralQualifier?: number;
}

function peripheralByte(o: PeripheralOptions): number {
  const type = checkRange('peripheralDeviceType', o.peripheralDeviceType ?? 0, 0x1f);
  const qualifier = checkRange('peripheralQualifier', o.peripheralQualifier ?? 0, 7);
  return (qualifier << 5) | type;
}

/** Version descriptors (SPC-5 table 150) for the standards a TCMU block device follows. */
export const VersionDescriptor = {
  /** SAM-5 (no version claimed). */
  Sam5: 0x00a0,
  /** SPC-4 (no version claimed). */
  Spc4: 0x0460,
  /** SPC-5 (no version claimed). */
  Spc5: 0x05c0,
  /** SBC-3 (no version claimed). */
  Sbc3: 0x04c0,
  /** SBC-4 (no version claimed). */
  Sbc4: 0x0600,
} as const;

/**
 * What a TCMU block device claims by default: VERSION 06h (SPC-4) and the descriptors SAM-5, SPC-4,
 * SBC-3, SBC-4. SPC-4 rather than SPC-5 and an explicit SBC-3 because initiators' conformance suites
 * (libiscsi) only know those; everything the emulation serves is in SPC-4/SBC-3 or an optional
 * SBC-4 addition (docs/conformance.md).
 */
export const defaultVersionDescriptors: readonly number[] = [
  VersionDescriptor.Sam5,
  VersionDescriptor.Spc4,
  VersionDescriptor.Sbc3,
  VersionDescriptor.Sbc4,
];

/** Values of the standard INQUIRY VERSION byte (SPC-5 table 148). */
export const InquiryVersion = { Spc2: 0x04, Spc3: 0x05, Spc4: 0x06, Spc5: 0x07 } as const;

export interface StandardInquiryOptions extends PeripheralOptions {
  /** T10 VENDOR IDENTIFICATION, up to 8 printable ASCII characters, space-padded. */
  vendor: string;
  /** PRODUCT IDENTIFICATION, up to 16 characters, space-padded. */
  product: string;
  /** PRODUCT REVISION LEVEL, up to 4 characters, space-padded. */
  revision: string;
  /** RMB: removable medium. Default false. */
  removable?: boolean;
  /** VERSION; default 0x06 (SPC-4). */
  version?: number;
  /** NORMACA; default false (NACA is rejected by decodeCdb). */
  normalAca?: boolean;
  /** HISUP: hierarchical LUNs. Default true (LIO uses hierarchical addressing). */
  hierarchicalSupport?: boolean;
  /** SCCS: an embedded storage array controller (LIO sets it). Default false. */
  storageArrayController?: boolean;
  /** TPGS: 0 none, 1 implicit, 2 explicit, 3 both. Default 0. */
  targetPortGroupSupport?: number;
  /** 3PC: third-party copy (EXTENDED COPY) supported. Default false. */
  thirdPartyCopy?: boolean;
  /** PROTECT: protection information supported. Default false. */
  protect?: boolean;
  /** MULTIP: multiple ports. Default false. */
  multiPort?: boolean;
  /** CMDQUE: command queuing. Default true. */
  commandQueue?: boolean;
  /** Bytes 36-55, up to 20 ASCII characters, space-padded when given; zeros otherwise. */
  vendorSpecific?: string;
  /** Up to 8 version descriptors (bytes 58-73). Default {@link defaultVersionDescriptors}. */
  versionDescriptors?: readonly number[];
  /** Total length of the data: 36..255. Default 96 (the length Linux asks for when it can). */
  length?: number;
}

/**
 * Standard INQUIRY data. Byte 4 (ADDITIONAL LENGTH) is `length - 5`; the data is then truncated to
 * `allocationLength` without touching that field. Every byte not set from `options` is zero.
 */
export function encodeStandardInquiry(
  options: StandardInquiryOptions,
  allocationLength?: number,
): Uint8Array {
  const length = options.length ?? 96;
  checkRange('length', length, 255);
  if (length < 36) throw new ScsiError(ScsiErrorCode.FieldRange, `length must be at least 36, got ${length}`);
  const descriptors = options.versionDescriptors ?? defaultVersionDescriptors;
  if (descriptors.length > 8)
    throw new ScsiError(ScsiErrorCode.FieldRange, `at most 8 version descriptors, got ${descriptors.length}`);
  const out = new Uint8Array(length);
  out[0] = peripheralByte(options);
  if (options.removable) out[1] = 0x80;
  out[2] = checkRange('version', options.version ?? InquiryVersion.Spc4, 0xff);
  out[3] = 0x02 | (options.normalAca ? 0x20 : 0) | ((options.hierarchicalSupport ?? true) ? 0x10 : 0);
  out[4] = length - 5;
  out[5] =
    (options.storageArrayController ? 0x80 : 0) |
    (checkRange('targetPortGroupSupport', options.targetPortGroupSupport ?? 0, 3) << 4) |
    (options.thirdPartyCopy ? 0x08 : 0) |
    (options.protect ? 0x01 : 0);
  out[6] = options.multiPort ? 0x10 : 0;
  out[7] = (options.commandQueue ?? true) ? 0x02 : 0;
  writeAsciiPadded(out, 8, 8, 'vendor', options.vendor);
  writeAsciiPadded(out, 16, 16, 'product', options.product);
  writeAsciiPadded(out, 32, 4, 'revision', options.revision);
  if (options.vendorSpecific !== undefined) {
    if (length < 56) throw new ScsiError(ScsiErrorCode.FieldRange, 'vendorSpecific needs length >= 56');
    writeAsciiPadded(out, 36, 20, 'vendorSpecific', options.vendorSpecific);
  }
  if (length >= 58 + 2 * descriptors.length) {
    descriptors.forEach((d, i) => {
      writeUint(out, 58 + 2 * i, 2, d, 'versionDescriptor');
    });
  }
  return fit(out, allocationLength);
}

/** VPD page codes served by a block device. */
export const VpdPage = {
  SupportedPages: 0x00,
  UnitSerialNumber: 0x80,
  DeviceIdentification: 0x83,
  BlockLimits: 0xb0,
  BlockDeviceCharacteristics: 0xb1,
  LogicalBlockProvisioning: 0xb2,
} as const;

/** A VPD page: 4-byte header (peripheral byte, page code, 2-byte PAGE LENGTH) + `payload`. */
function vpdPage(
  pageCode: number,
  payload: Uint8Array,
  options: PeripheralOptions,
  allocationLength: number | undefined,
): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  out[0] = peripheralByte(options);
  out[1] = pageCode;
  writeUint(out, 2, 2, payload.length, 'page length');
  out.set(payload, 4);
  return fit(out, allocationLength);
}

/** VPD 00h SUPPORTED VPD PAGES: `pages` sorted ascending and de-duplicated (00h is always included). */
export function encodeSupportedVpdPages(
  pages: readonly number[],
  options: PeripheralOptions = {},
  allocationLength?: number,
): Uint8Array {
  const list = [...new Set([0, ...pages.map((p) => checkRange('page', p, 0xff))])].sort((a, b) => a - b);
  return vpdPage(0x00, Uint8Array.from(list), options, allocationLength);
}

/** VPD 80h UNIT SERIAL NUMBER: the serial as printable ASCII (not padded). */
export function encodeUnitSerialNumberVpd(
  serial: string,
  options: PeripheralOptions = {},
  allocationLength?: number,
): Uint8Array {
  return vpdPage(0x80, asciiBytes('serial', serial), options, allocationLength);
}

/** DESIGNATOR TYPE values of the Device Identification page. */
export const DesignatorType = {
  VendorSpecific: 0x0,
  T10VendorId: 0x1,
  Eui64: 0x2,
  Naa: 0x3,
  RelativeTargetPort: 0x4,
  TargetPortGroup: 0x5,
  LogicalUnitGroup: 0x6,
  Md5LogicalUnit: 0x7,
  ScsiNameString: 0x8,
} as const;

/** ASSOCIATION values: what a designator names. */
export const DesignatorAssociation = {
  LogicalUnit: 0,
  TargetPort: 1,
  TargetDevice: 2,
} as const;

/** CODE SET values. */
export const CodeSet = { Binary: 1, Ascii: 2, Utf8: 3 } as const;

/** One designation descriptor of VPD 83h. */
export interface Designator {
  codeSet: number;
  association: number;
  type: number;
  /** PROTOCOL IDENTIFIER, used when `protocolIdentifierValid` (PIV) is set. */
  protocolIdentifier?: number;
  protocolIdentifierValid?: boolean;
  value: Uint8Array;
}

/**
 * An NAA designator value. NAA 6 (IEEE Registered Extended, 16 bytes): company id 24 bits, vendor specific
 * identifier 36 bits, extension 64 bits. NAA 5 (IEEE Registered, 8 bytes): company id + 36 bits.
 */
export interface NaaIdentifier {
  naa: 5 | 6;
  /** IEEE company id (OUI), 24 bits. LIO uses 0x001405. */
  companyId: number;
  /** VENDOR SPECIFIC IDENTIFIER, 36 bits. */
  vendorSpecificIdentifier: bigint;
  /** VENDOR SPECIFIC IDENTIFIER EXTENSION, 64 bits (NAA 6 only). */
  vendorSpecificIdentifierExtension?: bigint;
}

/** The bytes of an NAA designator. */
export function encodeNaaIdentifier(id: NaaIdentifier): Uint8Array {
  checkRange('companyId', id.companyId, 0xffffff);
  const head =
    (BigInt(id.naa) << 60n) | (BigInt(id.companyId) << 36n) | (id.vendorSpecificIdentifier & 0xf_ffff_ffffn);
  if (id.vendorSpecificIdentifier < 0n || id.vendorSpecificIdentifier > 0xf_ffff_ffffn)
    throw new ScsiError(ScsiErrorCode.FieldRange, 'vendorSpecificIdentifier must fit in 36 bits');
  const out = new Uint8Array(id.naa === 6 ? 16 : 8);
  writeBig(out, 0, 8, head);
  if (id.naa === 6) writeBig(out, 8, 8, id.vendorSpecificIdentifierExtension ?? 0n, 'extension');
  return out;
}

/** FNV-1a, 64 bits, over the UTF-8 bytes of `text`. */
function fnv1a64(text: string, seed = 0xcbf29ce484222325n): bigint {
  let hash = seed;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) & 0xffff_ffff_ffff_ffffn;
  }
  return hash;
}

/**
 * A stable NAA 6 identifier derived from a string unique per device (its serial or WWN): the same
 * input always gives the same designator, different inputs give different ones (100 bits of hash).
 */
export function deriveNaaIdentifier(unique: string, companyId = 0x001405): NaaIdentifier {
  return {
    naa: 6,
    companyId,
    vendorSpecificIdentifier: fnv1a64(unique) & 0xf_ffff_ffffn,
    vendorSpecificIdentifierExtension: fnv1a64(unique, 0x84222325cbf29ce4n),
  };
}

export interface DeviceIdentificationOptions extends PeripheralOptions {
  /** The logical unit's NAA designator (type 3, association LU). Required: unique per device. */
  naa: NaaIdentifier;
  /** T10 vendor ID designator (type 1): VENDOR (8, space padded) followed by this vendor specific part. */
  t10VendorId?: { vendor: string; vendorSpecific: string };
  /** RELATIVE TARGET PORT IDENTIFIER (type 4, association target port), when known. */
  relativeTargetPort?: number;
  /** TARGET PORT GROUP (type 5), when ALUA is reported. */
  targetPortGroup?: number;
  /** More designators, appended as given. */
  designators?: readonly Designator[];
}

function designatorBytes(d: Designator): Uint8Array {
  if (d.value.length > 255) throw new ScsiError(ScsiErrorCode.FieldRange, 'designator longer than 255 bytes');
  const out = new Uint8Array(4 + d.value.length);
  out[0] =
    (checkRange('protocolIdentifier', d.protocolIdentifier ?? 0, 15) << 4) |
    checkRange('codeSet', d.codeSet, 15);
  out[1] =
    (d.protocolIdentifierValid ? 0x80 : 0) |
    (checkRange('association', d.association, 3) << 4) |
    checkRange('type', d.type, 15);
  out[3] = d.value.length;
  out.set(d.value, 4);
  return out;
}

/**
 * VPD 83h DEVICE IDENTIFICATION: the NAA designator first, then the T10 vendor ID designator, the
 * relative target port, the target port group and any extra designators.
 */
export function encodeDeviceIdentificationVpd(
  options: DeviceIdentificationOptions,
  allocationLength?: number,
): Uint8Array {
  const designators: Designator[] = [
    {
      codeSet: CodeSet.Binary,
      association: DesignatorAssociation.LogicalUnit,
      type: DesignatorType.Naa,
      value: encodeNaaIdentifier(options.naa),
    },
  ];
  if (options.t10VendorId) {
    const specific = asciiBytes('t10VendorId.vendorSpecific', options.t10VendorId.vendorSpecific);
    const value = new Uint8Array(8 + specific.length);
    writeAsciiPadded(value, 0, 8, 't10VendorId.vendor', options.t10VendorId.vendor);
    value.set(specific, 8);
    designators.push({
      codeSet: CodeSet.Ascii,
      association: DesignatorAssociation.LogicalUnit,
      type: DesignatorType.T10VendorId,
      value,
    });
  }
  if (options.relativeTargetPort !== undefined) {
    const value = new Uint8Array(4);
    writeUint(value, 2, 2, options.relativeTargetPort, 'relativeTargetPort');
    designators.push({
      codeSet: CodeSet.Binary,
      association: DesignatorAssociation.TargetPort,
      type: DesignatorType.RelativeTargetPort,
      value,
    });
  }
  if (options.targetPortGroup !== undefined) {
    const value = new Uint8Array(4);
    writeUint(value, 2, 2, options.targetPortGroup, 'targetPortGroup');
    designators.push({
      codeSet: CodeSet.Binary,
      association: DesignatorAssociation.TargetPort,
      type: DesignatorType.TargetPortGroup,
      value,
    });
  }
  designators.push(...(options.designators ?? []));
  const parts = designators.map(designatorBytes);
  const payload = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    payload.set(p, at);
    at += p.length;
  }
  return vpdPage(0x83, payload, options, allocationLength);
}

/** VPD B0h BLOCK LIMITS (SBC-4 §6.6.4). Lengths are in logical blocks; 0 = not reported / no limit. */
export interface BlockLimitsOptions extends PeripheralOptions {
  /** WSNZ: WRITE SAME with NUMBER OF LOGICAL BLOCKS = 0 is rejected. Default false. */
  writeSameNonZero?: boolean;
  /** MAXIMUM COMPARE AND WRITE LENGTH (0..255). */
  maximumCompareAndWriteLength?: number;
  /** OPTIMAL TRANSFER LENGTH GRANULARITY. */
  optimalTransferLengthGranularity?: number;
  /** MAXIMUM TRANSFER LENGTH. */
  maximumTransferLength?: number;
  /** OPTIMAL TRANSFER LENGTH. */
  optimalTransferLength?: number;
  /** MAXIMUM PREFETCH LENGTH. */
  maximumPrefetchLength?: number;
  /** MAXIMUM UNMAP LBA COUNT (0xFFFFFFFF = no limit; 0 = UNMAP not supported). */
  maximumUnmapLbaCount?: number;
  /** MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT. */
  maximumUnmapBlockDescriptorCount?: number;
  /** OPTIMAL UNMAP GRANULARITY. */
  optimalUnmapGranularity?: number;
  /** UNMAP GRANULARITY ALIGNMENT; sets UGAVALID when given. */
  unmapGranularityAlignment?: number;
  /** MAXIMUM WRITE SAME LENGTH. */
  maximumWriteSameLength?: bigint;
  /** MAXIMUM ATOMIC TRANSFER LENGTH, ATOMIC ALIGNMENT, ATOMIC TRANSFER LENGTH GRANULARITY. */
  maximumAtomicTransferLength?: number;
  atomicAlignment?: number;
  atomicTransferLengthGranularity?: number;
}

export function encodeBlockLimitsVpd(options: BlockLimitsOptions, allocationLength?: number): Uint8Array {
  const p = new Uint8Array(0x3c);
  // Offsets below are within the page payload (page byte N is payload byte N-4).
  if (options.writeSameNonZero) p[0] = 0x01;
  p[1] = checkRange('maximumCompareAndWriteLength', options.maximumCompareAndWriteLength ?? 0, 0xff);
  writeUint(p, 2, 2, options.optimalTransferLengthGranularity ?? 0, 'optimalTransferLengthGranularity');
  writeUint(p, 4, 4, options.maximumTransferLength ?? 0, 'maximumTransferLength');
  writeUint(p, 8, 4, options.optimalTransferLength ?? 0, 'optimalTransferLength');
  writeUint(p, 12, 4, options.maximumPrefetchLength ?? 0, 'maximumPrefetchLength');
  writeUint(p, 16, 4, options.maximumUnmapLbaCount ?? 0, 'maximumUnmapLbaCount');
  writeUint(p, 20, 4, options.maximumUnmapBlockDescriptorCount ?? 0, 'maximumUnmapBlockDescriptorCount');
  writeUint(p, 24, 4, options.optimalUnmapGranularity ?? 0, 'optimalUnmapGranularity');
  if (options.unmapGranularityAlignment !== undefined) {
    writeUint(
      p,
      28,
      4,
      checkRange('unmapGranularityAlignment', options.unmapGranularityAlignment, 0x7fffffff),
    );
    p[28]! |= 0x80;
  }
  writeBig(p, 32, 8, options.maximumWriteSameLength ?? 0n, 'maximumWriteSameLength');
  writeUint(p, 40, 4, options.maximumAtomicTransferLength ?? 0, 'maximumAtomicTransferLength');
  writeUint(p, 44, 4, options.atomicAlignment ?? 0, 'atomicAlignment');
  writeUint(p, 48, 4, options.atomicTransferLengthGranularity ?? 0, 'atomicTransferLengthGranularity');
  return vpdPage(0xb0, p, options, allocationLength);
}

/** VPD B1h BLOCK DEVICE CHARACTERISTICS (SBC-4 §6.6.2). */
export interface BlockDeviceCharacteristicsOptions extends PeripheralOptions {
  /** MEDIUM ROTATION RATE: 0 not reported, 1 non-rotating (default), else rpm. */
  mediumRotationRate?: number;
  /** PRODUCT TYPE; default 0. */
  productType?: number;
  /** NOMINAL FORM FACTOR; default 0 (not reported). */
  nominalFormFactor?: number;
  /** FUAB: FUA on WRITE means durable (SYNCHRONIZE CACHE semantics). Default false. */
  forceUnitAccessBehavior?: boolean;
  /** VBULS: VERIFY with BYTCHK=0 checks unmapped blocks. Default false. */
  verifyBytecheckUnmappedLbaSupported?: boolean;
}

export function encodeBlockDeviceCharacteristicsVpd(
  options: BlockDeviceCharacteristicsOptions = {},
  allocationLength?: number,
): Uint8Array {
  const p = new Uint8Array(0x3c);
  writeUint(p, 0, 2, options.mediumRotationRate ?? 1, 'mediumRotationRate');
  p[2] = checkRange('productType', options.productType ?? 0, 0xff);
  p[3] = checkRange('nominalFormFactor', options.nominalFormFactor ?? 0, 0x0f);
  p[4] =
    (options.forceUnitAccessBehavior ? 0x02 : 0) | (options.verifyBytecheckUnmappedLbaSupported ? 0x01 : 0);
  return vpdPage(0xb1, p, options, allocationLength);
}

/** PROVISIONING TYPE of the Logical Block Provisioning page. */
export const ProvisioningType = { Full: 0, Resource: 1, Thin: 2 } as const;

/** VPD B2h LOGICAL BLOCK PROVISIONING (SBC-4 §6.6.5). */
export interface LogicalBlockProvisioningOptions extends PeripheralOptions {
  /** THRESHOLD EXPONENT; default 0. */
  thresholdExponent?: number;
  /** LBPU: UNMAP supported. */
  unmap?: boolean;
  /** LBPWS: WRITE SAME(16) with UNMAP supported. */
  writeSameUnmap?: boolean;
  /** LBPWS10: WRITE SAME(10) with UNMAP supported. */
  writeSame10Unmap?: boolean;
  /** LBPRZ (3 bits): 1 = unmapped blocks read as zeros. */
  readZeros?: number;
  /** ANC_SUP: ANCHOR supported. */
  anchorSupported?: boolean;
  /** MINIMUM PERCENTAGE (5 bits). */
  minimumPercentage?: number;
  /** PROVISIONING TYPE; default thin (2) when any unmap capability is given, else full (0). */
  provisioningType?: number;
  /** THRESHOLD PERCENTAGE. */
  thresholdPercentage?: number;
}

export function encodeLogicalBlockProvisioningVpd(
  options: LogicalBlockProvisioningOptions,
  allocationLength?: number,
): Uint8Array {
  const p = new Uint8Array(4);
  p[0] = checkRange('thresholdExponent', options.thresholdExponent ?? 0, 0xff);
  p[1] =
    (options.unmap ? 0x80 : 0) |
    (options.writeSameUnmap ? 0x40 : 0) |
    (options.writeSame10Unmap ? 0x20 : 0) |
    (checkRange('readZeros', options.readZeros ?? 0, 7) << 2) |
    (options.anchorSupported ? 0x02 : 0);
  const thin = options.unmap || options.writeSameUnmap || options.writeSame10Unmap;
  p[2] =
    (checkRange('minimumPercentage', options.minimumPercentage ?? 0, 0x1f) << 3) |
    checkRange(
      'provisioningType',
      options.provisioningType ?? (thin ? ProvisioningType.Thin : ProvisioningType.Full),
      7,
    );
  p[3] = checkRange('thresholdPercentage', options.thresholdPercentage ?? 0, 0xff);
  return vpdPage(0xb2, p, options, allocationLength);
}
