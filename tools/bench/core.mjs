#!/usr/bin/env node
// Benchmark of the whole userspace path on the host: SimulatedKernel (@tcmu/ring/testing) → serveRing
// (@tcmu/core) → the full SBC emulation → the memory backend → completion, with memcpy measured in
// the same run as the reference. Rounds are interleaved (every measurement once per round) and
// medians reported, so machine load hits all alike.
// `pnpm bench:core` builds the packages and runs this; `pnpm bench:core -- --json` prints one JSON object.
// Options: --json, --seconds N (per measurement, default 1), --rounds N (default 3), --jobs a,b,
// --root DIR (the checkout whose built packages are measured; default this one).
import { cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { benchOptions, cdb16, closedLoop, KiB, MiB, measureMemcpy, median } from './common.mjs';

const args = process.argv.slice(2);
// --root DIR measures the built packages of another checkout (a before/after comparison).
const root = args.includes('--root')
  ? resolve(args[args.indexOf('--root') + 1])
  : resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const load = (path) => import(pathToFileURL(resolve(root, path)).href);
const { openMemoryBackend } = await load('packages/backends/memory/dist/index.js');
const core = await load('packages/core/dist/index.js');
const { SimulatedKernel } = await load('packages/ring/dist/testing/index.js');
const { json, seconds, rounds, log } = benchOptions(args);
const diskSize = 64 * MiB;

const targets = { commandsPerSecond4k: 1_000_000, readToMemcpyRatio1m: 0.5 };

// The reference disk image: every 512-byte block starts with its LBA, the rest is a pattern.
const image = Buffer.alloc(diskSize);
for (let i = 0; i < image.length; i += 4) image.writeUInt32LE((i * 2654435761) >>> 0, i);
for (let i = 0; i < image.length; i += 512) image.writeUInt32LE(i / 512, i);

/**
 * Keep `depth` commands of `size` bytes in flight for `duration` seconds: READ(16) (data-in
 * discarded, as an initiator reading into /dev/null: the userspace side is what is measured) or
 * WRITE(16) (the simulated kernel copies data-out into the ring, as the kernel does).
 */
async function measure(kernel, kind, size, depth, duration) {
  const blocks = size / 512;
  const span = diskSize / size;
  const opcode = kind === 'read' ? 0x88 : 0x8a;
  const lbas = Array.from({ length: 1024 }, (_, i) => ((i * 7919) % span) * blocks);
  const cdbs = lbas.map((lba) => cdb16(opcode, lba, blocks));
  // Writes put the image's own bytes back where they belong, so the disk stays verifiable.
  const payloads = lbas.map((lba) => image.subarray(lba * 512, lba * 512 + size));
  const request =
    kind === 'read'
      ? (at) => ({ cdb: cdbs[at], dataInLength: size, discardDataIn: true })
      : (at) => ({ cdb: cdbs[at], dataOut: payloads[at] });
  const { perSecond, perCpuSecond } = await closedLoop(kernel, { depth, duration, request });
  return { perSecond, mibPerSecond: (perSecond * size) / MiB, perCpuSecond };
}

/** Reads back what was written and compares with the image: the bench measures a correct path. */
async function verify(kernel) {
  for (const [lba, size] of [
    [8, 4 * KiB],
    [2048, MiB],
    [diskSize / 512 - 8, 4 * KiB],
  ]) {
    const result = await kernel.submit({ cdb: cdb16(0x88, lba, size / 512), dataInLength: size });
    const expected = image.subarray(lba * 512, lba * 512 + size);
    if (result.status !== 0 || Buffer.compare(Buffer.from(result.dataIn), expected) !== 0)
      throw new Error(`verification failed: ${size} bytes at LBA ${lba} (status ${result.status})`);
  }
}

const backend = await openMemoryBackend({ size: diskSize });
await backend.write(0, [image]);
const kernel = new SimulatedKernel({ commandRingSize: 8 * MiB - 128, dataBlocks: 16384 });
const ring = await kernel.openRing();
// Checkouts from before serveRing(ring, options) took serveRing(ring, backend, options) (--root).
const served = core.emulate
  ? core.serveRing(ring, { backend, name: 'bench' })
  : core.serveRing(ring, backend, { name: 'bench' });
// The first command after power-on gets the POWER ON unit attention, as from a real disk.
for (let i = 0; i < 4 && (await kernel.submit({ cdb: new Uint8Array(6) })).status !== 0; i++);
await verify(kernel);

const allJobs = [
  { name: '4 KiB read', key: 'read4k', kind: 'read', size: 4 * KiB, depth: 128 },
  { name: '4 KiB write', key: 'write4k', kind: 'write', size: 4 * KiB, depth: 128 },
  { name: '1 MiB read', key: 'read1m', kind: 'read', size: MiB, depth: 8 },
  { name: '1 MiB write', key: 'write1m', kind: 'write', size: MiB, depth: 8 },
];
// --jobs read4k,write1m runs a subset (for profiling one path).
const only = args.includes('--jobs') ? args[args.indexOf('--jobs') + 1].split(',') : undefined;
const jobs = only ? allJobs.filter((job) => only.includes(job.key)) : allJobs;

// Warm-up (JIT, page faults in the data area).
measureMemcpy(image, 0.2);
for (const job of jobs) await measure(kernel, job.kind, job.size, job.depth, 0.3);
// Writes wrote the image's own bytes back: the disk still equals the image.
await verify(kernel);

const samples = { memcpy: [] };
for (const job of jobs) samples[job.key] = [];
for (let round = 0; round < rounds; round++) {
  samples.memcpy.push(measureMemcpy(image, seconds));
  for (const job of jobs)
    samples[job.key].push(await measure(kernel, job.kind, job.size, job.depth, seconds));
  log(
    `round ${round + 1}: memcpy ${samples.memcpy.at(-1).toFixed(0)} MiB/s, ` +
      jobs
        .map((job) => {
          const s = samples[job.key].at(-1);
          return `${job.name} ${job.size < MiB ? `${Math.round(s.perSecond)}/s` : `${s.mibPerSecond.toFixed(0)} MiB/s`}`;
        })
        .join(', '),
  );
}
await verify(kernel);
const ringStatistics = { ...ring.statistics };
const deviceStats = { ...served.stats };
await served.close();
await kernel.close();
await backend.close();

const memcpy = median(samples.memcpy);
const results = {};
for (const job of jobs) {
  const list = samples[job.key];
  results[job.key] = {
    job: job.name,
    queueDepth: job.depth,
    commandsPerSecond: Math.round(median(list.map((s) => s.perSecond))),
    mibPerSecond: Math.round(median(list.map((s) => s.mibPerSecond))),
    commandsPerCpuSecond: Math.round(median(list.map((s) => s.perCpuSecond))),
  };
  results[job.key].ofMemcpy = Number((results[job.key].mibPerSecond / memcpy).toFixed(3));
}
const checks = {
  commandsPerSecond4k: results.read4k
    ? results.read4k.commandsPerSecond >= targets.commandsPerSecond4k
    : undefined,
  readToMemcpyRatio1m: results.read1m ? results.read1m.ofMemcpy >= targets.readToMemcpyRatio1m : undefined,
};

const pad = (text, width) => String(text).padEnd(width);
const padStart = (text, width) => String(text).padStart(width);
log('');
log(
  `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}; load average (1 min) at the end ${loadavg()[0].toFixed(2)}; medians of ${rounds} rounds of ${seconds} s`,
);
log(`path: SimulatedKernel → serveRing → SBC emulation → memory backend → completion`);
log('');
log(
  `${pad('job', 14)}${padStart('QD', 4)}${padStart('commands/s', 13)}${padStart('MiB/s', 9)}${padStart('of memcpy', 11)}${padStart('per CPU s', 12)}`,
);
for (const job of jobs) {
  const r = results[job.key];
  log(
    `${pad(job.name, 14)}${padStart(r.queueDepth, 4)}${padStart(r.commandsPerSecond.toLocaleString('en-US'), 13)}` +
      `${padStart(r.mibPerSecond, 9)}${padStart(`${(r.ofMemcpy * 100).toFixed(0)}%`, 11)}${padStart(r.commandsPerCpuSecond.toLocaleString('en-US'), 12)}`,
  );
}
log(
  `${pad('memcpy 1 MiB', 14)}${padStart('', 4)}${padStart('', 13)}${padStart(memcpy.toFixed(0), 9)}${padStart('100%', 11)}`,
);
log('');
log(
  `target ≥ ${targets.commandsPerSecond4k.toLocaleString('en-US')} 4 KiB reads/s: ${checks.commandsPerSecond4k ? 'met' : 'NOT met'}; ` +
    `target 1 MiB reads ≥ ${targets.readToMemcpyRatio1m * 100}% of memcpy: ${checks.readToMemcpyRatio1m ? 'met' : 'NOT met'}`,
);
log(
  `completions per kick ${(ringStatistics.completions / ringStatistics.kicks).toFixed(1)}, wake-ups ${ringStatistics.wakeups}, ` +
    `commands ${deviceStats.completed}, check conditions ${deviceStats.checkCondition}`,
);
if (json)
  console.log(
    JSON.stringify(
      {
        benchmark: 'core',
        date: new Date().toISOString(),
        machine: {
          cpus: cpus().length,
          model: cpus()[0]?.model,
          node: process.version,
          loadAverage: loadavg()[0],
        },
        root,
        rounds,
        seconds,
        memcpyMiBPerSecond: Math.round(memcpy),
        results,
        targets,
        met: checks,
        completionsPerKick: Number((ringStatistics.completions / ringStatistics.kicks).toFixed(1)),
      },
      null,
      2,
    ),
  );
