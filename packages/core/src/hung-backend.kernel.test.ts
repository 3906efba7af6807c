// A backend whose calls never settle, served to the real kernel (inside the kernel lab): the SCSI
// layer's timeout handling reaches the handler as task management (TMR), the process stays
// responsive, and close() (what `tcmu serve` runs on SIGTERM) is bounded by the drain timeout and
// leaves nothing in configfs.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { openMemoryBackend } from '@tcmu/backend-memory';
import { describeKernel } from '@tcmu/lab';
import { expect, it } from 'vitest';
import { createEmulation } from './emulation/handler';
import { testHba, testName } from './kernel-support';
import { openDevice } from './open-device';
import { handlerFunction } from './types';

const core = '/sys/kernel/config/target/core';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeKernel('a backend whose calls never settle, in the kernel', () => {
  it('timeouts reach the handler as TMR, the process stays responsive, close() is bounded and leaves configfs clean', async () => {
    const backend = await openMemoryBackend({ size: 16 * 1024 * 1024, blockSize: 512 });
    const emulation = createEmulation();
    let hang = false;
    const hungSignals: AbortSignal[] = [];
    const handler = handlerFunction((command) => {
      const media = /^(READ|WRITE|SYNCHRONIZE)/.test(command.decoded.name ?? '');
      if (hang && media) {
        hungSignals.push(command.signal);
        return new Promise(() => {}); // never settles, ignores its signal
      }
      return emulation.handle(command);
    });
    const drainTimeoutMs = 5000;
    const hba = testHba(7);
    const device = await openDevice({ name: testName('hung'), handler, backend, hba, drainTimeoutMs });
    let gap = 0;
    let last = Date.now();
    const heartbeat = setInterval(() => {
      gap = Math.max(gap, Date.now() - last);
      last = Date.now();
    }, 50);
    let dd: ReturnType<typeof spawn> | undefined;
    try {
      const block = device.devicePath.slice('/dev/'.length);
      // The SCSI layer gives up on a command after 4 s (default 30) and starts its error handling:
      // ABORT TASK, then LUN reset, which tcm_loop turns into TMRs.
      await writeFile(`/sys/block/${block}/device/timeout`, '4');
      hang = true;
      const started = Date.now();
      dd = spawn('dd', ['if=/dev/zero', `of=${device.devicePath}`, 'bs=4k', 'count=1', 'oflag=direct'], {
        stdio: 'ignore',
      });
      const ddExit = new Promise<number | string>((resolve) =>
        dd!.once('exit', (c, s) => resolve(c ?? s ?? '?')),
      );
      while (device.stats.taskManagement === 0 && Date.now() - started < 120_000) await sleep(100);
      const tmrAfter = Date.now() - started;
      expect(device.stats.taskManagement, 'a TMR reached the core').toBeGreaterThan(0);
      expect(hungSignals.length).toBeGreaterThan(0);
      expect(hungSignals[0]!.aborted, "the hung command's signal was aborted").toBe(true);

      const closeStarted = Date.now();
      await device.close();
      const closeMs = Date.now() - closeStarted;
      const ddResult = await Promise.race([ddExit, sleep(60_000).then(() => 'still running')]);
      console.log(
        `hung backend: first TMR ${tmrAfter} ms after the write was issued; close() took ${closeMs} ms ` +
          `(drainTimeoutMs ${drainTimeoutMs}); longest event-loop gap ${gap} ms; dd exit ${ddResult}; ` +
          `stats ${JSON.stringify(device.stats)}`,
      );
      // Bounded: the drain timeout, then the kernel removes the disk (generous for TCG on a shared host).
      expect(closeMs).toBeLessThan(drainTimeoutMs + 60_000);
      expect(ddResult, 'the writer got an error instead of hanging').not.toBe(0);
      expect(ddResult).not.toBe('still running');
      expect(gap, 'the event loop kept running').toBeLessThan(5000);
      expect(existsSync(`${core}/user_${hba}`)).toBe(false);
    } finally {
      clearInterval(heartbeat);
      hang = false;
      dd?.kill('SIGKILL');
      await device.close();
    }
  }, 600_000);
});
