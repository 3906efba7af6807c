#!/usr/bin/env node
// Fuzz the kernel side of the core: random and mutated CDBs, random data lengths and iovec layouts,
// PAD entries and task management through SimulatedKernel into serveRing + the emulation over a
// memory backend (see src/kernel-side.mjs). Prints the counts; exits 1 on any crash, ring break,
// handler failure or malformed response, or when the RSS at the end is more than 10% above the RSS
// after warm-up. Usage: node --expose-gc tools/fuzz/kernel-side.mjs [count=1000000] [seed=1]
// (`pnpm fuzz:kernel` builds first). Needs the builds of @tcmu/scsi, ring, core and backend-memory.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fuzzKernelSide, loadFixtureCdbs } from './src/kernel-side.mjs';

const at = (path) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const builds = {
  scsi: at('packages/scsi/dist/index.js'),
  testing: at('packages/ring/dist/testing/index.js'),
  core: at('packages/core/dist/index.js'),
  memory: at('packages/backends/memory/dist/index.js'),
};
for (const path of Object.values(builds)) {
  if (!existsSync(path)) {
    console.error(`kernel-side fuzz: ${path} is missing; run: pnpm build`);
    process.exit(2);
  }
}
const count = Number(process.argv[2] ?? 1_000_000);
const seed = Number(process.argv[3] ?? 1);
if (!Number.isInteger(count) || count < 1 || !Number.isInteger(seed)) {
  console.error('kernel-side fuzz: usage: kernel-side.mjs [count=1000000] [seed=1]');
  process.exit(2);
}
if (!globalThis.gc) console.error('kernel-side fuzz: run node with --expose-gc for a stable RSS comparison');

const { decodeCdb, dataTransferLength } = await import(builds.scsi);
const { SimulatedKernel } = await import(builds.testing);
const { serveRing } = await import(builds.core);
const { openMemoryBackend } = await import(builds.memory);
const corpus = loadFixtureCdbs([
  at('packages/scsi/src/__fixtures__/linux-captured-cdbs.txt'),
  at('packages/scsi/src/__fixtures__/initiator-cdbs.txt'),
]);

const started = performance.now();
const mib = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const report = await fuzzKernelSide(
  { SimulatedKernel, serveRing, openMemoryBackend, decodeCdb, dataTransferLength },
  {
    count,
    seed,
    corpus,
    onProgress: (r) =>
      console.error(
        `  ${r.cases} cases, ${((performance.now() - started) / 1000).toFixed(0)} s, RSS ${mib(process.memoryUsage().rss)}`,
      ),
  },
);
const seconds = (performance.now() - started) / 1000;
const growth = report.rssAfterWarmUp ? report.rssAtEnd / report.rssAfterWarmUp - 1 : 0;
const top = Object.entries(report.senseKeys)
  .sort((a, b) => b[1] - a[1])
  .slice(0, 8)
  .map(([k, n]) => `${k} ×${n}`)
  .join(', ');
console.log(`kernel-side fuzz: ${report.cases} cases (seed ${seed}) in ${seconds.toFixed(1)} s, ${report.sessions} sessions, corpus ${corpus.length} real CDBs
  inputs: ${report.mutated} mutated real CDBs, ${report.randomCdbs} random CDBs, ${report.taskManagement} task management functions, ${report.pads} PAD entries
  answers: ${report.good} GOOD, ${report.checkCondition} CHECK CONDITION (well-formed sense), ${report.aborted} aborted by TMR in the ring, ${report.abortedWhileQueued} aborted while queued
  most frequent sense: ${top}
  crashes ${report.crashes}, ring breaks ${report.ringBreaks}, handler failures ${report.handlerFailures}, malformed answers ${report.badResponses}
  RSS after warm-up ${mib(report.rssAfterWarmUp)}, at the end ${mib(report.rssAtEnd)} (${(growth * 100).toFixed(1)}%)`);
for (const example of report.examples) console.log('  finding:', JSON.stringify(example));
const failed =
  report.crashes + report.ringBreaks + report.handlerFailures + report.badResponses > 0 ||
  report.cases !== count ||
  growth > 0.1;
process.exit(failed ? 1 : 0);
