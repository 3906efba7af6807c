// A backend whose calls never settle, served to the real kernel (inside the kernel lab): the SCSI
// layer's timeout handling reaches the handler as task management (TMR), the process stays
// responsive, and close() (what `tcmu serve` runs on SIGTERM) is bounded by the drain timeout and
// leaves nothing in configfs.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { openMemoryBackend } from '@tcmu/backend-memory';
import { describeKernel } from '@tcmu/lab';
import { expect, it } from 'vitest';
import { emulate } from './emulation/handler';
import { testHba, testName } from './kernel-support';
import { openDevice } from './open-device';
import { handlerFunction } from './types';

const core = '/sys/kernel/config/target/core';
const child = fileURLToPath(new URL('./__fixtures__/serve-hung-backend.mjs', import.meta.url));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeKernel('a backend whose calls never settle, in the kernel', () => {
  it('timeouts reach the handler as TMR, the process stays responsive, close() is bounded and leaves configfs clean', async () => {
    const backend = await openMemoryBackend({ size: 16 * 1024 * 1024, blockSize: 512 });
    const emulation = emulate(backend);
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
  it('SIGTERM to a process serving a hung backend (commands, flush and close never settle) exits 0 within the bound', async () => {
    const drainTimeoutMs = 5000;
    const hba = testHba(7);
    const server = spawn(
      process.execPath,
      [child, testName('sigterm'), String(hba), String(drainTimeoutMs)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const events: Array<Record<string, unknown>> = [];
    let buffered = '';
    server.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) if (line.trim()) events.push(JSON.parse(line) as Record<string, unknown>);
    });
    const exited = new Promise<number | string>((resolve) =>
      server.once('exit', (code, signal) => resolve(code ?? signal ?? '?')),
    );
    let dd: ReturnType<typeof spawn> | undefined;
    try {
      const waitFor = async (test: (event: Record<string, unknown>) => boolean, ms: number) => {
        const until = Date.now() + ms;
        while (!events.some(test) && Date.now() < until) await sleep(100);
        return events.find(test);
      };
      const ready = await waitFor((e) => e.event === 'ready', 180_000);
      expect(ready, 'the child came up').toBeDefined();
      const devicePath = ready!.device as string;
      await writeFile(`/sys/block/${devicePath.slice('/dev/'.length)}/device/timeout`, '4');
      server.kill('SIGUSR1');
      await sleep(200);
      dd = spawn('dd', ['if=/dev/zero', `of=${devicePath}`, 'bs=4k', 'count=1', 'oflag=direct'], {
        stdio: 'ignore',
      });
      const tmr = await waitFor(
        (e) => e.event === 'stats' && ((e.stats as { taskManagement: number }).taskManagement ?? 0) > 0,
        120_000,
      );
      expect(tmr, 'a TMR reached the child').toBeDefined();
      const started = Date.now();
      server.kill('SIGTERM');
      const code = await Promise.race([exited, sleep(180_000).then(() => 'still running')]);
      const elapsed = Date.now() - started;
      const closed = events.find((e) => e.event === 'closed');
      console.log(
        `SIGTERM with a hung backend: exit ${code} after ${elapsed} ms (close() ${closed?.ms} ms, drainTimeoutMs ${drainTimeoutMs}); warnings ${JSON.stringify(closed?.warnings)}`,
      );
      expect(code).toBe(0);
      // Bound: the drain timeout, the kernel's removal, then at most the drain timeout for the backend.
      expect(elapsed).toBeLessThan(2 * drainTimeoutMs + 60_000);
      expect(closed?.warnings).toContainEqual(expect.stringContaining('did not flush and close'));
      expect(existsSync(`${core}/user_${hba}`)).toBe(false);
    } finally {
      dd?.kill('SIGKILL');
      server.kill('SIGKILL');
    }
  }, 600_000);
});
