// GET LBA STATUS parameter data (SBC-4 §5.8).
import { checkRange, fit, writeBig, writeUint } from './bytes';

/** PROVISIONING STATUS values of an LBA status descriptor. */
export const ProvisioningStatus = {
  /** Mapped, or unknown. */
  Mapped: 0x0,
  /** Deallocated (unmapped). */
  Deallocated: 0x1,
  /** Anchored. */
  Anchored: 0x2,
} as const;

/** One LBA status descriptor: `length` blocks from `lba` share one provisioning status. */
export interface LbaStatusDescriptor {
  lba: bigint;
  /** NUMBER OF LOGICAL BLOCKS (1..2^32-1). */
  length: number;
  /** See {@link ProvisioningStatus}. */
  status: number;
  /** ADDITIONAL STATUS (SBC-4), default 0. */
  additionalStatus?: number;
}

/**
 * GET LBA STATUS parameter data: 8-byte header (PARAMETER DATA LENGTH = 4 + 16 × n) then one 16-byte
 * descriptor per entry, truncated to `allocationLength` without changing the length field. The first
 * descriptor must start at the requested LBA (the caller's job, SBC-4 requires it).
 */
export function encodeLbaStatus(
  descriptors: readonly LbaStatusDescriptor[],
  allocationLength?: number,
): Uint8Array {
  const out = new Uint8Array(8 + 16 * descriptors.length);
  writeUint(out, 0, 4, 4 + 16 * descriptors.length, 'parameter data length');
  descriptors.forEach((d, i) => {
    const at = 8 + 16 * i;
    writeBig(out, at, 8, d.lba, 'lba');
    writeUint(out, at + 8, 4, d.length, 'length');
    out[at + 12] = checkRange('status', d.status, 0x0f);
    out[at + 13] = checkRange('additionalStatus', d.additionalStatus ?? 0, 0xff);
  });
  return fit(out, allocationLength);
}
