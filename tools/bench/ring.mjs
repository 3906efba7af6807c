#!/usr/bin/env node
// Benchmark of @tcmu/ring through the simulated kernel with a memory handler, against memcpy
// measured in the same run (rounds interleaved, medians reported, so machine load hits all alike).
// `pnpm bench:ring` builds the package and runs this; `pnpm bench:ring -- --json` prints one JSON object.
// Options: --json, --seconds N (per measurement, default 1), --rounds N (default 3).
import { loadavg } from 'node:os';
import { scatterCopyFrom } from '../../packages/backends/backend/dist/index.js';
import { SimulatedKernel } from '../../packages/ring/dist/testing/index.js';
import { benchOptions, cdb16, closedLoop, KiB, MiB, measureMemcpy, median } from './common.mjs';

const args = process.argv.slice(2);
const { json, seconds, rounds, log } = benchOptions(args);

// The memory disk both the handler and the memcpy reference copy from.
const disk = Buffer.alloc(64 * MiB);
for (let i = 0; i < disk.length; i += 512) disk.writeUInt32LE(i / 512, i);

/** A ring over a simulated kernel, served by a memory handler: READ(16) copies from `disk`. */
async function serve() {
  const kernel = new SimulatedKernel({ commandRingSize: 8 * MiB - 128, dataBlocks: 16384 });
  const ring = await kernel.openRing();
  ring.start({
    onCommand(command) {
      const cdb = command.cdb;
      // READ(16): the bench keeps the LBA below 2^32 (bytes 6..9).
      const offset = (((cdb[6] << 24) | (cdb[7] << 16) | (cdb[8] << 8) | cdb[9]) >>> 0) * 512;
      scatterCopyFrom(command.iovecs, 0, disk.subarray(offset, offset + command.dataLength));
      ring.complete(command.id, { status: 0 });
    },
    onError(error) {
      console.error(error.code, error.message);
    },
  });
  return { kernel, ring };
}

const readCdb = (lba, blocks) => cdb16(0x88, lba, blocks);

/**
 * Keep `depth` READs of `size` bytes in flight for `duration` seconds, each initiator slot reading
 * into its own buffer (or discarding data-in). Returns { perSecond, perCpuSecond }.
 */
async function readLoop(kernel, size, depth, duration, discardDataIn) {
  const blocks = size / 512;
  const span = disk.length / size;
  const cdbs = Array.from({ length: 1024 }, (_, i) => readCdb(((i * 7919) % span) * blocks, blocks));
  const buffers = Array.from({ length: depth }, () => new Uint8Array(size));
  const request = (at, slot) => ({
    cdb: cdbs[at],
    dataInLength: size,
    dataInto: buffers[slot],
    discardDataIn,
  });
  const { perSecond, perCpuSecond } = await closedLoop(kernel, { depth, duration, request });
  return { perSecond, perCpuSecond };
}

async function verify(kernel) {
  for (const [lba, size] of [
    [8, 4 * KiB],
    [2048, MiB],
  ]) {
    const result = await kernel.submit({ cdb: readCdb(lba, size / 512), dataInLength: size });
    if (
      result.status !== 0 ||
      Buffer.compare(result.dataIn, disk.subarray(lba * 512, lba * 512 + size)) !== 0
    )
      throw new Error(`verification failed: ${size} bytes at LBA ${lba}`);
  }
}

const { kernel, ring } = await serve();
await verify(kernel);
// Warm-up (JIT, page faults in the data area).
measureMemcpy(disk, 0.2);
await readLoop(kernel, 4 * KiB, 256, 0.5, false);
await readLoop(kernel, MiB, 8, 0.3, true);

const samples = { memcpy: [], small: [], smallCpu: [], large: [], largeWithCopy: [] };
for (let round = 0; round < rounds; round++) {
  samples.memcpy.push(measureMemcpy(disk, seconds));
  const small = await readLoop(kernel, 4 * KiB, 256, seconds, false);
  samples.small.push(small.perSecond);
  samples.smallCpu.push(small.perCpuSecond);
  samples.large.push((await readLoop(kernel, MiB, 8, seconds, true)).perSecond);
  samples.largeWithCopy.push((await readLoop(kernel, MiB, 8, seconds, false)).perSecond);
  log(
    `round ${round + 1}: memcpy ${samples.memcpy.at(-1).toFixed(0)} MiB/s, 4 KiB ${Math.round(samples.small.at(-1))}/s, ` +
      `1 MiB ${samples.large.at(-1).toFixed(0)} MiB/s (with copy-out ${samples.largeWithCopy.at(-1).toFixed(0)})`,
  );
}
const statistics = { ...ring.statistics };
await ring.close();
await kernel.close();

const memcpyMiBPerSecond = median(samples.memcpy);
const commandsPerSecond4k = median(samples.small);
const commandsPerCpuSecond4k = median(samples.smallCpu);
const readMiBPerSecond1m = median(samples.large);
const readWithCopyOutMiBPerSecond1m = median(samples.largeWithCopy);
const ratio = readMiBPerSecond1m / memcpyMiBPerSecond;
log('');
log(
  `machine load average (1 min) at the end: ${loadavg()[0].toFixed(2)}; medians of ${rounds} rounds of ${seconds} s`,
);
log(`memcpy (same copy as the handler, 1 MiB):   ${memcpyMiBPerSecond.toFixed(0)} MiB/s`);
log(
  `4 KiB READ, queue depth 256:               ${Math.round(commandsPerSecond4k).toLocaleString('en-US')} commands/s ` +
    `(${Math.round(commandsPerCpuSecond4k).toLocaleString('en-US')} per CPU-second; target 300,000: ` +
    `${commandsPerSecond4k >= 300_000 ? 'met' : 'NOT met'})`,
);
log(
  `1 MiB READ, queue depth 8:                 ${readMiBPerSecond1m.toFixed(0)} MiB/s = ${(ratio * 100).toFixed(0)}% of memcpy ` +
    `(target 50%: ${ratio >= 0.5 ? 'met' : 'NOT met'}; handler copy + ring; the initiator discards data-in)`,
);
log(
  `1 MiB READ with the simulated kernel's copy-out: ${readWithCopyOutMiBPerSecond1m.toFixed(0)} MiB/s = ` +
    `${((readWithCopyOutMiBPerSecond1m / memcpyMiBPerSecond) * 100).toFixed(0)}% of memcpy (two copies per byte)`,
);
log(
  `completions per kick: ${(statistics.completions / statistics.kicks).toFixed(1)}, wake-ups: ${statistics.wakeups}`,
);
if (json)
  console.log(
    JSON.stringify({
      commandsPerSecond4k: Math.round(commandsPerSecond4k),
      readMiBPerSecond1m: Math.round(readMiBPerSecond1m),
      memcpyMiBPerSecond: Math.round(memcpyMiBPerSecond),
      readToMemcpyRatio: Number(ratio.toFixed(3)),
      commandsPerCpuSecond4k: Math.round(commandsPerCpuSecond4k),
      readWithCopyOutMiBPerSecond1m: Math.round(readWithCopyOutMiBPerSecond1m),
      completionsPerKick: Number((statistics.completions / statistics.kicks).toFixed(1)),
      loadAverage: Number(loadavg()[0].toFixed(2)),
      rounds,
      seconds,
    }),
  );
