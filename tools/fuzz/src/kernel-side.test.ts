// A seeded sample of the kernel-side fuzzer (tools/fuzz/kernel-side.mjs runs one million cases):
// random and mutated real CDBs, random data lengths, fragmented data areas, PAD entries and task
// management through SimulatedKernel into the core over a memory backend, from the sources.
import { fileURLToPath } from 'node:url';
import { openMemoryBackend } from '@tcmu/backend-memory';
import { serveRing } from '@tcmu/core';
import { SimulatedKernel } from '@tcmu/ring/testing';
import { dataTransferLength, decodeCdb } from '@tcmu/scsi';
import { describe, expect, it } from 'vitest';
import { fuzzKernelSide, loadFixtureCdbs, senseProblem } from './kernel-side.mjs';

const fixture = (name: string) =>
  fileURLToPath(new URL(`../../../packages/scsi/src/__fixtures__/${name}`, import.meta.url));
const corpus = loadFixtureCdbs([fixture('linux-captured-cdbs.txt'), fixture('initiator-cdbs.txt')]);

describe('senseProblem (the fuzzer judges sense bytes as an initiator parses them)', () => {
  const fixed = (bytes: number[]) => {
    const out = new Uint8Array(96);
    out.set(bytes);
    return out;
  };
  it('accepts fixed and descriptor sense with a field pointer inside the CDB', () => {
    // 05/24 00, SKSV, C/D, field pointer byte 2 (fixed), as the core sends it.
    expect(
      senseProblem(fixed([0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0xc0, 0, 2]), 10),
    ).toBeUndefined();
    // Descriptor: 05/21 00 with an information descriptor (type 0, length 0Ah).
    expect(
      senseProblem(fixed([0x72, 5, 0x21, 0, 0, 0, 0, 12, 0, 10, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 9]), 16),
    ).toBeUndefined();
  });
  it('rejects what an initiator could not parse', () => {
    expect(senseProblem(fixed([0x70, 0, 5, 0, 0, 0, 0, 4]), 10)).toMatch(/ADDITIONAL SENSE LENGTH/);
    expect(senseProblem(fixed([0x70, 0, 0, 0, 0, 0, 0, 10]), 10)).toMatch(/NO SENSE/);
    expect(
      senseProblem(fixed([0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0xc0, 0, 12]), 10),
    ).toMatch(/field pointer 12/);
    expect(senseProblem(fixed([0x72, 5, 0x24, 0, 0, 0, 0, 4, 2, 6]), 10)).toMatch(
      /longer than the sense data/,
    );
    expect(senseProblem(fixed([0x7e]), 10)).toMatch(/response code/);
    const trailing = fixed([0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24]);
    trailing[40] = 1;
    expect(senseProblem(trailing, 10)).toMatch(/after the sense data/);
  });
});

describe('the kernel side under fuzzing (seeded sample)', () => {
  it('20,000 random and mutated CDBs with TMRs and PADs: no crash, no ring break, only GOOD or well-formed CHECK CONDITION', async () => {
    expect(corpus.length).toBeGreaterThan(100);
    const report = await fuzzKernelSide(
      { SimulatedKernel, serveRing, openMemoryBackend, decodeCdb, dataTransferLength },
      { count: 20_000, seed: 0x5eed, corpus, casesPerSession: 10_000 },
    );
    expect(report.examples).toEqual([]);
    expect(report.cases).toBe(20_000);
    expect(report.crashes).toBe(0);
    expect(report.ringBreaks).toBe(0);
    expect(report.handlerFailures).toBe(0);
    expect(report.badResponses).toBe(0);
    // The sample reaches the interesting paths, not just the rejections.
    expect(report.good).toBeGreaterThan(1000);
    expect(report.checkCondition).toBeGreaterThan(1000);
    expect(report.taskManagement).toBeGreaterThan(10);
    expect(report.pads).toBeGreaterThan(10);
    expect(report.aborted).toBeGreaterThan(0);
  }, 300_000);
});
