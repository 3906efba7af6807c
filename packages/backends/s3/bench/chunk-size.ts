// Measures the backend against the configured S3 server for several chunk sizes, to choose the default.
// Run: eval "$(tools/s3/rgw env)" && pnpm --filter @tcmu/backend-s3 bench [total MiB, default 64]
// Prints one line per chunk size: sequential write+flush, cold sequential read, cold random 4 KiB
// reads (queue depth 1 and 16) and random 4 KiB writes + flush (read-modify-write of whole chunks).
import { randomBytes } from 'node:crypto';
import { deleteS3Volume, openS3Backend } from '../src/index.ts';

const endpoint = process.env.TCMU_S3_ENDPOINT;
const bucket = process.env.TCMU_S3_BUCKET ?? 'tcmu-test';
if (!endpoint) {
  console.error('TCMU_S3_ENDPOINT is not set: tools/s3/rgw start && eval "$(tools/s3/rgw env)"');
  process.exit(2);
}
const MiB = 1024 * 1024;
const total = Number(process.argv[2] ?? 64) * MiB;
const chunkSizes = [64 * 1024, 256 * 1024, MiB, 4 * MiB];
const run = randomBytes(3).toString('hex');

function lcg(seed: number) {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

async function timed(body: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await body();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function parallel(count: number, depth: number, task: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: depth }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

console.log(`S3 backend chunk-size benchmark: ${total / MiB} MiB volume data, endpoint ${endpoint}`);
console.log(
  'chunk     seq-write MB/s  seq-read MB/s  rand-4K-read IOPS qd1/qd16  rand-4K-write+flush IOPS qd16',
);
for (const chunkSize of chunkSizes) {
  const prefix = `tcmu-bench/${run}/chunk-${chunkSize}/`;
  const location = { bucket, endpoint, prefix };
  const data = randomBytes(MiB);
  const writer = await openS3Backend({ ...location, size: total, chunkSize });
  const seqWrite = await timed(async () => {
    await parallel(total / MiB, 8, (i) => writer.write(i * MiB, [data]));
    await writer.flush();
  });
  await writer.close();

  const reader = await openS3Backend({ ...location, readOnly: true });
  const buffer = new Uint8Array(256 * 1024);
  const seqRead = await timed(async () => {
    for (let offset = 0; offset < total; offset += buffer.length)
      await reader.read(offset, buffer.length, [buffer]);
  });
  await reader.close();

  const randomRead = async (depth: number, count: number) => {
    const cold = await openS3Backend({ ...location, readOnly: true, readAhead: 0 });
    const random = lcg(depth);
    const seconds = await timed(() =>
      parallel(count, depth, async () => {
        const offset = Math.floor((random() * total) / 4096) * 4096;
        await cold.read(offset, 4096, [new Uint8Array(4096)]);
      }),
    );
    await cold.close();
    return count / seconds;
  };
  const qd1 = await randomRead(1, 100);
  const qd16 = await randomRead(16, 300);

  const rw = await openS3Backend({ ...location, readAhead: 0 });
  const random = lcg(7);
  const small = randomBytes(4096);
  const writes = 300;
  const randomWrite = await timed(async () => {
    await parallel(writes, 16, async () => {
      const offset = Math.floor((random() * total) / 4096) * 4096;
      await rw.write(offset, [small]);
    });
    await rw.flush();
  });
  await rw.close();
  await deleteS3Volume({ ...location, force: true });

  const label = `${chunkSize / 1024} KiB`.padEnd(10);
  console.log(
    `${label}${(total / MiB / seqWrite).toFixed(1).padStart(14)}${(total / MiB / seqRead).toFixed(1).padStart(15)}` +
      `${qd1.toFixed(0).padStart(18)} / ${qd16.toFixed(0).padEnd(6)}${(writes / randomWrite).toFixed(0).padStart(24)}`,
  );
}
