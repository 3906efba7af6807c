import { describe, expect, it } from 'vitest';
import { buildCdb } from './build-cdb';
import { decodeCdb } from './decode-cdb';
import {
  cdbUsageData,
  encodeSupportedOperationCodes,
  knownCommands,
  type SupportedCommand,
  type SupportedOperationCodesRequest,
} from './supported-operation-codes';

const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');

const table: SupportedCommand[] = [
  { opcode: 0x28 },
  { opcode: 0x00 },
  { opcode: 0x9e, serviceAction: 0x10, timeouts: { nominal: 1, recommended: 30 } },
  { opcode: 0x93 },
];

function request(cdb: Uint8Array): SupportedOperationCodesRequest {
  const d = decodeCdb(cdb);
  if (!d.ok || d.name !== 'REPORT SUPPORTED OPERATION CODES') throw new Error('bad test CDB');
  return d;
}

describe('CDB usage data', () => {
  it('marks the bits decodeCdb interprets', () => {
    // READ(10): DPO FUA RARC in byte 1, LBA, group number, length; control byte: no NACA/LINK.
    expect(toHex(cdbUsageData(0x28)!)).toBe('28 1c ff ff ff ff 3f ff ff 00');
    // READ CAPACITY(16): the service action sits in byte 1.
    expect(toHex(cdbUsageData(0x9e, 0x10)!)).toBe('9e 10 ff ff ff ff ff ff ff ff ff ff ff ff 01 00');
    expect(toHex(cdbUsageData(0x12)!)).toBe('12 01 ff ff ff 00');
    expect(cdbUsageData(0x4d)).toBeUndefined();
  });
  it('every usage bit may be set alone without a rejection, except where a value check applies', () => {
    // Fields whose single-bit values are reserved or depend on another field (SBC-4/SPC-5).
    const valueChecked = new Set([
      'INQUIRY:2', // page code without EVPD
      'READ CAPACITY(10):2',
      'READ CAPACITY(10):3',
      'READ CAPACITY(10):4',
      'READ CAPACITY(10):5', // LBA without PMI
      ...[2, 3, 4, 5, 6, 7, 8, 9].map((b) => `READ CAPACITY(16):${b}`),
      'VERIFY(10):1',
      'VERIFY(16):1',
      'WRITE AND VERIFY(10):1',
      'WRITE AND VERIFY(16):1', // BYTCHK = 2
      'REPORT SUPPORTED OPERATION CODES:2', // REPORTING OPTIONS = 4
      'REPORT TARGET PORT GROUPS:1', // PARAMETER DATA FORMAT > 1
    ]);
    let accepted = 0;
    for (const command of knownCommands()) {
      const usage = cdbUsageData(command.opcode, command.serviceAction)!;
      expect(usage.length).toBe(command.cdbLength);
      for (let byte = 1; byte < usage.length - 1; byte++) {
        for (let bit = 0; bit < 8; bit++) {
          if ((usage[byte]! & (1 << bit)) === 0) continue;
          const cdb = new Uint8Array(usage.length);
          cdb[0] = command.opcode;
          if (command.serviceAction !== undefined) cdb[1] = command.serviceAction;
          cdb[byte]! |= 1 << bit;
          const d = decodeCdb(cdb);
          if (d.ok) accepted++;
          else
            expect(
              valueChecked.has(`${command.name}:${byte}`),
              `${command.name} byte ${byte} bit ${bit}`,
            ).toBe(true);
        }
      }
    }
    expect(accepted).toBeGreaterThan(1000);
  });

  it('every bit outside the usage data (and outside ignored obsolete bits) is rejected with a pointer to it', () => {
    let rejected = 0;
    for (const command of knownCommands()) {
      const usage = cdbUsageData(command.opcode, command.serviceAction)!;
      for (let byte = 1; byte < usage.length; byte++) {
        for (let bit = 0; bit < 8; bit++) {
          if (usage[byte]! & (1 << bit)) continue;
          if (command.serviceAction !== undefined && byte === 1 && bit < 5) continue; // the service action itself
          const cdb = new Uint8Array(usage.length);
          cdb[0] = command.opcode;
          if (command.serviceAction !== undefined) cdb[1] = command.serviceAction;
          cdb[byte]! |= 1 << bit;
          const d = decodeCdb(cdb);
          if (d.ok) continue; // an ignored obsolete/vendor bit
          rejected++;
          expect(d.sense).toMatchObject({ key: 5, asc: 0x24 });
          expect(d.sense.fieldPointer?.byte).toBe(byte);
        }
      }
    }
    expect(rejected).toBeGreaterThan(500);
  });
});

describe('REPORT SUPPORTED OPERATION CODES', () => {
  it('all commands, sorted, 8-byte descriptors (sg_opcodes)', () => {
    const r = encodeSupportedOperationCodes(
      table,
      request(buildCdb({ name: 'REPORT SUPPORTED OPERATION CODES', allocationLength: 8192 })),
    );
    expect(r.ok && toHex(r.data)).toBe(
      [
        '00 00 00 20',
        '00 00 00 00 00 00 00 06',
        '28 00 00 00 00 00 00 0a',
        '93 00 00 00 00 00 00 10',
        '9e 00 00 10 00 01 00 10',
      ].join(' '),
    );
  });

  it('all commands with RCTD: CTDP and 12-byte timeouts descriptors', () => {
    const r = encodeSupportedOperationCodes(
      [table[2]!],
      request(buildCdb({ name: 'REPORT SUPPORTED OPERATION CODES', rctd: true, allocationLength: 8192 })),
    );
    expect(r.ok && toHex(r.data)).toBe(
      '00 00 00 14 9e 00 00 10 00 03 00 10 00 0a 00 00 00 00 00 01 00 00 00 1e',
    );
  });

  it('one command (Linux scsi_report_opcode for WRITE SAME(16)): SUPPORT 011b and the usage data', () => {
    const r = encodeSupportedOperationCodes(
      table,
      request(
        buildCdb({
          name: 'REPORT SUPPORTED OPERATION CODES',
          reportingOptions: 1,
          requestedOpcode: 0x93,
          allocationLength: 512,
        }),
      ),
    );
    expect(r.ok && toHex(r.data)).toBe(`00 03 00 10 ${toHex(cdbUsageData(0x93)!)}`);
  });

  it('one command that is not supported: SUPPORT 001b', () => {
    const r = encodeSupportedOperationCodes(
      table,
      request(
        buildCdb({
          name: 'REPORT SUPPORTED OPERATION CODES',
          reportingOptions: 1,
          requestedOpcode: 0x2a,
          allocationLength: 512,
        }),
      ),
    );
    expect(r.ok && toHex(r.data)).toBe('00 01 00 00');
  });

  it('one command with service action, with RCTD', () => {
    const r = encodeSupportedOperationCodes(
      table,
      request(
        buildCdb({
          name: 'REPORT SUPPORTED OPERATION CODES',
          rctd: true,
          reportingOptions: 2,
          requestedOpcode: 0x9e,
          requestedServiceAction: 0x10,
          allocationLength: 512,
        }),
      ),
    );
    expect(r.ok && r.data.length).toBe(4 + 16 + 12);
    expect(r.ok && toHex(r.data.subarray(0, 4))).toBe('00 83 00 10');
  });

  it('reporting option 1 for an opcode with service actions, or 2 for one without → 05/24 00 at byte 3', () => {
    for (const [options, opcode] of [
      [1, 0x9e],
      [2, 0x28],
    ] as const) {
      const r = encodeSupportedOperationCodes(
        table,
        request(
          buildCdb({
            name: 'REPORT SUPPORTED OPERATION CODES',
            reportingOptions: options,
            requestedOpcode: opcode,
          }),
        ),
      );
      expect(r).toMatchObject({ ok: false, sense: { asc: 0x24, fieldPointer: { byte: 3 } } });
    }
  });

  it('option 3 treats the service action per opcode', () => {
    const withSa = encodeSupportedOperationCodes(table, {
      rctd: false,
      reportingOptions: 3,
      requestedOpcode: 0x9e,
      requestedServiceAction: 0x10,
      allocationLength: 100,
    });
    const withoutSa = encodeSupportedOperationCodes(table, {
      rctd: false,
      reportingOptions: 3,
      requestedOpcode: 0x28,
      requestedServiceAction: 0x77,
      allocationLength: 100,
    });
    expect(withSa.ok && withSa.data[1]).toBe(3);
    expect(withoutSa.ok && withoutSa.data[1]).toBe(3);
  });

  it('truncates without changing COMMAND DATA LENGTH', () => {
    const r = encodeSupportedOperationCodes(table, {
      rctd: false,
      reportingOptions: 0,
      requestedOpcode: 0,
      requestedServiceAction: 0,
      allocationLength: 6,
    });
    expect(r.ok && toHex(r.data)).toBe('00 00 00 20 00 00');
  });
});
