// Crash consistency against the real server: radosgw is restarted while writes and flushes are in flight.
// The restarted radosgw is a second one on the same cluster (tools/s3/rgw spare-start), so the other
// test files, which run in parallel on the main endpoint, never see their server go away.
import { afterAll, expect, it } from 'vitest';
import { openS3Backend } from './s3-backend.ts';
import {
  bucket,
  endpoint,
  pattern,
  removeTestVolumes,
  rgw,
  skipReason,
  spareRgwEndpoint,
  testPrefix,
} from './test-support/environment.ts';

const chunk = 64 * 1024;
const slots = 96;

if (!endpoint) {
  it.skip(`s3 backend survives an RGW restart (skipped: ${skipReason})`, () => {});
} else {
  afterAll(removeTestVolumes);

  it('RGW restarted mid-write: no acknowledged flush is lost', async (context) => {
    const spare = await spareRgwEndpoint();
    if (!spare) {
      return context.skip(
        'the endpoint is not the local RGW of tools/s3/rgw, whose spare radosgw this test restarts',
      );
    }
    const prefix = testPrefix('restart');
    const options = {
      bucket,
      endpoint: spare,
      prefix,
      size: slots * chunk,
      chunkSize: chunk,
      writeBackDelay: 5,
    };
    const backend = await openS3Backend(options);
    // Per slot (one chunk each): the seed made durable by a successful flush, and seeds written since.
    const durable = new Map<number, number>();
    const unflushed: [number, number][] = [];
    const later = new Map<number, number[]>();
    let restarting = true;
    let flushes = 0;
    let failedFlushes = 0;
    let roundsAfterRestart = 0;
    let round = 0;
    const restart = rgw('restart-spare').finally(() => {
      restarting = false;
    });
    while (restarting || roundsAfterRestart++ < 4) {
      await Promise.all(
        Array.from({ length: 8 }, async (_, k) => {
          const slot = (round * 8 + k) % slots;
          const seed = round * 100 + k + 1;
          await backend.write(slot * chunk + 5, [pattern(seed, chunk - 10)]);
          unflushed.push([slot, seed]);
          later.set(slot, [...(later.get(slot) ?? []), seed]);
        }),
      );
      const covered = unflushed.splice(0);
      try {
        await backend.flush();
        flushes++;
        for (const [slot, seed] of covered) {
          durable.set(slot, seed);
          later.set(
            slot,
            (later.get(slot) ?? []).filter((s) => s > seed),
          );
        }
      } catch {
        failedFlushes++;
        unflushed.unshift(...covered);
      }
      round++;
    }
    await restart;
    const stats = backend.stats();
    console.log(
      `restart test: ${round} rounds, ${flushes} flushes acknowledged, ${failedFlushes} failed, ${stats.puts} PUTs, ${stats.retries} retries`,
    );
    // The restart really hit requests in flight (else this test proved nothing).
    expect(stats.retries).toBeGreaterThan(0);
    expect(flushes).toBeGreaterThan(0);

    // Abandon the writer without close (a crash) and look with a fresh reader: every slot holds its
    // durable data or data written after it, never anything older.
    const reader = await openS3Backend({ bucket, endpoint, prefix, readOnly: true });
    const out = new Uint8Array(chunk - 10);
    let checked = 0;
    for (const [slot, seed] of durable) {
      await reader.read(slot * chunk + 5, out.length, [out]);
      const acceptable = [seed, ...(later.get(slot) ?? [])];
      const match = acceptable.find(
        (s) => Buffer.compare(Buffer.from(out), Buffer.from(pattern(s, out.length))) === 0,
      );
      expect(match, `slot ${slot}: acknowledged seed ${seed} lost`).toBeDefined();
      checked++;
    }
    expect(checked).toBe(durable.size);
    await reader.close();
    await backend.close();
  });
}
