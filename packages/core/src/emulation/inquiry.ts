import { scatterCopyFrom } from '@tcmu/backend';
import {
  encodeBlockDeviceCharacteristicsVpd,
  encodeBlockLimitsVpd,
  encodeDeviceIdentificationVpd,
  encodeLogicalBlockProvisioningVpd,
  encodeStandardInquiry,
  encodeSupportedVpdPages,
  encodeUnitSerialNumberVpd,
  type InquiryCdb,
  invalidFieldInCdb,
} from '@tcmu/scsi';
import type { DeviceContext } from '../device';
import { checkCondition, good } from '../response';
import type { ScsiCommand, ScsiResponse } from '../types';

/**
 * Copies `bytes` (already truncated to the allocation length) into the data-in buffer, as much as
 * it holds, and answers GOOD with the number of valid bytes (the core zeroes the rest of the buffer).
 */
export function respondWithData(command: ScsiCommand, bytes: Uint8Array): ScsiResponse {
  const copied = Math.min(bytes.length, command.dataLength);
  scatterCopyFrom(command.data, 0, copied === bytes.length ? bytes : bytes.subarray(0, copied));
  return good(copied);
}

/** The VPD pages the device serves, in ascending order. */
export const supportedVpdPages: readonly number[] = [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2];

/** VPD page `page` of `device`, or undefined for a page it does not serve. */
export function encodeVpdPage(
  device: DeviceContext,
  page: number,
  allocationLength?: number,
): Uint8Array | undefined {
  const { identity, limits, capabilities } = device;
  switch (page) {
    case 0x00:
      return encodeSupportedVpdPages(supportedVpdPages, {}, allocationLength);
    case 0x80:
      return encodeUnitSerialNumberVpd(identity.serial, {}, allocationLength);
    case 0x83:
      return encodeDeviceIdentificationVpd(
        { naa: identity.naa, t10VendorId: { vendor: identity.vendor, vendorSpecific: identity.serial } },
        allocationLength,
      );
    case 0xb0:
      return encodeBlockLimitsVpd(
        {
          writeSameNonZero: true,
          maximumCompareAndWriteLength: limits.maxCompareAndWriteBlocks,
          optimalTransferLengthGranularity: 1,
          maximumTransferLength: limits.maxTransferBlocks,
          optimalTransferLength: limits.maxTransferBlocks,
          maximumUnmapLbaCount: capabilities.unmap ? limits.maxUnmapBlocks : 0,
          maximumUnmapBlockDescriptorCount: capabilities.unmap ? limits.maxUnmapDescriptors : 0,
          optimalUnmapGranularity: capabilities.unmap ? limits.unmapGranularityBlocks : 0,
          ...(capabilities.unmap ? { unmapGranularityAlignment: 0 } : {}),
          maximumWriteSameLength: BigInt(limits.maxWriteSameBlocks),
        },
        allocationLength,
      );
    case 0xb1:
      return encodeBlockDeviceCharacteristicsVpd(
        { mediumRotationRate: 1, forceUnitAccessBehavior: capabilities.flush },
        allocationLength,
      );
    case 0xb2:
      return encodeLogicalBlockProvisioningVpd(
        {
          unmap: capabilities.unmap,
          writeSameUnmap: capabilities.unmap,
          writeSame10Unmap: capabilities.unmap,
          readZeros: capabilities.unmap ? 1 : 0,
        },
        allocationLength,
      );
    default:
      return undefined;
  }
}

/** Standard INQUIRY data of `device` (96 bytes before truncation). */
export function encodeInquiryData(device: DeviceContext, allocationLength?: number): Uint8Array {
  const { vendor, product, revision } = device.identity;
  return encodeStandardInquiry({ vendor, product, revision, commandQueue: true }, allocationLength);
}

/**
 * INQUIRY: standard data (VERSION SPC-4, CMDQUE, version descriptors SAM-5/SPC-4/SBC-3/SBC-4) or one of the VPD
 * pages 00h, 80h, 83h (a unique NAA 6 designator + T10 vendor ID), B0h, B1h, B2h; any other page is
 * 05/24 00 pointing at the PAGE CODE. Truncated to the allocation length, lengths never changed.
 */
export function emulateInquiry(command: ScsiCommand<InquiryCdb>): ScsiResponse {
  const cdb = command.decoded;
  if (!cdb.evpd) return respondWithData(command, encodeInquiryData(command.device, cdb.allocationLength));
  const page = encodeVpdPage(command.device, cdb.pageCode, cdb.allocationLength);
  if (!page) return checkCondition(invalidFieldInCdb(2));
  return respondWithData(command, page);
}
