// The ring against the real target_core_user (in the kernel lab): a TCMU device made by hand through
// configfs, served by a minimal handler, exposed through tcm_loop as /dev/sdX, then read and written
// with O_DIRECT by dd. Also captures a trace of the kernel's raw entries for the unit tests.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rmdir, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describeKernel, TARGET_CONFIGFS } from '@tcmu/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RingError } from './errors';
import { type HandledCommand, minimalDisk } from './minimal-disk.test-support';
import { openRing, type Ring } from './ring';
import type { RingTrace, RingTraceEntry } from './testing/index';
import type { RingTaskManagement } from './types';

const run = promisify(execFile);
const results = fileURLToPath(new URL('../../../.results/ring/', import.meta.url));
const read = (path: string) => readFileSync(path, 'utf8').trim();

/** Poll (asynchronously, so the ring keeps being served) until `probe` returns a value. */
async function waitFor<T>(what: string, probe: () => T | undefined, attempts = 600): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const value = probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describeKernel('@tcmu/ring against target_core_user through tcm_loop', () => {
  const size = 64 * 1024 * 1024;
  const disk = minimalDisk(size, 512, `ring-${process.pid}`);
  const name = `ring-${process.pid}`;
  const devConfig = `ring-test/${process.pid}`;
  const naa = `naa.5001405${(process.pid % 0xfffffffff).toString(16).padStart(9, '0')}`;
  const initiator = `naa.5001405f${(process.pid % 0xffffffff).toString(16).padStart(8, '0')}`;
  let hba = 0;
  let deviceDir = '';
  let hbaDir = '';
  let loopDir = '';
  let lunLink = '';
  let ring: Ring | undefined;
  let devicePath = '';
  const errors: RingError[] = [];
  const taskManagement: RingTaskManagement[] = [];
  const handled: HandledCommand[] = [];
  const trace: RingTraceEntry[] = [];
  let pendingEntry: RingTraceEntry | undefined;
  let delayTransfers = false;
  let entries = 0;
  let multiIovec = 0;
  let arrivals = 0;
  let lastCompleted = -1;
  let inversions = 0;
  let maxInFlight = 0;

  beforeAll(async () => {
    const core = join(TARGET_CONFIGFS, 'core');
    const taken = new Set(readdirSync(core).map((entry) => Number(entry.replace(/^user_/, ''))));
    hba = 5000 + (process.pid % 1000);
    while (taken.has(hba)) hba++;
    hbaDir = join(core, `user_${hba}`);
    deviceDir = join(hbaDir, name);
    await mkdir(deviceDir, { recursive: true });
    for (const token of [`dev_config=${devConfig}`, `dev_size=${size}`, 'nl_reply_supported=-1'])
      await writeFile(join(deviceDir, 'control'), token);
    await writeFile(join(deviceDir, 'wwn', 'vpd_unit_serial'), name);
    if (existsSync(join(deviceDir, 'attrib', 'tmr_notification')))
      await writeFile(join(deviceDir, 'attrib', 'tmr_notification'), '1');
    await writeFile(join(deviceDir, 'enable'), '1');
    const uioName = `tcm-user/${hba}/${name}/${devConfig}`;
    const uio = await waitFor(`the uio device ${uioName}`, () =>
      readdirSync('/sys/class/uio').find((entry) => read(`/sys/class/uio/${entry}/name`) === uioName),
    );

    ring = await openRing(`/dev/${uio}`);
    const served = ring;
    served.start({
      onEntry(entry, position) {
        // Keep the probe, every task management entry and some multi-iovec commands.
        const sequence = entries++;
        const operation = entry[0]! & 7;
        const iovecs = operation === 1 ? new DataView(entry.buffer, entry.byteOffset).getUint32(8, true) : 0;
        const keep = sequence < 60 || operation !== 1 || (iovecs > 1 && multiIovec++ < 20);
        pendingEntry = keep ? { position, sequence, entry: Buffer.from(entry).toString('hex') } : undefined;
        if (pendingEntry) trace.push(pendingEntry);
      },
      onCommand(command) {
        const sequence = arrivals++;
        maxInFlight = Math.max(maxInFlight, served.inFlight);
        const isTransfer = [0x28, 0x2a, 0x88, 0x8a].includes(command.cdb[0]!);
        if (delayTransfers && isTransfer) {
          // Complete later, in random order, to prove out-of-order completion against the kernel.
          setTimeout(() => {
            if (sequence < lastCompleted) inversions++;
            lastCompleted = Math.max(lastCompleted, sequence);
            handled.push(disk.handle(served, command));
          }, Math.random() * 4);
          return;
        }
        const outcome = disk.handle(served, command);
        handled.push(outcome);
        if (pendingEntry) {
          pendingEntry.cdbLength = outcome.cdbLength;
          pendingEntry.direction = outcome.direction;
          pendingEntry.status = outcome.status;
          pendingEntry = undefined;
        }
      },
      onTaskManagement(request) {
        taskManagement.push(request);
      },
      onError(error) {
        errors.push(error);
      },
    });

    // tcm_loop: the LUN link makes the kernel probe at once, so do it without blocking the loop.
    loopDir = join(TARGET_CONFIGFS, 'loopback', naa);
    await mkdir(join(loopDir, 'tpgt_1', 'lun', 'lun_0'), { recursive: true });
    await writeFile(join(loopDir, 'tpgt_1', 'nexus'), initiator);
    lunLink = join(loopDir, 'tpgt_1', 'lun', 'lun_0', 'ring');
    await symlink(deviceDir, lunLink);
    const address = read(join(loopDir, 'tpgt_1', 'address'));
    const blockDir = `/sys/bus/scsi/devices/${address}:0/block`;
    const sd = await waitFor(`a block device under ${blockDir}`, () =>
      existsSync(blockDir) ? readdirSync(blockDir)[0] : undefined,
    );
    devicePath = `/dev/${sd}`;
    await waitFor(devicePath, () => (existsSync(devicePath) ? true : undefined));
  });

  afterAll(async () => {
    // Tear down in order, only what this test made, while the ring still serves (removal sends commands).
    if (lunLink && existsSync(lunLink)) await unlink(lunLink);
    const lun = join(loopDir, 'tpgt_1', 'lun', 'lun_0');
    if (loopDir && existsSync(lun)) await rmdir(lun);
    if (loopDir && existsSync(join(loopDir, 'tpgt_1', 'nexus')))
      await writeFile(join(loopDir, 'tpgt_1', 'nexus'), 'NULL').catch(() => {});
    if (loopDir && existsSync(join(loopDir, 'tpgt_1'))) await rmdir(join(loopDir, 'tpgt_1'));
    if (loopDir && existsSync(loopDir)) await rmdir(loopDir);
    await ring?.close({ abandonInFlight: true });
    if (deviceDir && existsSync(deviceDir)) await rmdir(deviceDir);
    if (hbaDir && existsSync(hbaDir) && (await readdir(hbaDir)).length === 0) await rmdir(hbaDir);
    if (trace.length > 0) {
      const source = `${read('/proc/sys/kernel/osrelease')} target_core_user via tcm_loop (sd probe, dd O_DIRECT, sg_reset)`;
      const mapping = ring!;
      const captured: RingTrace = {
        source,
        mailbox: {
          version: 2,
          flags:
            (mapping.capabilities.outOfOrderCompletion ? 1 : 0) |
            (mapping.capabilities.readLength ? 2 : 0) |
            (mapping.capabilities.taskManagement ? 4 : 0) |
            (mapping.capabilities.keepBuffer ? 8 : 0),
          commandRingOffset: 128,
          commandRingSize: mapping.commandRingSize,
          mapSize: mapping.size,
        },
        entries: trace,
      };
      await mkdir(results, { recursive: true });
      await writeFile(join(results, 'kernel-trace.json'), `${JSON.stringify(captured, null, 1)}\n`);
    }
  });

  it('answers the kernel probe: the disk appears with the right capacity', async () => {
    expect(devicePath).toMatch(/^\/dev\/sd[a-z]+$/);
    const sd = devicePath.slice(5);
    expect(Number(read(`/sys/block/${sd}/size`)) * 512).toBe(size);
    expect(read(`/sys/block/${sd}/device/vendor`)).toBe('TCMU-TS');
    expect(ring!.capabilities.outOfOrderCompletion).toBe(true);
    expect(ring!.commandRingSize % 2).toBe(0);
    const opcodes = new Set(handled.map((command) => command.opcode));
    expect(opcodes.has(0x12)).toBe(true); // INQUIRY
    expect(opcodes.has(0x25) || opcodes.has(0x9e)).toBe(true); // READ CAPACITY
    expect(errors).toEqual([]);
    expect(taskManagement).toEqual([]);
  });

  it('reads, writes and verifies the raw device with O_DIRECT', async () => {
    const mib = 1024 * 1024;
    // Read: bytes placed in the backing buffer come out of /dev/sdX.
    for (let i = 0; i < 2 * mib; i++) disk.data[mib + i] = (i * 7 + 3) & 0xff;
    const { stdout: readBack } = await run(
      'dd',
      [`if=${devicePath}`, 'bs=1M', 'skip=1', 'count=2', 'iflag=direct', 'status=none'],
      { encoding: 'buffer', maxBuffer: 8 * mib },
    );
    expect(Buffer.compare(readBack, disk.data.subarray(mib, 3 * mib))).toBe(0);

    // Write: bytes written to /dev/sdX land in the backing buffer at the right offset.
    const pattern = Buffer.alloc(3 * mib + 4096);
    for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 13 + (i >> 12)) & 0xff;
    const file = `/tmp/ring-kernel-${process.pid}.bin`;
    await writeFile(file, pattern);
    await run('dd', [
      `if=${file}`,
      `of=${devicePath}`,
      'bs=4096',
      'seek=4096',
      'oflag=direct',
      'conv=fsync',
      'status=none',
    ]);
    const offset = 4096 * 4096;
    expect(Buffer.compare(disk.data.subarray(offset, offset + pattern.length), pattern)).toBe(0);
    expect(disk.data.subarray(offset - 4096, offset).every((b) => b === 0)).toBe(true);

    // Verify: read it back through the kernel.
    const { stdout: verify } = await run(
      'dd',
      [
        `if=${devicePath}`,
        'bs=4096',
        'skip=4096',
        `count=${pattern.length / 4096}`,
        'iflag=direct',
        'status=none',
      ],
      { encoding: 'buffer', maxBuffer: 8 * mib },
    );
    expect(Buffer.compare(verify, pattern)).toBe(0);
    const text = await readFile(`/sys/block/${devicePath.slice(5)}/stat`, 'utf8');
    expect(text.trim().split(/\s+/).length).toBeGreaterThan(4);
    expect(ring!.statistics.completions).toBe(ring!.statistics.commands);
    expect(ring!.inFlight).toBe(0);
  });

  it('completes concurrent I/O out of order, with one kick per batch', async () => {
    const mib = 1024 * 1024;
    const before = { ...ring!.statistics };
    delayTransfers = true;
    try {
      // Four writers and four readers on separate 1 MiB regions, all O_DIRECT, at once.
      const regions = [8, 9, 10, 11];
      const payload = (region: number) => {
        const bytes = Buffer.alloc(mib);
        for (let i = 0; i < mib; i++) bytes[i] = (region * 31 + i * 5) & 0xff;
        return bytes;
      };
      await Promise.all(
        regions.map(async (region) => {
          const file = `/tmp/ring-kernel-${process.pid}-${region}.bin`;
          await writeFile(file, payload(region));
          await run('dd', [
            `if=${file}`,
            `of=${devicePath}`,
            'bs=64k',
            `seek=${region * 16}`,
            'oflag=direct',
            'status=none',
          ]);
        }),
      );
      const reads = await Promise.all(
        regions.map((region) =>
          run(
            'dd',
            [`if=${devicePath}`, 'bs=64k', `skip=${region * 16}`, 'count=16', 'iflag=direct', 'status=none'],
            {
              encoding: 'buffer',
              maxBuffer: 2 * mib,
            },
          ),
        ),
      );
      reads.forEach(({ stdout }, i) => {
        expect(Buffer.compare(stdout, payload(regions[i]!))).toBe(0);
        expect(
          Buffer.compare(
            disk.data.subarray(regions[i]! * mib, (regions[i]! + 1) * mib),
            payload(regions[i]!),
          ),
        ).toBe(0);
      });
    } finally {
      delayTransfers = false;
    }
    const completions = ring!.statistics.completions - before.completions;
    const kicks = ring!.statistics.kicks - before.kicks;
    expect(completions).toBeGreaterThanOrEqual(8 * 16);
    expect(maxInFlight).toBeGreaterThan(1);
    expect(inversions).toBeGreaterThan(0); // some commands completed before older ones
    expect(kicks).toBeLessThanOrEqual(completions);
    expect(ring!.inFlight).toBe(0);
    expect(errors).toEqual([]);
    console.log(
      `concurrent phase: ${completions} completions, ${kicks} kicks, max ${maxInFlight} in flight, ${inversions} out of order`,
    );
  });

  it('surfaces a LUN reset from the initiator (sg_reset) as a task management event', async (context) => {
    const tool = ['/usr/bin/sg_reset', '/bin/sg_reset'].find((path) => existsSync(path));
    if (!tool) return context.skip('sg3-utils is not installed in the lab');
    if (!existsSync(join(deviceDir, 'attrib', 'tmr_notification')))
      return context.skip('this kernel has no attrib/tmr_notification');
    await run(tool, ['--device', devicePath]).catch((error: { stderr?: string }) => {
      throw new Error(`sg_reset failed: ${error.stderr}`);
    });
    await waitFor('the TMR entry', () => (taskManagement.length > 0 ? true : undefined));
    expect(taskManagement[0]).toMatchObject({ type: 5, name: 'lun-reset', ids: [] });
    expect(ring!.statistics.taskManagement).toBe(taskManagement.length);
    // The ring keeps serving after it.
    const { stdout } = await run(
      'dd',
      [`if=${devicePath}`, 'bs=4096', 'count=1', 'iflag=direct', 'status=none'],
      {
        encoding: 'buffer',
      },
    );
    expect(Buffer.compare(stdout, disk.data.subarray(0, 4096))).toBe(0);
  });

  it('rejects an unsupported command with CHECK CONDITION (sg_opcodes sees ILLEGAL REQUEST)', async (context) => {
    const tool = ['/usr/bin/sg_opcodes', '/bin/sg_opcodes'].find((path) => existsSync(path));
    if (!tool) return context.skip('sg3-utils is not installed in the lab');
    const outcome = await run(tool, [devicePath]).then(
      () => 'succeeded',
      (error: { stderr?: string; stdout?: string }) => `${error.stderr ?? ''}${error.stdout ?? ''}`,
    );
    expect(outcome).toMatch(/Illegal request|not supported|invalid/i);
    expect(handled.some((command) => command.opcode === 0xa3 && command.status === 2)).toBe(true);
  });
});
