// The device lifecycle against the real kernel, inside the kernel lab: resize with the capacity
// unit attention, rollback of a failed open, idempotent close leaving nothing in configfs.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { openMemoryBackend } from '@tcmu/backend-memory';
import { describeKernel } from '@tcmu/lab';
import { expect, it } from 'vitest';
import { emulate } from './emulation/handler';
import { isCoreError } from './errors';
import { run, runOk, testHba, testName } from './kernel-support';
import { openDevice } from './open-device';
import { handlerFunction } from './types';
import { withLogging } from './wrappers';

const core = '/sys/kernel/config/target/core';

describeKernel('openDevice lifecycle in the kernel', () => {
  it('resize(): 06/2A 09 reaches the initiator, READ CAPACITY and the disk size after a rescan', async () => {
    const backend = await openMemoryBackend({ size: 32 * 1024 * 1024, blockSize: 512 });
    // Record which command carried the capacity unit attention (Linux itself may send the next
    // command before sg_turs does).
    const attentions: string[] = [];
    const logger = {
      info: (context: object) => {
        const c = context as { command?: string; senseKey?: number; asc?: number; ascq?: number };
        if (c.senseKey === 6 && c.asc === 0x2a && c.ascq === 9) attentions.push(c.command ?? '?');
      },
    };
    const handler = withLogging(emulate(backend), logger);
    const device = await openDevice({ name: testName('resize'), handler, backend, hba: testHba(3) });
    try {
      const sg = device.sgPath!;
      await run('sg_turs', ['-n', '2', sg]);
      expect(attentions).toEqual([]);
      await device.resize(64 * 1024 * 1024);
      expect(device.size).toBe(64 * 1024 * 1024);
      await run('sg_turs', ['-n', '2', sg]);
      expect(attentions).toHaveLength(1);
      console.log(`capacity unit attention delivered with ${attentions[0]}`);
      const cap = await runOk('sg_readcap', [sg]);
      expect(cap.stdout).toMatch(/Last LBA=131071/);
      const block = device.devicePath.slice('/dev/'.length);
      await writeFile(`/sys/block/${block}/device/rescan`, '1');
      expect(Number(await readFile(`/sys/block/${block}/size`, 'utf8'))).toBe(131072);
    } finally {
      await device.close();
    }
  }, 300_000);

  it('a failed open (bad LUN) is rolled back: nothing left in configfs, the error says why', async () => {
    const backend = await openMemoryBackend({ size: 8 * 1024 * 1024 });
    const name = testName('rollback');
    const error = await openDevice({ name, backend, hba: testHba(4), lun: 4000 }).catch((e: unknown) => e);
    expect(isCoreError(error)).toBe(true);
    expect((error as Error).message).toMatch(/lun|LUN/);
    expect(existsSync(`${core}/user_${testHba(4)}/${name}`)).toBe(false);
    // The backend still belongs to the caller and works.
    await backend.write(0, [new Uint8Array(512).fill(1)]);
  }, 300_000);

  it('close() is idempotent and removes the LUN, the device and the HBA it created; the data area has 64 KiB blocks', async () => {
    const backend = await openMemoryBackend({ size: 8 * 1024 * 1024 });
    const device = await openDevice({ name: testName('close'), backend, hba: testHba(5) });
    expect(existsSync(device.devicePath)).toBe(true);
    // The measured default of 64 KiB data-area blocks reached the kernel (it has the setting since 5.13).
    const perBlock = `${core}/user_${testHba(5)}/${device.name}/attrib/data_pages_per_blk`;
    if (existsSync(perBlock)) expect((await readFile(perBlock, 'utf8')).trim()).toBe('16');
    const first = device.close();
    expect(device.close()).toBe(first);
    await Promise.all([first, device.close()]);
    expect(existsSync(`${core}/user_${testHba(5)}/${device.name}`)).toBe(false);
    expect(existsSync(`${core}/user_${testHba(5)}`)).toBe(false);
    const loopback = await run('ls', ['/sys/kernel/config/target/loopback']);
    expect(loopback.stdout).not.toContain(device.wwn);
    await expect(device.resize(16 * 1024 * 1024)).rejects.toMatchObject({ code: 'TCMU_ERR_CORE_CLOSED' });
  }, 300_000);

  it('a LUN reset (sg_reset --device) aborts a command in flight: completed, device still serving', async () => {
    const backend = await openMemoryBackend({ size: 8 * 1024 * 1024 });
    const emulation = emulate(backend);
    let hold = true;
    let aborted = 0;
    // READ of block 4242 hangs until its command is aborted (or 60 s pass).
    const handler = handlerFunction(async (command) => {
      const decoded = command.decoded as { name: string; lba?: bigint };
      if (hold && decoded.name === 'READ(16)' && decoded.lba === 4242n) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 60_000);
          command.signal.addEventListener('abort', () => {
            aborted++;
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return emulation.handle(command);
    });
    const device = await openDevice({ name: testName('tmr'), handler, backend, hba: testHba(6) });
    try {
      const sg = device.sgPath!;
      const reading = run('sg_dd', [
        `if=${sg}`,
        'of=/dev/null',
        'bs=512',
        'skip=4242',
        'count=1',
        'cdbsz=16',
      ]);
      for (let i = 0; i < 200 && device.stats.inFlight < 1; i++) await new Promise((r) => setTimeout(r, 50));
      expect(device.stats.inFlight).toBe(1);
      const reset = await run('sg_reset', ['--device', sg]);
      expect(reset.code, reset.stderr).toBe(0);
      await reading;
      expect(device.stats.taskManagement).toBeGreaterThan(0);
      expect(aborted).toBe(1);
      expect(device.stats.aborted).toBe(1);
      expect(device.stats.inFlight).toBe(0);
      hold = false;
      await run('sg_turs', ['-n', '3', sg]);
      await runOk('sg_dd', [`if=${sg}`, 'of=/dev/null', 'bs=512', 'skip=4242', 'count=1', 'cdbsz=16']);
    } finally {
      await device.close();
    }
  }, 300_000);
});
