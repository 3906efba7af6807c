// sg3_utils against a disk served by openDevice with the memory backend, inside the kernel lab:
// one test per command of the "required here" column, through /dev/sgN.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openMemoryBackend } from '@tcmu/backend-memory';
import { describeKernel } from '@tcmu/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { run, runOk, testHba, testName } from './kernel-support';
import { openDevice, type TcmuDevice } from './open-device';

describeKernel('sg3_utils against an openDevice disk (memory backend, 512-byte blocks)', () => {
  const size = 64 * 1024 * 1024;
  let device: TcmuDevice;
  let sg = '';
  let folder = '';

  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'tcmu-sg-'));
    const backend = await openMemoryBackend({ size, blockSize: 512 });
    device = await openDevice({ name: testName('sg'), backend, hba: testHba(0) });
    expect(device.sgPath).toMatch(/^\/dev\/sg\d+$/);
    sg = device.sgPath!;
    // Let the kernel's own probe (and its unit attentions) settle.
    await run('sg_turs', ['-n', '3', sg]);
  });

  afterAll(async () => {
    await device?.close();
    if (folder) await rm(folder, { recursive: true, force: true });
  });

  const file = (name: string) => join(folder, name);
  const bytes = (length: number, seed: number) => {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 7) & 0xff;
    return out;
  };
  /** Reads `count` blocks at `lba` with sg_dd (READ(16)). */
  const readBlocks = async (lba: number, count: number) => {
    const out = file(`read-${lba}-${count}`);
    await runOk('sg_dd', [`if=${sg}`, `of=${out}`, 'bs=512', `skip=${lba}`, `count=${count}`, 'cdbsz=16']);
    return readFile(out);
  };
  const writeBlocks = async (lba: number, data: Buffer, cdbsz = 16) => {
    const input = file(`write-${lba}`);
    await writeFile(input, data);
    await runOk('sg_dd', [
      `if=${input}`,
      `of=${sg}`,
      'bs=512',
      `seek=${lba}`,
      `count=${data.length / 512}`,
      `cdbsz=${cdbsz}`,
    ]);
  };

  /** Sends a raw data-in CDB with sg_raw and returns the data (and sg_raw's report of sense). */
  const rawIn = async (cdb: number[], length: number) => {
    const out = file(`raw-${cdb.join('-')}`);
    const hex = cdb.map((b) => b.toString(16).padStart(2, '0'));
    const result = await run('sg_raw', ['-r', String(length), '-o', out, sg, ...hex]);
    const data = result.code === 0 ? await readFile(out) : Buffer.alloc(0);
    return { ...result, data };
  };

  const read16 = (lba: number, blocks: number) => {
    const cdb = Buffer.alloc(16);
    cdb[0] = 0x88;
    cdb.writeBigUInt64BE(BigInt(lba), 2);
    cdb.writeUInt32BE(blocks, 10);
    return [...cdb];
  };

  it('/dev/sdX exists and lsscsi shows the vendor', async () => {
    expect(device.devicePath).toMatch(/^\/dev\/sd[a-z]+$/);
    const lsscsi = await runOk('lsscsi', []);
    expect(lsscsi.stdout).toMatch(/TCMU-TS\s+tcmu disk/);
  });

  it('sg_inq: standard INQUIRY', async () => {
    const { stdout } = await runOk('sg_inq', [sg]);
    expect(stdout).toMatch(/Vendor identification: TCMU-TS/);
    expect(stdout).toMatch(/Product identification: tcmu disk/);
    expect(stdout).toMatch(/\[SPC-4\]/);
    expect(stdout).toMatch(/CmdQue=1/);
  });

  it('sg_inq -p 0x00: supported VPD pages', async () => {
    const { stdout } = await runOk('sg_inq', ['-p', '0x00', sg]);
    for (const page of ['0x80', '0x83', '0xb0', '0xb1', '0xb2']) expect(stdout).toContain(page);
  });

  it('sg_inq -p 0x80: the unit serial number', async () => {
    const { stdout } = await runOk('sg_inq', ['-p', '0x80', sg]);
    expect(stdout).toContain(device.serial);
  });

  it('sg_inq -p 0x83: an NAA 6 designator', async () => {
    const { stdout } = await runOk('sg_inq', ['-p', '0x83', sg]);
    expect(stdout).toMatch(/NAA 6/);
    expect(stdout).toMatch(/0x6001405/);
  });

  it('sg_inq -p 0xb0: block limits', async () => {
    const { stdout } = await runOk('sg_inq', ['-p', '0xb0', sg]);
    expect(stdout).toMatch(/Maximum compare and write length: 1 blocks/);
    expect(stdout).toMatch(/Maximum unmap LBA count: [1-9]/);
    expect(stdout).toMatch(/Maximum unmap block descriptor count: 256/);
    // sg_inq 2.10 does not print WSNZ: check byte 4 bit 0 in the raw page.
    const raw = await rawIn([0x12, 0x01, 0xb0, 0x00, 0x40, 0x00], 64);
    expect(raw.data[1]).toBe(0xb0);
    expect(raw.data.readUInt16BE(2)).toBe(0x3c);
    expect(raw.data[4]! & 1).toBe(1);
  });

  it('sg_inq -p 0xb1: block device characteristics', async () => {
    const { stdout } = await runOk('sg_inq', ['-p', '0xb1', sg]);
    expect(stdout).toMatch(/Non-rotating medium/);
  });

  it('sg_inq -p 0xb2: logical block provisioning', async () => {
    const { stdout } = await runOk('sg_vpd', ['-p', 'lbpv', sg]);
    expect(stdout).toMatch(/Unmap command supported \(LBPU\): 1/);
    expect(stdout).toMatch(/Write same \(16\) with unmap bit supported \(LBPWS\): 1/);
    expect(stdout).toMatch(/LBPRZ[^\n]*1/);
    expect(stdout).toMatch(/Provisioning type: 2|thin/i);
    const raw = await rawIn([0x12, 0x01, 0xb2, 0x00, 0x40, 0x00], 64);
    expect([...raw.data.subarray(0, 8)]).toEqual([0x00, 0xb2, 0x00, 0x04, 0x00, 0xe4, 0x02, 0x00]);
  });

  it('sg_readcap: READ CAPACITY(10)', async () => {
    const { stdout } = await runOk('sg_readcap', [sg]);
    expect(stdout).toMatch(new RegExp(`Last LBA=${size / 512 - 1}`));
    expect(stdout).toMatch(/Logical block length=512 bytes/);
  });

  it('sg_readcap -l: READ CAPACITY(16) with LBPME/LBPRZ', async () => {
    const { stdout } = await runOk('sg_readcap', ['-l', sg]);
    expect(stdout).toMatch(new RegExp(`Last LBA=${size / 512 - 1}`));
    expect(stdout).toMatch(/lbpme=1, lbprz=1/);
  });

  it('sg_modes: pages 01, 08, 0A', async () => {
    const { stdout } = await runOk('sg_modes', ['-a', sg]);
    expect(stdout).toMatch(/Read-Write error recovery/i);
    expect(stdout).toMatch(/Caching/);
    expect(stdout).toMatch(/Control/);
    const caching = await runOk('sg_modes', ['-p', '8', '-c', '1', sg]);
    expect(caching.stdout).toMatch(/Caching/);
  });

  it('MODE SELECT (sg_wr_mode): WCE can be cleared and set, other bits are refused', async () => {
    const off = await run('sg_wr_mode', ['-p', '8', '-m', '0,0,4', '-c', '0,0,0', sg]);
    expect(off.code, off.stderr).toBe(0);
    expect(device.device.writeCacheEnabled).toBe(false);
    const on = await run('sg_wr_mode', ['-p', '8', '-m', '0,0,4', '-c', '0,0,4', sg]);
    expect(on.code, on.stderr).toBe(0);
    expect(device.device.writeCacheEnabled).toBe(true);
    const rcd = await run('sg_wr_mode', ['-p', '8', '-m', '0,0,1', '-c', '0,0,1', sg]);
    expect(rcd.code).not.toBe(0);
    expect(rcd.stderr + rcd.stdout).toMatch(/Invalid field in parameter list|Illegal request/i);
  });

  it('sg_dd: READ/WRITE(6), (10), (12), (16) round trips', async () => {
    for (const [i, cdbsz] of [6, 10, 12, 16].entries()) {
      const data = bytes(32 * 512, i + 1);
      await writeBlocks(1000 + i * 64, data, cdbsz);
      const out = file(`rt-${cdbsz}`);
      await runOk('sg_dd', [
        `if=${sg}`,
        `of=${out}`,
        'bs=512',
        `skip=${1000 + i * 64}`,
        'count=32',
        `cdbsz=${cdbsz}`,
      ]);
      expect((await readFile(out)).equals(data)).toBe(true);
    }
  });

  it('reads past the end fail with LBA out of range', async () => {
    const last = size / 512 - 1;
    const r = await rawIn(read16(last, 2), 1024);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/Logical block address out of range/i);
    const ok = await rawIn(read16(last, 1), 512);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('sg_unmap: deallocates, then the range reads zeros', async () => {
    await writeBlocks(2048, bytes(64 * 512, 9));
    await runOk('sg_unmap', ['--force', '--lba=2048', '--num=64', sg]);
    expect((await readBlocks(2048, 64)).every((b) => b === 0)).toBe(true);
  });

  it('sg_get_lba_status: mapped and deallocated extents', async () => {
    await writeBlocks(4096, bytes(16 * 512, 3));
    const mapped = await runOk('sg_get_lba_status', ['--lba=4096', sg]);
    expect(mapped.stdout).toMatch(/mapped/i);
    await runOk('sg_unmap', ['--force', '--lba=4096', '--num=16', sg]);
    const after = await runOk('sg_get_lba_status', ['--lba=4096', sg]);
    expect(after.stdout).toMatch(/deallocated/i);
  });

  it('sg_write_same: replicates a block (10 and 16), zeroes with --unmap', async () => {
    const block = bytes(512, 5);
    await writeFile(file('ws-block'), block);
    await runOk('sg_write_same', ['--10', '--lba=8192', '--num=16', `--in=${file('ws-block')}`, sg]);
    await runOk('sg_write_same', ['--16', '--lba=8208', '--num=16', `--in=${file('ws-block')}`, sg]);
    const got = await readBlocks(8192, 32);
    for (let i = 0; i < 32; i++) expect(got.subarray(i * 512, (i + 1) * 512).equals(block)).toBe(true);
    await runOk('sg_write_same', ['--16', '--unmap', '--lba=8192', '--num=32', sg]);
    expect((await readBlocks(8192, 32)).every((b) => b === 0)).toBe(true);
  });

  it('sg_compare_and_write: succeeds on a match, reports a miscompare otherwise', async () => {
    const old = bytes(512, 1);
    const next = bytes(512, 2);
    await writeBlocks(9000, old);
    await writeFile(file('caw'), Buffer.concat([old, next]));
    await runOk('sg_compare_and_write', [`--in=${file('caw')}`, '--lba=9000', '--num=1', sg]);
    expect((await readBlocks(9000, 1)).equals(next)).toBe(true);
    const again = await run('sg_compare_and_write', [`--in=${file('caw')}`, '--lba=9000', '--num=1', sg]);
    expect(again.code).toBe(14); // sg3_utils: SG_LIB_CAT_MISCOMPARE
    expect((await readBlocks(9000, 1)).equals(next)).toBe(true);
  });

  it('sg_sync: SYNCHRONIZE CACHE(10) and (16)', async () => {
    await runOk('sg_sync', [sg]);
    await runOk('sg_sync', ['--16', '--lba=0', '--count=100', sg]);
  });

  it('sg_verify: BYTCHK 0, 1 with a match, 1 with a miscompare', async () => {
    const data = bytes(8 * 512, 4);
    await writeBlocks(10000, data);
    await runOk('sg_verify', ['--lba=10000', '--count=8', sg]);
    await writeFile(file('verify'), data);
    await runOk('sg_verify', [
      '--lba=10000',
      '--count=8',
      '--bytchk=1',
      `--in=${file('verify')}`,
      `--ndo=${data.length}`,
      sg,
    ]);
    const wrong = Buffer.from(data);
    wrong[700]! ^= 1;
    await writeFile(file('verify-wrong'), wrong);
    const miss = await run('sg_verify', [
      '--lba=10000',
      '--count=8',
      '--bytchk=1',
      `--in=${file('verify-wrong')}`,
      `--ndo=${data.length}`,
      sg,
    ]);
    expect(miss.code).toBe(14);
  });

  it('sg_opcodes: the supported commands, generated from the dispatch table', async () => {
    const { stdout } = await runOk('sg_opcodes', [sg]);
    for (const name of [
      'Read\\(10\\)',
      'Write\\(16\\)',
      'Compare and write',
      'Unmap',
      'Get LBA status',
      'Verify\\(16\\)',
    ])
      expect(stdout).toMatch(new RegExp(name, 'i'));
  });

  it('sg_turs and sg_requests', async () => {
    await runOk('sg_turs', ['-n', '5', sg]);
    const { stdout } = await runOk('sg_requests', ['--hex', sg]);
    // Fixed format, current, sense key 0 (NO SENSE), ASC/ASCQ 0.
    expect(stdout).toMatch(/70 00 00 00 00 00 00 0a/);
  });

  it('sg_start: stop then start', async () => {
    await runOk('sg_start', ['--stop', sg]);
    const tur = await run('sg_turs', [sg]);
    expect(tur.code).not.toBe(0);
    await runOk('sg_start', ['--start', sg]);
    await runOk('sg_turs', [sg]);
  });

  it('sg_prevent: prevent and allow', async () => {
    await runOk('sg_prevent', ['--prevent=1', sg]);
    await runOk('sg_prevent', ['--allow', sg]);
  });

  it('sg_format --early: FORMAT UNIT with IMMED, then TEST UNIT READY until the format is done', async () => {
    await writeBlocks(64, bytes(8 * 512, 6));
    // --early sets IMMED and returns once the format has started (sg_format's own polling sleeps
    // 60 s between polls); progress is then read with sg_turs --progress.
    const r = await run('sg_format', ['--format', '--quick', '--early', sg], { timeoutMs: 300_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    let ready = false;
    for (let i = 0; i < 600 && !ready; i++) {
      const tur = await run('sg_turs', ['--progress', sg]);
      ready = tur.code === 0;
      if (!ready) {
        expect(tur.stdout + tur.stderr).toMatch(/format in progress|Progress indication|progress/i);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    expect(ready).toBe(true);
    expect((await readBlocks(64, 8)).every((b) => b === 0)).toBe(true);
  }, 300_000);

  it('sg_format --wait: FORMAT UNIT without IMMED', async () => {
    await writeBlocks(128, bytes(8 * 512, 7));
    const r = await run('sg_format', ['--format', '--quick', '--wait', sg], { timeoutMs: 300_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((await readBlocks(128, 8)).every((b) => b === 0)).toBe(true);
  }, 300_000);
});
