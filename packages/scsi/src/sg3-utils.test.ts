// Our encoders' bytes, decoded by a real initiator's decoders: sg3_utils' --inhex mode and
// sg_decode_sense parse response data from a file, no device needed.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  deriveNaaIdentifier,
  encodeBlockDeviceCharacteristicsVpd,
  encodeBlockLimitsVpd,
  encodeDeviceIdentificationVpd,
  encodeLogicalBlockProvisioningVpd,
  encodeStandardInquiry,
  encodeSupportedVpdPages,
  encodeUnitSerialNumberVpd,
} from './inquiry';
import { encodeLbaStatus } from './lba-status';
import { encodeSense, formatInProgress, invalidFieldInCdb, miscompare, unrecoveredReadError } from './sense';

function available(tool: string): boolean {
  try {
    execFileSync(tool, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const skipReason = available('sg_vpd')
  ? undefined
  : 'sg3_utils is not installed (apt-get install sg3-utils; tools/lab/setup installs it)';
const dir = skipReason ? '' : mkdtempSync(join(tmpdir(), 'tcmu-scsi-sg3-'));
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');

/** Run an sg3_utils decoder on `data` written as an --inhex file; returns its stdout. */
function decode(tool: string, data: Uint8Array, ...args: string[]): string {
  const file = join(dir, `${tool}-${Math.random().toString(36).slice(2)}.hex`);
  writeFileSync(file, `${hex(data)}\n`);
  return execFileSync(tool, [`--inhex=${file}`, ...args], { encoding: 'utf8' });
}

function decodeSense(data: Uint8Array): string {
  return execFileSync(
    'sg_decode_sense',
    [...data].map((b) => b.toString(16).padStart(2, '0')),
    {
      encoding: 'utf8',
    },
  );
}

describe(
  skipReason ? `sg3_utils decodes our data [skipped: ${skipReason}]` : 'sg3_utils decodes our data',
  () => {
    const test = skipReason ? it.skip : it;

    test('standard INQUIRY (sg_inq)', () => {
      const out = decode(
        'sg_inq',
        encodeStandardInquiry({
          vendor: 'TCMU',
          product: 'memory disk',
          revision: '0.1',
          targetPortGroupSupport: 1,
          thirdPartyCopy: true,
        }),
      );
      expect(out).toMatch(/PDT=0\b/);
      expect(out).toMatch(/version=0x06\s+\[SPC-4\]/);
      expect(out).toMatch(/HiSUP=1\s+Resp_data_format=2/);
      expect(out).toMatch(/TPGS=1\s+3PC=1\s+Protect=0/);
      expect(out).toMatch(/CmdQue=1/);
      expect(out).toMatch(/length=96 \(0x60\)/);
      expect(out).toMatch(/Vendor identification: TCMU/);
      expect(out).toMatch(/Product identification: memory disk/);
      expect(out).toMatch(/Product revision level: 0\.1/);
    });

    test('standard INQUIRY option bits land where sg_inq reads them', () => {
      const out = decode(
        'sg_inq',
        encodeStandardInquiry({
          vendor: 'A',
          product: 'B',
          revision: 'C',
          removable: true,
          multiPort: true,
          protect: true,
          normalAca: true,
          peripheralQualifier: 1,
          peripheralDeviceType: 5,
          length: 36,
        }),
      );
      expect(out).toMatch(/PQual=1\s+PDT=5\s+RMB=1/);
      expect(out).toMatch(/NormACA=1/);
      expect(out).toMatch(/Protect=1/);
      expect(out).toMatch(/MultiP=1/);
      expect(out).toMatch(/length=36 \(0x24\)/);
    });

    test('VPD 00h, 80h (sg_vpd)', () => {
      const pages = decode('sg_vpd', encodeSupportedVpdPages([0x80, 0x83, 0xb0, 0xb1, 0xb2]), '-p', 'sv');
      for (const name of [
        'Unit serial number',
        'Device identification',
        'Block limits',
        'Block device characteristics',
        'Logical block provisioning',
      ])
        expect(pages).toContain(name);
      expect(decode('sg_vpd', encodeUnitSerialNumberVpd('abc123'), '-p', 'sn')).toMatch(
        /Unit serial number: abc123/,
      );
    });

    test('VPD 83h: NAA and T10 vendor ID designators (sg_vpd)', () => {
      const naa = deriveNaaIdentifier('disk0');
      const out = decode(
        'sg_vpd',
        encodeDeviceIdentificationVpd({ naa, t10VendorId: { vendor: 'TCMU', vendorSpecific: 'disk0' } }),
        '-p',
        'di',
        '--long',
      );
      expect(out).toMatch(/designator type: NAA,\s+code set: Binary/);
      expect(out).toMatch(/NAA 6, IEEE Company_id: 0x1405/);
      expect(out).toMatch(/designator type: T10 vendor identification,\s+code set: ASCII/);
      expect(out).toMatch(/vendor specific: disk0/);
    });

    test('VPD B0h block limits (sg_vpd)', () => {
      const out = decode(
        'sg_vpd',
        encodeBlockLimitsVpd({
          maximumCompareAndWriteLength: 1,
          maximumTransferLength: 8192,
          optimalTransferLength: 128,
          maximumUnmapLbaCount: 0xffffffff,
          maximumUnmapBlockDescriptorCount: 256,
          optimalUnmapGranularity: 8,
          unmapGranularityAlignment: 0,
          maximumWriteSameLength: 65536n,
        }),
        '-p',
        'bl',
      );
      expect(out).toMatch(/Maximum compare and write length: 1 blocks/);
      expect(out).toMatch(/Maximum transfer length: 8192 blocks/);
      expect(out).toMatch(/Optimal transfer length: 128 blocks/);
      expect(out).toMatch(/Maximum unmap LBA count: -1 \[unbounded\]/);
      expect(out).toMatch(/Maximum unmap block descriptor count: 256/);
      expect(out).toMatch(/Optimal unmap granularity: 8 blocks/);
      expect(out).toMatch(/Unmap granularity alignment valid: true/);
      expect(out).toMatch(/Maximum write same length: 0x10000 blocks/);
    });

    test('VPD B1h and B2h (sg_vpd)', () => {
      expect(decode('sg_vpd', encodeBlockDeviceCharacteristicsVpd(), '-p', 'bdc')).toMatch(
        /Non-rotating medium/,
      );
      const lbp = decode(
        'sg_vpd',
        encodeLogicalBlockProvisioningVpd({ unmap: true, writeSameUnmap: true, readZeros: 1 }),
        '-p',
        'lbpv',
      );
      expect(lbp).toMatch(/\(LBPU\): 1/);
      expect(lbp).toMatch(/\(LBPWS\): 1/);
      expect(lbp).toMatch(/\(LBPWS10\): 0/);
      expect(lbp).toMatch(/\(LBPRZ\): 1/);
      expect(lbp).toMatch(/Provisioning type: 2 \(thin provisioned\)/);
    });

    test('GET LBA STATUS descriptors (sg_get_lba_status)', () => {
      const out = decode(
        'sg_get_lba_status',
        encodeLbaStatus([
          { lba: 0n, length: 8, status: 0 },
          { lba: 8n, length: 256, status: 1 },
        ]),
        '--maxlen=64',
      );
      expect(out).toMatch(/LBA: 0x0000000000000000\s+blocks:\s+8\s+mapped/);
      expect(out).toMatch(/LBA: 0x0000000000000008\s+blocks:\s+256\s+deallocated/);
    });

    test('sense data, fixed and descriptor (sg_decode_sense)', () => {
      const field = decodeSense(encodeSense(invalidFieldInCdb(1, 5)));
      expect(field).toMatch(/Fixed format, current; Sense key: Illegal Request/);
      expect(field).toMatch(/Invalid field in cdb/);
      expect(field).toMatch(/Error in Command: byte 1 bit 5/);
      const progress = decodeSense(encodeSense(formatInProgress(0.5), { descriptor: true }));
      expect(progress).toMatch(/Descriptor format, current; Sense key: Not Ready/);
      expect(progress).toMatch(/format in progress/);
      expect(progress).toMatch(/Progress indication: 50\.00%/);
      const read = decodeSense(encodeSense(unrecoveredReadError(0x1234n), { deferred: true }));
      expect(read).toMatch(/Fixed format, <<<deferred>>>; Sense key: Medium Error/);
      expect(read).toMatch(/Unrecovered read error/);
      expect(read).toMatch(/Info fld=0x1234 \[4660\]/);
      const cmp = decodeSense(encodeSense(miscompare(0x200), { descriptor: true }));
      expect(cmp).toMatch(/Sense key: Miscompare/);
      expect(cmp).toMatch(/Miscompare during verify operation/);
      expect(cmp).toMatch(/Information: 0x0000000000000200/);
    });
  },
);
