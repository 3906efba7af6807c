// The lease between two real processes on the real RGW: the first writer is frozen (SIGSTOP) past the
// end of its lease, a second process takes the volume over without force and writes; the first is
// thawed (SIGCONT): nothing it does afterwards is acknowledged, and the second's data is intact.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { openS3Backend } from './s3-backend.ts';
import {
  bucket,
  endpoint,
  pattern,
  removeTestVolumes,
  skipReason,
  testPrefix,
} from './test-support/environment.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const chunk = 64 * 1024;
const leaseDuration = 3000;

if (!endpoint) {
  it.skip(`lease between two processes on RGW (skipped: ${skipReason})`, () => {});
} else {
  afterAll(removeTestVolumes);

  it('a writer frozen past its lease is fenced: the second writer takes over, the first is acknowledged nothing after', async () => {
    const prefix = testPrefix('s3safe-lease-sigstop');
    const options = { bucket, endpoint, prefix, chunkSize: chunk, size: 16 * chunk, leaseDuration };
    const writes = [
      { offset: 0, length: 4096, seed: 1 }, // flushed before the freeze
      { offset: 5 * chunk, length: 4096, seed: 2 }, // acknowledged, still dirty at the freeze
    ];
    const child = spawn(
      process.execPath,
      [
        '--no-warnings',
        '--import',
        fileURLToPath(new URL('./test-support/register.mjs', import.meta.url)),
        fileURLToPath(new URL('./test-support/child.ts', import.meta.url)),
        JSON.stringify({ action: 'hold', options: { ...options, writeBackDelay: 600_000 }, writes }),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'], env: process.env },
    );
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const nextLine = async () => JSON.parse(((await lines.next()).value as string) ?? 'null');
    try {
      expect(await nextLine()).toEqual({ ready: true });
      child.kill('SIGSTOP');
      // While its lease is fresh the volume is refused; past its end (by the clock of day) a new
      // writer watches the lease for one duration and then takes it, without --force-lease.
      expect(await openS3Backend(options).catch((e: { code?: string }) => e.code)).toBe(
        'TCMU_ERR_BACKEND_LOCKED',
      );
      await sleep(leaseDuration + 500);
      const events: string[] = [];
      const taker = await openS3Backend({ ...options, onLeaseEvent: (e) => events.push(e.kind) });
      expect(events).toEqual(['waiting-for-expiry', 'taken-over']);
      await taker.write(0, [pattern(10, 4096)]);
      await taker.write(5 * chunk, [pattern(11, 4096)]);
      await taker.flush();

      child.kill('SIGCONT');
      child.stdin!.write('write\n');
      expect(await nextLine()).toMatchObject({ acknowledged: false });
      child.stdin!.write('flush\n');
      expect(await nextLine()).toMatchObject({ acknowledged: false });
      await sleep(1500); // let its timers (write-back, renewal) run: nothing may reach the volume
      child.stdin!.write('flush\n');
      expect(await nextLine()).toEqual({ acknowledged: false, code: 'TCMU_ERR_BACKEND_LOCKED' });
      child.stdin!.end();
      expect(await nextLine()).toEqual({ held: true, closed: 'TCMU_ERR_BACKEND_LOCKED' });

      for (const [offset, seed] of [
        [0, 10],
        [5 * chunk, 11],
      ] as const) {
        const out = new Uint8Array(4096);
        await taker.read(offset, 4096, [out]);
        expect(Buffer.from(out).equals(Buffer.from(pattern(seed, 4096))), `taker's view at ${offset}`).toBe(
          true,
        );
      }
      await taker.close();
      const check = await openS3Backend({ ...options, readOnly: true });
      for (const [offset, seed] of [
        [0, 10],
        [5 * chunk, 11],
      ] as const) {
        const out = new Uint8Array(4096);
        await check.read(offset, 4096, [out]);
        expect(Buffer.from(out).equals(Buffer.from(pattern(seed, 4096))), `stored at ${offset}`).toBe(true);
      }
      await check.close();
    } finally {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
  });
}
