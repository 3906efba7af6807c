import { openMemoryBackend } from '@tcmu/backend-memory';
import { ScsiStatus } from '@tcmu/scsi';
import { afterEach, describe, expect, it } from 'vitest';
import { type Harness, harness, pattern, senseCode, senseOf } from '../test-support';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

const read = async (lba: bigint, blocks: number, blockSize = 512) => {
  const r = await h.send({ name: 'READ(16)', lba, transferLength: blocks }, { inLength: blocks * blockSize });
  expect(r.status).toBe(0);
  return r.dataIn;
};

describe('VERIFY', () => {
  it('BYTCHK 0 reads the medium, 1 compares the data, 3 compares one block against the range', async () => {
    h = await harness();
    const data = pattern(8 * 512, 5);
    await h.send({ name: 'WRITE(10)', lba: 100n, transferLength: 8 }, { out: data });
    expect((await h.send({ name: 'VERIFY(10)', lba: 100n, transferLength: 8, bytchk: 0 })).status).toBe(0);
    expect(
      (await h.send({ name: 'VERIFY(16)', lba: 100n, transferLength: 8, bytchk: 1 }, { out: data })).status,
    ).toBe(0);
    const wrong = Uint8Array.from(data);
    wrong[3 * 512 + 17]! ^= 0xff;
    const miss = await h.send(
      { name: 'VERIFY(10)', lba: 100n, transferLength: 8, bytchk: 1 },
      { out: wrong },
    );
    expect(miss.status).toBe(ScsiStatus.CheckCondition);
    expect(senseCode(miss)).toBe('0e/1d/00');
    expect(senseOf(miss).information).toBe(BigInt(3 * 512 + 17));
    const block = pattern(512, 9);
    const same = new Uint8Array(4 * 512);
    for (let i = 0; i < 4; i++) same.set(block, i * 512);
    await h.send({ name: 'WRITE(10)', lba: 200n, transferLength: 4 }, { out: same });
    expect(
      (await h.send({ name: 'VERIFY(16)', lba: 200n, transferLength: 4, bytchk: 3 }, { out: block })).status,
    ).toBe(0);
    const other = await h.send(
      { name: 'VERIFY(16)', lba: 199n, transferLength: 4, bytchk: 3 },
      { out: block },
    );
    expect(senseCode(other)).toBe('0e/1d/00');
    expect(senseOf(other).information).toBe(0n);
  });

  it('checks the range', async () => {
    h = await harness({ size: 64 * 512 });
    expect(senseCode(await h.send({ name: 'VERIFY(10)', lba: 60n, transferLength: 8 }))).toBe('05/21/00');
  });
});

describe('WRITE SAME', () => {
  it('replicates a block, zeroes with NDOB, deallocates with UNMAP', async () => {
    h = await harness();
    const block = pattern(512, 11);
    expect(
      (await h.send({ name: 'WRITE SAME(10)', lba: 8n, transferLength: 16 }, { out: block })).status,
    ).toBe(0);
    const got = await read(8n, 16);
    for (let i = 0; i < 16; i++)
      expect(Buffer.from(got.subarray(i * 512, (i + 1) * 512)).equals(Buffer.from(block))).toBe(true);
    expect((await h.send({ name: 'WRITE SAME(16)', lba: 8n, transferLength: 8, ndob: true })).status).toBe(0);
    expect([...(await read(8n, 8))].every((b) => b === 0)).toBe(true);
    expect(
      (
        await h.send(
          { name: 'WRITE SAME(16)', lba: 16n, transferLength: 8, unmap: true },
          { out: new Uint8Array(512) },
        )
      ).status,
    ).toBe(0);
    expect([...(await read(8n, 16))].every((b) => b === 0)).toBe(true);
  });

  it('rejects 0 blocks (WSNZ), ANCHOR and ranges past the end', async () => {
    h = await harness({ size: 64 * 512 });
    const block = new Uint8Array(512);
    expect(
      senseCode(await h.send({ name: 'WRITE SAME(10)', lba: 0n, transferLength: 0 }, { out: block })),
    ).toBe('05/24/00');
    expect(
      senseCode(
        await h.send({ name: 'WRITE SAME(16)', lba: 0n, transferLength: 1, anchor: true }, { out: block }),
      ),
    ).toBe('05/24/00');
    expect(
      senseCode(await h.send({ name: 'WRITE SAME(16)', lba: 60n, transferLength: 8 }, { out: block })),
    ).toBe('05/21/00');
  });
});

function unmapList(ranges: [bigint, number][]): Uint8Array {
  const list = new Uint8Array(8 + 16 * ranges.length);
  const v = new DataView(list.buffer);
  v.setUint16(0, list.length - 2);
  v.setUint16(2, 16 * ranges.length);
  ranges.forEach(([lba, blocks], i) => {
    v.setBigUint64(8 + 16 * i, lba);
    v.setUint32(16 + 16 * i, blocks);
  });
  return list;
}

describe('UNMAP and GET LBA STATUS', () => {
  it('deallocates ranges, which then read as zeros and show as deallocated', async () => {
    h = await harness({ size: 1024 * 512 });
    await h.send({ name: 'WRITE(10)', lba: 0n, transferLength: 64 }, { out: pattern(64 * 512, 2) });
    const status = async (lba: bigint) => {
      const r = await h.send({ name: 'GET LBA STATUS', lba, allocationLength: 256 }, { inLength: 256 });
      expect(r.status).toBe(0);
      const v = new DataView(r.dataIn.buffer, r.dataIn.byteOffset);
      const n = (v.getUint32(0) - 4) / 16;
      return Array.from({ length: n }, (_, i) => [
        v.getBigUint64(8 + 16 * i),
        v.getUint32(16 + 16 * i),
        r.dataIn[20 + 16 * i],
      ]);
    };
    expect(await status(0n)).toEqual([
      [0n, 64, 0],
      [64n, 960, 1],
    ]);
    const list = unmapList([[16n, 16]]);
    expect((await h.send({ name: 'UNMAP', parameterListLength: list.length }, { out: list })).status).toBe(0);
    expect([...(await read(16n, 16))].every((b) => b === 0)).toBe(true);
    expect(await status(0n)).toEqual([
      [0n, 16, 0],
      [16n, 16, 1],
      [32n, 32, 0],
      [64n, 960, 1],
    ]);
    expect(
      senseCode(await h.send({ name: 'GET LBA STATUS', lba: 1024n, allocationLength: 64 }, { inLength: 64 })),
    ).toBe('05/21/00');
  });

  it('checks descriptors before deallocating anything', async () => {
    h = await harness({ size: 1024 * 512 });
    await h.send({ name: 'WRITE(10)', lba: 0n, transferLength: 8 }, { out: pattern(8 * 512, 4) });
    const list = unmapList([
      [0n, 8],
      [1020n, 8],
    ]);
    expect(senseCode(await h.send({ name: 'UNMAP', parameterListLength: list.length }, { out: list }))).toBe(
      '05/21/00',
    );
    expect([...(await read(0n, 8))].some((b) => b !== 0)).toBe(true);
    expect(
      senseCode(await h.send({ name: 'UNMAP', parameterListLength: 4 }, { out: new Uint8Array(4) })),
    ).toBe('05/1a/00');
  });
});

describe('COMPARE AND WRITE', () => {
  it('writes when the medium matches, reports the miscompare offset otherwise', async () => {
    h = await harness();
    const old = pattern(512, 1);
    const next = pattern(512, 2);
    await h.send({ name: 'WRITE(10)', lba: 5n, transferLength: 1 }, { out: old });
    const both = new Uint8Array(1024);
    both.set(old, 0);
    both.set(next, 512);
    expect(
      (await h.send({ name: 'COMPARE AND WRITE', lba: 5n, transferLength: 1 }, { out: both })).status,
    ).toBe(0);
    expect(Buffer.from(await read(5n, 1)).equals(Buffer.from(next))).toBe(true);
    const stale = await h.send({ name: 'COMPARE AND WRITE', lba: 5n, transferLength: 1 }, { out: both });
    expect(senseCode(stale)).toBe('0e/1d/00');
    let first = 0;
    while (old[first] === next[first]) first++;
    expect(senseOf(stale).information).toBe(BigInt(first));
    expect(Buffer.from(await read(5n, 1)).equals(Buffer.from(next))).toBe(true);
    expect(
      senseCode(
        await h.send(
          { name: 'COMPARE AND WRITE', lba: 5n, transferLength: 2 },
          { out: new Uint8Array(2048) },
        ),
      ),
    ).toBe('05/24/00');
  });

  it('answers 05/24 00 at NUMBER OF LOGICAL BLOCKS when the data-out is not exactly 2 × NLB blocks (libiscsi CompareAndWrite.Simple sends 256 blocks as NLB 0)', async () => {
    h = await harness({ size: 64 * 1024 * 1024 });
    // The CDB libiscsi builds for 256 blocks at LBA 0: byte 13 wraps to 00, with 256 KiB of data-out.
    const wrapped = Uint8Array.from([0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0, 0]);
    const big = await h.send(wrapped, { out: new Uint8Array(2 * 256 * 512).fill(0x41) });
    expect(senseCode(big)).toBe('05/24/00');
    expect(senseOf(big).fieldPointer).toEqual({ commandData: true, byte: 13 });
    expect((await read(0n, 1))[0]).toBe(0); // nothing written
    // NLB 0 without data: nothing to do, GOOD (SBC-4 §5.3).
    expect((await h.send(wrapped)).status).toBe(0);
    // NLB 1 (89 … 01 00 00) with 4 blocks of data-out, and with 1 block: both rejected.
    const one = Uint8Array.from([0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0]);
    expect(senseCode(await h.send(one, { out: new Uint8Array(4 * 512) }))).toBe('05/24/00');
    expect(senseCode(await h.send(one, { out: new Uint8Array(512) }))).toBe('05/24/00');
    // NLB 2 above MAXIMUM COMPARE AND WRITE LENGTH (1), with the right amount of data: 05/24 00 at byte 13.
    const two = Uint8Array.from([0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0]);
    const over = await h.send(two, { out: new Uint8Array(4 * 512) });
    expect(senseCode(over)).toBe('05/24/00');
    expect(senseOf(over).fieldPointer).toEqual({ commandData: true, byte: 13 });
    // NLB 1 with exactly 2 blocks: the compare (zeros) matches, the write lands.
    const both = new Uint8Array(1024);
    both.fill(0x42, 512);
    expect((await h.send(one, { out: both })).status).toBe(0);
    expect((await read(0n, 1))[511]).toBe(0x42);
  });

  it('is atomic against concurrent writes and other COMPARE AND WRITEs to the range', async () => {
    // A slow backend that yields between the compare's read and the write would interleave
    // without the range lock.
    const memory = await openMemoryBackend({ size: 1024 * 1024 });
    const slow = {
      size: memory.size,
      read: async (o: number, l: number, into: readonly Uint8Array[]) => {
        await new Promise((r) => setTimeout(r, 2));
        return memory.read(o, l, into);
      },
      write: async (o: number, d: readonly Uint8Array[]) => {
        await new Promise((r) => setTimeout(r, 2));
        return memory.write(o, d);
      },
      flush: () => memory.flush(),
    };
    h = await harness({ backend: slow, size: memory.size });
    const zero = new Uint8Array(512);
    await h.send({ name: 'WRITE(10)', lba: 0n, transferLength: 1 }, { out: zero });
    // 20 initiators each try to take the "lock" block from zero to their own value.
    const attempts = Array.from({ length: 20 }, (_, i) => {
      const out = new Uint8Array(1024);
      out.fill(i + 1, 512);
      return h.send({ name: 'COMPARE AND WRITE', lba: 0n, transferLength: 1 }, { out });
    });
    const results = await Promise.all(attempts);
    const winners = results.filter((r) => r.status === 0);
    expect(winners).toHaveLength(1);
    expect(results.filter((r) => r.status !== 0).every((r) => senseCode(r) === '0e/1d/00')).toBe(true);
  });
});

describe('WRITE AND VERIFY', () => {
  it('writes, flushes and verifies', async () => {
    h = await harness();
    const data = pattern(4 * 512, 8);
    expect(
      (await h.send({ name: 'WRITE AND VERIFY(10)', lba: 3n, transferLength: 4, bytchk: 1 }, { out: data }))
        .status,
    ).toBe(0);
    expect(Buffer.from(await read(3n, 4)).equals(Buffer.from(data))).toBe(true);
  });
});

describe('4096-byte blocks', () => {
  it('addresses LBAs in 4 KiB units', async () => {
    h = await harness({ size: 256 * 4096, blockSize: 4096 });
    const data = pattern(2 * 4096, 12);
    expect(
      (await h.send({ name: 'WRITE(10)', lba: 255n, transferLength: 1 }, { out: data.subarray(0, 4096) }))
        .status,
    ).toBe(0);
    expect(senseCode(await h.send({ name: 'WRITE(10)', lba: 255n, transferLength: 2 }, { out: data }))).toBe(
      '05/21/00',
    );
    const r = await h.send({ name: 'READ(10)', lba: 255n, transferLength: 1 }, { inLength: 4096 });
    expect(Buffer.from(r.dataIn).equals(Buffer.from(data.subarray(0, 4096)))).toBe(true);
    expect(await h.backend!.size).toBe(256 * 4096);
  });
});

describe('FORMAT UNIT', () => {
  it('zeroes the medium', async () => {
    h = await harness({ size: 1024 * 512 });
    await h.send({ name: 'WRITE(10)', lba: 0n, transferLength: 64 }, { out: pattern(64 * 512, 3) });
    expect((await h.send({ name: 'FORMAT UNIT' })).status).toBe(0);
    expect([...(await read(0n, 64))].every((b) => b === 0)).toBe(true);
  });

  it('with IMMED answers at once, reports progress while it runs, then is ready', async () => {
    // A backend without unmap/writeZeroes and slow writes: the format takes many steps.
    const memory = await openMemoryBackend({ size: 16 * 1024 * 1024 });
    let writes = 0;
    const slow = {
      size: memory.size,
      read: memory.read.bind(memory),
      write: async (o: number, d: readonly Uint8Array[]) => {
        writes++;
        await new Promise((r) => setTimeout(r, 5));
        return memory.write(o, d);
      },
    };
    h = await harness({ backend: slow, size: memory.size });
    const header = Uint8Array.from([0, 0x02, 0, 0]); // IMMED
    expect((await h.send({ name: 'FORMAT UNIT', fmtdata: true }, { out: header })).status).toBe(0);
    const tur = await h.send({ name: 'TEST UNIT READY' });
    expect(senseCode(tur)).toBe('02/04/04');
    const progress: number[] = [];
    for (;;) {
      const r = await h.send({ name: 'REQUEST SENSE', allocationLength: 18 }, { inLength: 18 });
      const s = senseOf({ ...r, sense: r.dataIn });
      if (s.key === 0) break;
      expect(`${s.key}/${s.asc}/${s.ascq}`).toBe('2/4/4');
      progress.push(s.progress!);
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.every((p, i) => i === 0 || p >= progress[i - 1]!)).toBe(true);
    expect(writes).toBe(16);
    expect((await h.send({ name: 'TEST UNIT READY' })).status).toBe(0);
  });

  it('rejects a defect list and an initialization pattern', async () => {
    h = await harness();
    expect(
      senseCode(
        await h.send(
          { name: 'FORMAT UNIT', fmtdata: true },
          { out: Uint8Array.from([0, 0, 0, 4, 0, 0, 0, 0]) },
        ),
      ),
    ).toBe('05/26/00');
    expect(
      senseCode(
        await h.send({ name: 'FORMAT UNIT', fmtdata: true }, { out: Uint8Array.from([0, 0x88, 0, 0]) }),
      ),
    ).toBe('05/26/00');
  });
});
