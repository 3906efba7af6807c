#!/usr/bin/env node
// Micro-benchmark of @tcmu/backend's isAllZero and firstDifference against the byte loops they
// replaced, on equal data (the common case: all-zero blocks, matching COMPARE AND WRITE) at 512 B,
// 4 KiB and 1 MiB. Rounds interleaved, medians reported. Needs `pnpm --filter @tcmu/backend build`.
// Options: --json, --seconds N (per measurement, default 1), --rounds N (default 3).
import { firstDifference, isAllZero } from '../../packages/backends/backend/dist/index.js';
import { benchOptions, KiB, MiB, median } from './common.mjs';

const { json, seconds, rounds, log } = benchOptions(process.argv.slice(2));

function byteLoopIsZero(bytes) {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}
function byteLoopDifference(a, b) {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** GB/s of `run()` over `bytes` bytes per call, for `seconds`. */
function measure(run, bytes) {
  let calls = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 64; i++) run();
    calls += 64;
    now = performance.now();
  }
  return (calls * bytes) / ((now - start) * 1e6);
}

const results = {};
for (const size of [512, 4 * KiB, MiB]) {
  const zero = new Uint8Array(size);
  const a = new Uint8Array(size).map((_, i) => i * 7);
  const b = a.slice();
  const cases = {
    isAllZero: () => isAllZero(zero),
    'byte loop (zero)': () => byteLoopIsZero(zero),
    firstDifference: () => firstDifference(a, b),
    'byte loop (difference)': () => byteLoopDifference(a, b),
  };
  const samples = Object.fromEntries(Object.keys(cases).map((name) => [name, []]));
  for (let round = 0; round < rounds; round++)
    for (const [name, run] of Object.entries(cases)) samples[name].push(measure(run, size));
  for (const [name, values] of Object.entries(samples)) {
    const gbps = median(values);
    results[`${name} ${size}`] = gbps;
    log(`${name.padEnd(24)} ${String(size).padStart(8)} B  ${gbps.toFixed(2).padStart(7)} GB/s`);
  }
}
if (json) console.log(JSON.stringify(results));
