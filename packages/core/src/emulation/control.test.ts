import { decodeSense, ScsiStatus } from '@tcmu/scsi';
import { afterEach, describe, expect, it } from 'vitest';
import { type Harness, harness, pattern, senseCode, senseOf } from '../test-support';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

const ascii = (bytes: Uint8Array, from: number, to: number) =>
  Buffer.from(bytes.subarray(from, to)).toString('latin1');

describe('INQUIRY', () => {
  it('answers standard data with zero padding up to the allocation length', async () => {
    h = await harness({ poison: 0xa5 });
    const r = await h.send({ name: 'INQUIRY', allocationLength: 255 }, { inLength: 255 });
    expect(r.status).toBe(ScsiStatus.Good);
    const data = r.dataIn;
    expect(data[0]).toBe(0x00); // connected, direct access block device
    expect(data[2]).toBe(0x06); // SPC-4 (libiscsi Inquiry.Standard accepts 4, 5, 6)
    // Version descriptors SAM-5, SPC-4, SBC-3 (libiscsi looks for SBC-3 before the 60-byte B0h page), SBC-4.
    expect(Buffer.from(data.subarray(58, 68)).toString('hex')).toBe('00a0046004c006000000');
    expect(data[3]! & 0x0f).toBe(0x02); // response data format 2
    expect(data[4]).toBe(96 - 5);
    expect(data[7]! & 0x02).toBe(0x02); // CMDQUE
    expect(ascii(data, 8, 16)).toBe('TCMU-TS ');
    expect(ascii(data, 16, 32)).toBe('tcmu disk       ');
    // Bytes past the 96 valid ones never leak the poisoned buffer.
    expect([...r.dataIn.subarray(96)].every((b) => b === 0)).toBe(true);
  });

  it('truncates to a short allocation length without changing ADDITIONAL LENGTH', async () => {
    h = await harness();
    const r = await h.send({ name: 'INQUIRY', allocationLength: 36 }, { inLength: 36 });
    expect(r.dataIn.length).toBe(36);
    expect(r.dataIn[4]).toBe(91);
  });

  it('serves VPD pages 00, 80, 83, B0, B1, B2 with consistent lengths', async () => {
    h = await harness({ serial: 'serial-0001' });
    const page = async (code: number) => {
      const r = await h.send(
        { name: 'INQUIRY', evpd: true, pageCode: code, allocationLength: 255 },
        { inLength: 255 },
      );
      expect(r.status).toBe(ScsiStatus.Good);
      expect(r.dataIn[1]).toBe(code);
      const length = (r.dataIn[2]! << 8) | r.dataIn[3]!;
      expect([...r.dataIn.subarray(4 + length)].every((b) => b === 0)).toBe(true);
      return r.dataIn.subarray(0, 4 + length);
    };
    expect([...(await page(0x00)).subarray(4)]).toEqual([0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
    expect(ascii(await page(0x80), 4, 15)).toBe('serial-0001');
    const id = await page(0x83);
    expect(id[4]! & 0x0f).toBe(1); // binary
    expect(id[5]! & 0x0f).toBe(3); // NAA
    expect(id[8]! >> 4).toBe(6); // NAA 6
    const limits = await page(0xb0);
    expect(limits[4]! & 1).toBe(1); // WSNZ
    expect(limits[5]).toBe(1); // max COMPARE AND WRITE length
    expect(new DataView(limits.buffer, limits.byteOffset).getUint32(20)).toBeGreaterThan(0); // max unmap LBA count
    const characteristics = await page(0xb1);
    expect((characteristics[4]! << 8) | characteristics[5]!).toBe(1); // non-rotating
    const provisioning = await page(0xb2);
    expect(provisioning[5]! & 0xe0).toBe(0xe0); // LBPU, LBPWS, LBPWS10
    expect((provisioning[5]! >> 2) & 7).toBe(1); // LBPRZ
  });

  it('Block Limits (B0h) bytes: MAXIMUM COMPARE AND WRITE LENGTH 1, UNMAP 2^20 blocks × 256 descriptors, WRITE SAME 65535 blocks', async () => {
    h = await harness({ size: 64 * 1024 * 1024 });
    const r = await h.send(Uint8Array.from([0x12, 0x01, 0xb0, 0x00, 0x40, 0x00]), { inLength: 64 });
    expect(r.status).toBe(ScsiStatus.Good);
    const hex = Buffer.from(r.dataIn).toString('hex');
    expect(hex.slice(0, 8)).toBe('00b0003c'); // page length 3Ch (the SBC-3 length)
    expect(hex.slice(8, 16)).toBe('01010001'); // WSNZ, MAXIMUM COMPARE AND WRITE LENGTH 1, granularity 1
    expect(hex.slice(40, 48)).toBe('00100000'); // MAXIMUM UNMAP LBA COUNT 2^20 (≤ libiscsi's 1M sanity bound)
    expect(hex.slice(48, 56)).toBe('00000100'); // MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT 256
    expect(hex.slice(72, 88)).toBe('000000000000ffff'); // MAXIMUM WRITE SAME LENGTH 65535
    // WRITE SAME(16) with UNMAP of 65536 blocks is above it: 05/24 00; of 65535 blocks: GOOD.
    const writeSame = (blocks: number) => {
      const cdb = new Uint8Array(16);
      cdb[0] = 0x93;
      cdb[1] = 0x08;
      new DataView(cdb.buffer).setUint32(10, blocks);
      return h.send(cdb, { out: new Uint8Array(512) });
    };
    expect(senseCode(await writeSame(65536))).toBe('05/24/00');
    expect((await writeSame(65535)).status).toBe(ScsiStatus.Good);
  });

  it('gives every device a different NAA designator and serial', async () => {
    const a = await harness({ name: 'one' });
    const b = await harness({ name: 'one' });
    try {
      const get = async (x: Harness) =>
        Buffer.from(
          (
            await x.send(
              { name: 'INQUIRY', evpd: true, pageCode: 0x83, allocationLength: 64 },
              { inLength: 64 },
            )
          ).dataIn,
        ).toString('hex');
      expect(await get(a)).not.toBe(await get(b));
      expect(a.served.device.identity.serial).not.toBe(b.served.device.identity.serial);
    } finally {
      await a.close();
      await b.close();
    }
    h = await harness();
  });

  it('rejects an unknown VPD page with 05/24 00 pointing at byte 2', async () => {
    h = await harness();
    const r = await h.send(
      { name: 'INQUIRY', evpd: true, pageCode: 0x89, allocationLength: 64 },
      { inLength: 64 },
    );
    expect(senseCode(r)).toBe('05/24/00');
    expect(senseOf(r).fieldPointer).toMatchObject({ commandData: true, byte: 2 });
  });
});

describe('READ CAPACITY', () => {
  it('(10) and (16) report the last LBA, block size and LBPME/LBPRZ', async () => {
    h = await harness({ size: 4096 * 1000, blockSize: 4096 });
    const r10 = await h.send({ name: 'READ CAPACITY(10)' }, { inLength: 8 });
    const v10 = new DataView(r10.dataIn.buffer, r10.dataIn.byteOffset);
    expect(v10.getUint32(0)).toBe(999);
    expect(v10.getUint32(4)).toBe(4096);
    const r16 = await h.send({ name: 'READ CAPACITY(16)', allocationLength: 32 }, { inLength: 32 });
    const v16 = new DataView(r16.dataIn.buffer, r16.dataIn.byteOffset);
    expect(v16.getBigUint64(0)).toBe(999n);
    expect(v16.getUint32(8)).toBe(4096);
    expect(r16.dataIn[14]! & 0xc0).toBe(0xc0);
  });

  it('(10) reports 0xFFFFFFFF above 2^32 blocks', async () => {
    const size = 2 ** 32 * 512 + 512 * 8;
    h = await harness({ size });
    const r10 = await h.send({ name: 'READ CAPACITY(10)' }, { inLength: 8 });
    expect(new DataView(r10.dataIn.buffer, r10.dataIn.byteOffset).getUint32(0)).toBe(0xffffffff);
    const r16 = await h.send({ name: 'READ CAPACITY(16)', allocationLength: 32 }, { inLength: 32 });
    expect(new DataView(r16.dataIn.buffer, r16.dataIn.byteOffset).getBigUint64(0)).toBe(2n ** 32n + 7n);
  });
});

describe('MODE SENSE / MODE SELECT', () => {
  it('returns pages 01, 08, 0A for 3F with a block descriptor', async () => {
    h = await harness();
    const r = await h.send(
      { name: 'MODE SENSE(10)', pageCode: 0x3f, allocationLength: 512 },
      { inLength: 512 },
    );
    expect(r.status).toBe(0);
    const v = new DataView(r.dataIn.buffer, r.dataIn.byteOffset);
    const total = v.getUint16(0) + 2;
    expect(v.getUint16(6)).toBe(8); // block descriptor length
    expect(v.getUint32(8 + 4) & 0xffffff).toBe(512);
    const codes: number[] = [];
    for (let at = 16; at < total; at += r.dataIn[at + 1]! + 2) codes.push(r.dataIn[at]! & 0x3f);
    expect(codes).toEqual([0x01, 0x08, 0x0a]);
    expect([...r.dataIn.subarray(total)].every((b) => b === 0)).toBe(true);
  });

  it('reports WCE as changeable and lets MODE SELECT turn the write cache off', async () => {
    h = await harness();
    const changeable = await h.send(
      { name: 'MODE SENSE(6)', pageCode: 0x08, pc: 1, dbd: true, allocationLength: 64 },
      { inLength: 64 },
    );
    expect(changeable.dataIn[4 + 2]! & 0x04).toBe(0x04);
    const current = await h.send(
      { name: 'MODE SENSE(6)', pageCode: 0x08, dbd: true, allocationLength: 64 },
      { inLength: 64 },
    );
    const length = current.dataIn[0]! + 1;
    const list = Uint8Array.from(current.dataIn.subarray(0, length));
    list[0] = 0; // MODE DATA LENGTH is reserved in MODE SELECT
    list[2] = 0; // device-specific parameter
    list[4 + 2]! &= ~0x04; // WCE off
    list[4]! &= 0x3f; // PS
    const select = await h.send(
      { name: 'MODE SELECT(6)', pf: true, parameterListLength: length },
      { out: list },
    );
    expect(select.status).toBe(0);
    expect(h.served.device.writeCacheEnabled).toBe(false);
    // Changing anything else is 05/26 00.
    list[4 + 2]! |= 0x01; // RCD
    const bad = await h.send(
      { name: 'MODE SELECT(6)', pf: true, parameterListLength: length },
      { out: list },
    );
    expect(senseCode(bad)).toBe('05/26/00');
  });

  it('rejects saved values and unknown pages', async () => {
    h = await harness();
    const saved = await h.send(
      { name: 'MODE SENSE(6)', pageCode: 0x08, pc: 3, allocationLength: 64 },
      { inLength: 64 },
    );
    expect(senseCode(saved)).toBe('05/39/00');
    const unknown = await h.send(
      { name: 'MODE SENSE(6)', pageCode: 0x1c, allocationLength: 64 },
      { inLength: 64 },
    );
    expect(senseCode(unknown)).toBe('05/24/00');
  });

  it('sets WP for a read-only device, whose writes get 07/27 00', async () => {
    h = await harness({ readOnly: true });
    const r = await h.send(
      { name: 'MODE SENSE(6)', pageCode: 0x3f, allocationLength: 255 },
      { inLength: 255 },
    );
    expect(r.dataIn[2]! & 0x80).toBe(0x80);
    const w = await h.send({ name: 'WRITE(10)', lba: 0n, transferLength: 1 }, { out: pattern(512, 1) });
    expect(senseCode(w)).toBe('07/27/00');
    const ws = await h.send({ name: 'WRITE SAME(16)', lba: 0n, transferLength: 1, ndob: true });
    expect(senseCode(ws)).toBe('07/27/00');
  });
});

describe('TEST UNIT READY, REQUEST SENSE, START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL', () => {
  it('reports a power-on unit attention once, then GOOD', async () => {
    h = await harness({ powerOnUnitAttention: true });
    const inquiry = await h.send({ name: 'INQUIRY', allocationLength: 36 }, { inLength: 36 });
    expect(inquiry.status).toBe(0); // INQUIRY never reports a unit attention
    const first = await h.send({ name: 'TEST UNIT READY' });
    expect(senseCode(first)).toBe('06/29/00');
    expect((await h.send({ name: 'TEST UNIT READY' })).status).toBe(0);
  });

  it('REQUEST SENSE returns and clears a pending unit attention, else NO SENSE', async () => {
    h = await harness({ powerOnUnitAttention: true });
    const r = await h.send({ name: 'REQUEST SENSE', allocationLength: 252 }, { inLength: 252 });
    expect(r.status).toBe(0);
    const sense = decodeSense(r.dataIn)!;
    expect([sense.key, sense.asc, sense.ascq]).toEqual([6, 0x29, 0]);
    const again = await h.send(
      { name: 'REQUEST SENSE', desc: true, allocationLength: 252 },
      { inLength: 252 },
    );
    const none = decodeSense(again.dataIn)!;
    expect(none.descriptor).toBe(true);
    expect([none.key, none.asc, none.ascq]).toEqual([0, 0, 0]);
    expect([...again.dataIn.subarray(8)].every((b) => b === 0)).toBe(true);
  });

  it('a stopped unit answers 02/04 02 until started; LOEJ is rejected', async () => {
    h = await harness();
    expect((await h.send({ name: 'START STOP UNIT', start: false })).status).toBe(0);
    expect(senseCode(await h.send({ name: 'TEST UNIT READY' }))).toBe('02/04/02');
    const read = await h.send({ name: 'READ(10)', lba: 0n, transferLength: 1 }, { inLength: 512 });
    expect(senseCode(read)).toBe('02/04/02');
    expect((await h.send({ name: 'INQUIRY', allocationLength: 36 }, { inLength: 36 })).status).toBe(0);
    expect((await h.send({ name: 'START STOP UNIT', start: true })).status).toBe(0);
    expect((await h.send({ name: 'TEST UNIT READY' })).status).toBe(0);
    expect(senseCode(await h.send({ name: 'START STOP UNIT', loej: true, start: false }))).toBe('05/24/00');
  });

  it('PREVENT ALLOW MEDIUM REMOVAL accepts 0 and 1', async () => {
    h = await harness();
    expect((await h.send({ name: 'PREVENT ALLOW MEDIUM REMOVAL', prevent: 1 })).status).toBe(0);
    expect((await h.send({ name: 'PREVENT ALLOW MEDIUM REMOVAL', prevent: 0 })).status).toBe(0);
    expect(senseCode(await h.send({ name: 'PREVENT ALLOW MEDIUM REMOVAL', prevent: 2 }))).toBe('05/24/00');
  });
});

describe('REPORT SUPPORTED OPERATION CODES', () => {
  it('lists the dispatch table, and one command with its usage data', async () => {
    h = await harness();
    const all = await h.send(
      { name: 'REPORT SUPPORTED OPERATION CODES', reportingOptions: 0, allocationLength: 4096 },
      { inLength: 4096 },
    );
    expect(all.status).toBe(0);
    const v = new DataView(all.dataIn.buffer, all.dataIn.byteOffset);
    const length = v.getUint32(0);
    const ops: string[] = [];
    for (let at = 4; at < 4 + length; at += 8) {
      const sa = all.dataIn[at + 5]! & 1 ? `/${v.getUint16(at + 2).toString(16)}` : '';
      ops.push(`${all.dataIn[at]!.toString(16)}${sa}`);
    }
    for (const op of ['0', '3', '4', '8', 'a', '12', '28', '2a', '42', '89', '93', '9e/10', '9e/12', 'a3/c'])
      expect(ops).toContain(op);
    expect([...all.dataIn.subarray(4 + length)].every((b) => b === 0)).toBe(true);
    const one = await h.send(
      {
        name: 'REPORT SUPPORTED OPERATION CODES',
        reportingOptions: 1,
        requestedOpcode: 0x28,
        allocationLength: 64,
      },
      { inLength: 64 },
    );
    expect(one.dataIn[1]! & 7).toBe(3);
    expect((one.dataIn[2]! << 8) | one.dataIn[3]!).toBe(10);
    expect(one.dataIn[4]).toBe(0x28);
  });

  it('does not list UNMAP when the backend cannot deallocate', async () => {
    const { openMemoryBackend } = await import('@tcmu/backend-memory');
    const memory = await openMemoryBackend({ size: 1024 * 1024 });
    const plain = {
      size: memory.size,
      read: memory.read.bind(memory),
      write: memory.write.bind(memory),
      flush: memory.flush.bind(memory),
    };
    h = await harness({ backend: plain, size: 1024 * 1024 });
    const one = await h.send(
      {
        name: 'REPORT SUPPORTED OPERATION CODES',
        reportingOptions: 1,
        requestedOpcode: 0x42,
        allocationLength: 64,
      },
      { inLength: 64 },
    );
    expect(one.dataIn[1]! & 7).toBe(1);
    expect(
      senseCode(await h.send({ name: 'UNMAP', parameterListLength: 24 }, { out: new Uint8Array(24) })),
    ).toBe('05/20/00');
  });
});

describe('unknown commands', () => {
  it('answers 05/20 00 for unknown and vendor opcodes, never crashing', async () => {
    h = await harness();
    for (const cdb of [
      [0xc5, 0, 0, 0, 0, 0],
      [0x02, 0, 0, 0, 0, 0],
      [0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    ]) {
      const r = await h.send(Uint8Array.from(cdb));
      expect(senseCode(r)).toBe('05/20/00');
    }
    expect((await h.send({ name: 'TEST UNIT READY' })).status).toBe(0);
  });
});

describe('sense format', () => {
  it('uses descriptor format (0x72) when D_SENSE is set, fixed (0x70) otherwise', async () => {
    h = await harness({ size: 64 * 512 });
    const fixed = await h.send({ name: 'READ(10)', lba: 100n, transferLength: 1 }, { inLength: 512 });
    expect(fixed.sense[0]! & 0x7f).toBe(0x70);
    h.served.device.descriptorSense = true;
    const descriptor = await h.send({ name: 'READ(10)', lba: 100n, transferLength: 1 }, { inLength: 512 });
    expect(descriptor.sense[0]! & 0x7f).toBe(0x72);
    expect(senseCode(descriptor)).toBe('05/21/00');
  });
});
