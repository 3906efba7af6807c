// READ CAPACITY(10) and (16) parameter data (SBC-4 §5.20, §5.21).
import { checkRange, fit, writeBig, writeUint } from './bytes';
import { ScsiError, ScsiErrorCode } from './errors';

export interface CapacityOptions {
  /** RETURNED LOGICAL BLOCK ADDRESS: the last LBA (number of blocks − 1). */
  lastLba: bigint;
  /** LOGICAL BLOCK LENGTH IN BYTES. */
  blockLength: number;
}

/**
 * READ CAPACITY(10) data, 8 bytes. When `lastLba` ≥ 0xFFFFFFFF the LBA field is 0xFFFFFFFF, telling the
 * initiator to use READ CAPACITY(16).
 */
export function encodeReadCapacity10(options: CapacityOptions): Uint8Array {
  if (options.lastLba < 0n) throw new ScsiError(ScsiErrorCode.FieldRange, 'lastLba must be >= 0');
  const out = new Uint8Array(8);
  const lba = options.lastLba >= 0xffff_ffffn ? 0xffff_ffff : Number(options.lastLba);
  writeUint(out, 0, 4, lba, 'lastLba');
  writeUint(out, 4, 4, options.blockLength, 'blockLength');
  return out;
}

export interface Capacity16Options extends CapacityOptions {
  /** LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT (0..15): physical block = blockLength << exponent. */
  logicalBlocksPerPhysicalBlockExponent?: number;
  /** LOWEST ALIGNED LOGICAL BLOCK ADDRESS (0..0x3FFF). */
  lowestAlignedLba?: number;
  /** LBPME: logical block provisioning management enabled (the device unmaps). */
  provisioningManagement?: boolean;
  /** LBPRZ: unmapped blocks read as zeros. */
  readZeros?: boolean;
  /** PROT_EN / P_TYPE / P_I_EXPONENT: protection is not supported, always 0. */
}

/** READ CAPACITY(16) data, 32 bytes (reserved bytes zero), truncated to `allocationLength`. */
export function encodeReadCapacity16(options: Capacity16Options, allocationLength?: number): Uint8Array {
  const out = new Uint8Array(32);
  writeBig(out, 0, 8, options.lastLba, 'lastLba');
  writeUint(out, 8, 4, options.blockLength, 'blockLength');
  out[13] = checkRange(
    'logicalBlocksPerPhysicalBlockExponent',
    options.logicalBlocksPerPhysicalBlockExponent ?? 0,
    15,
  );
  const lowest = checkRange('lowestAlignedLba', options.lowestAlignedLba ?? 0, 0x3fff);
  out[14] = (options.provisioningManagement ? 0x80 : 0) | (options.readZeros ? 0x40 : 0) | (lowest >> 8);
  out[15] = lowest & 0xff;
  return fit(out, allocationLength);
}
