// The kernel-side fuzzer: random and mutated CDBs (mutations of real CDBs from
// packages/scsi/src/__fixtures__) with random data lengths and directions, several commands in flight
// (so the data area fragments and commands get several iovecs), small command rings (PAD entries) and
// task management functions (aborts, LUN resets), sent through SimulatedKernel (@tcmu/ring/testing) to
// the full core (serveRing + the SBC/SPC emulation over a memory backend).
// Judged: no exception escapes, the ring never breaks, no handler fails, every answer is GOOD or a
// well-formed CHECK CONDITION (the sense bytes' format is checked), data-in never exceeds what was
// asked. Used by tools/fuzz/kernel-side.mjs (one million cases, the built packages) and by
// src/kernel-side.test.ts (a seeded sample, the sources).
import { readFileSync } from 'node:fs';

/** mulberry32: small, fast, deterministic for a seed. */
export function createRandom(seed) {
  let state = seed >>> 0 || 1;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  return { next, int, pick: (list) => list[int(list.length)], chance: (p) => next() < p };
}

/** The CDBs of the fixture files (`label | hex | …` lines), de-duplicated. */
export function loadFixtureCdbs(paths) {
  const seen = new Set();
  const out = [];
  for (const path of paths) {
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      if (line.startsWith('#') || !line.includes('|')) continue;
      const hex = line.split('|')[1].trim().replace(/\s+/g, '');
      if (!/^([0-9a-f]{2})+$/i.test(hex) || seen.has(hex)) continue;
      seen.add(hex);
      out.push(Uint8Array.from(Buffer.from(hex, 'hex')));
    }
  }
  return out;
}

/**
 * Checks sense bytes as an initiator parses them (SPC-5 §4.4): fixed (70h/71h) or descriptor
 * (72h/73h) format, a length that fits, a sense key, descriptors that tile the additional length,
 * an ILLEGAL REQUEST field pointer inside the CDB (or the parameter list), zeros after the data.
 * Returns undefined when well formed, else what is wrong.
 */
export function senseProblem(sense, cdbLength) {
  // The kernel always passes a whole CDB of its group's length, so a pointer may name a byte past a
  // shorter fuzzed CDB: the bound is the larger of the two.
  if (sense.length < 8) return `sense of ${sense.length} bytes`;
  const code = sense[0] & 0x7f;
  let end;
  let key;
  let keySpecific;
  if (code === 0x70 || code === 0x71) {
    end = 8 + sense[7];
    if (end < 18) return `fixed sense with ADDITIONAL SENSE LENGTH ${sense[7]} (< 10)`;
    if (end > sense.length) return 'fixed sense longer than the buffer';
    key = sense[2] & 0x0f;
    if (sense[2] & 0x10) return 'fixed sense: reserved bit 4 of byte 2 set';
    keySpecific = sense.subarray(15, 18);
  } else if (code === 0x72 || code === 0x73) {
    end = 8 + sense[7];
    if (end > sense.length) return 'descriptor sense longer than the buffer';
    key = sense[1] & 0x0f;
    if (sense[1] & 0xf0) return 'descriptor sense: reserved bits of byte 1 set';
    let at = 8;
    while (at < end) {
      if (at + 2 > end) return 'descriptor sense: a descriptor header past the end';
      const length = sense[at + 1];
      if (at + 2 + length > end) return `descriptor ${sense[at]} longer than the sense data`;
      if (sense[at] === 0x02) {
        if (length !== 6) return 'sense key specific descriptor of the wrong length';
        keySpecific = sense.subarray(at + 4, at + 7);
      }
      if (sense[at] === 0x00 && length !== 0x0a) return 'information descriptor of the wrong length';
      at += 2 + length;
    }
  } else return `response code ${code.toString(16)}h`;
  if (key === 0) return 'CHECK CONDITION with sense key NO SENSE';
  if (key === 0x0f || key === 0x0c) return `reserved sense key ${key.toString(16)}h`;
  for (let i = end; i < sense.length; i++)
    if (sense[i] !== 0) return `byte ${i} after the sense data is not zero`;
  if (keySpecific && keySpecific[0] & 0x80 && key === 0x05) {
    const commandData = (keySpecific[0] & 0x40) !== 0;
    const field = (keySpecific[1] << 8) | keySpecific[2];
    if (commandData && field >= cdbLength) return `field pointer ${field} outside the ${cdbLength}-byte CDB`;
    if (!commandData && field >= 0x10000) return 'impossible parameter list pointer';
    if (keySpecific[0] & 0x30) return 'reserved bits of the field pointer set';
  }
  return undefined;
}

/** Opcodes the core serves, to aim random CDBs at (and a few it does not). */
const opcodes = [
  0x00, 0x03, 0x04, 0x08, 0x0a, 0x12, 0x15, 0x1a, 0x1b, 0x1e, 0x25, 0x28, 0x2a, 0x2e, 0x2f, 0x35, 0x41, 0x42,
  0x55, 0x5a, 0x5e, 0x5f, 0x7f, 0x88, 0x89, 0x8a, 0x8e, 0x8f, 0x91, 0x93, 0x9e, 0xa0, 0xa3, 0xa8, 0xaa, 0xc0,
  0xff,
];
const taskManagementNames = [
  'abort-task',
  'abort-task-set',
  'clear-aca',
  'clear-task-set',
  'lun-reset',
  'target-warm-reset',
  'target-cold-reset',
  'lun-reset-pro',
];
const interesting = [0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff, 0x10, 0x20, 0x40, 0x08];

/** The CDB length the kernel would use for this opcode (SPC-5 §4.2.5.1; 7Fh: byte 7 + 8). */
function groupLength(cdb) {
  const group = cdb[0] >> 5;
  if (cdb[0] === 0x7f) return 8 + (cdb[7] ?? 0);
  return [6, 10, 10, 0, 16, 12, 0, 0][group];
}

/** Field offsets (LBA, length) by CDB group, for aiming at the device's real range. */
function fieldsOf(cdb) {
  const group = cdb[0] >> 5;
  if (group === 0) return { lba: [1, 3], length: [4, 1] };
  if (group === 1 || group === 2) return { lba: [2, 4], length: [7, 2] };
  if (group === 4) return { lba: [2, 8], length: [10, 4] };
  if (group === 5) return { lba: [2, 4], length: [6, 4] };
  return undefined;
}

function writeField(cdb, [at, size], value) {
  let v = BigInt(value);
  for (let i = at + size - 1; i >= at && i < cdb.length; i--) {
    cdb[i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

/**
 * Runs `count` cases. `modules`: { SimulatedKernel, serveRing, openMemoryBackend, decodeCdb,
 * dataTransferLength } (from the sources in the test, the builds in the CLI). `onProgress(report)`
 * is called every `progressEvery` cases. Resolves with the counts; never rejects for a finding
 * (findings are counted and the first few kept in `examples`).
 */
export async function fuzzKernelSide(modules, options) {
  const { SimulatedKernel, serveRing, openMemoryBackend, decodeCdb, dataTransferLength } = modules;
  const { count, seed = 1, corpus, onProgress, progressEvery = 100_000 } = options;
  const warmUp = options.warmUp ?? Math.min(50_000, Math.floor(count / 10));
  const casesPerSession = options.casesPerSession ?? 50_000;
  const random = createRandom(seed);
  const report = {
    cases: 0,
    sessions: 0,
    good: 0,
    checkCondition: 0,
    aborted: 0,
    abortedWhileQueued: 0,
    taskManagement: 0,
    pads: 0,
    mutated: 0,
    randomCdbs: 0,
    crashes: 0,
    ringBreaks: 0,
    handlerFailures: 0,
    badResponses: 0,
    senseKeys: {},
    rssAfterWarmUp: 0,
    rssAtEnd: 0,
    examples: [],
  };
  const finding = (kind, detail) => {
    if (report.examples.length < 10) report.examples.push({ kind, ...detail });
  };
  const hex = (bytes) => Buffer.from(bytes).toString('hex');

  // Exceptions that escape the core (an unhandled rejection, an uncaught error) are crashes.
  const onEscape = (error) => {
    report.crashes++;
    finding('crash', { error: String(error?.stack ?? error) });
  };
  process.on('unhandledRejection', onEscape);
  process.on('uncaughtException', onEscape);

  const blockSizes = [512, 4096];
  try {
    let done = 0;
    while (done < count) {
      // One session: a fresh kernel (a random ring size, so PAD entries come often) and device.
      const blockSize = random.pick(blockSizes);
      const size = 4 * 1024 * 1024;
      const kernel = new SimulatedKernel({
        commandRingSize: random.pick([4096, 8192, 65536, 1024 * 1024 - 128]),
        dataBlocks: random.pick([64, 256, 2048]),
        poisonDataIn: 0xa5,
      });
      let broken = false;
      kernel.onBroken((error) => {
        broken = true;
        report.ringBreaks++;
        finding('ring break', { error: String(error) });
      });
      const ring = await kernel.openRing();
      const backend = await openMemoryBackend({ size, blockSize, pageSize: 4096 });
      const served = serveRing(ring, { backend, name: 'fuzz', powerOnUnitAttention: false });
      const blocks = size / blockSize;
      // At most 64 data blocks per command: its entry (≤ 64 iovecs) always fits the smallest ring.
      const maxData = Math.min(kernel.dataBlocks * kernel.dataBlockSize, 2 * 64 * kernel.dataBlockSize);
      report.sessions++;
      // Every page of the memory disk allocated once, so the RSS after warm-up includes the data.
      const chunkBlocks = Math.min(blocks, maxData / 2 / blockSize);
      for (let lba = 0; lba < blocks; lba += chunkBlocks) {
        const cdb = new Uint8Array(10);
        cdb[0] = 0x2a;
        writeField(cdb, [2, 4], lba);
        writeField(cdb, [7, 2], chunkBlocks);
        await kernel.submit({ cdb, dataOut: new Uint8Array(chunkBlocks * blockSize).fill(0x5a) });
      }

      const inFlight = new Set();
      let needStart = false;
      const sessionCases = Math.min(casesPerSession, count - done);
      const depth = random.pick([1, 4, 16, 64]);
      for (let i = 0; i < sessionCases && !broken; i++) {
        const cdb = nextCdb(random, corpus, blocks, report);
        const request = { cdb };
        // Data: the length the CDB implies (reaches the success paths) or anything else.
        let length = 0;
        let direction = 'none';
        const decoded = decodeCdb(cdb);
        if (decoded.ok) {
          direction = decoded.direction;
          const implied = dataTransferLength(decoded, blockSize);
          if (implied !== undefined) length = implied;
        }
        const roll = random.int(10);
        if (roll === 0) length = random.int(70_000);
        else if (roll === 1) length = random.int(4) * blockSize + random.int(3) - 1;
        else if (roll === 2) direction = random.pick(['none', 'in', 'out', 'both']);
        length = Math.max(0, Math.min(length, maxData / 2 - 4096));
        if (direction === 'out' || direction === 'both') {
          const data = new Uint8Array(length);
          // Content: sparse random bytes, the pattern the disk was filled with, or zeros.
          const content = random.int(4);
          if (content < 2) for (let k = 0; k < length; k += 1 + random.int(64)) data[k] = random.int(256);
          else if (content === 2) data.fill(0x5a);
          request.dataOut = data;
        }
        if (direction === 'in' || direction === 'both')
          request.dataInLength = direction === 'both' ? random.int(4096) : length;
        const dataInLength = request.dataInLength ?? 0;
        const cdbCopy = Uint8Array.from(cdb);
        const pending = kernel
          .submit(request)
          .then(
            (result) => {
              report.cases++;
              if (result.aborted) {
                report.aborted++;
                return;
              }
              if (result.status === 0x00) {
                report.good++;
                if (result.readLength > dataInLength) {
                  report.badResponses++;
                  finding('data-in overrun', {
                    cdb: hex(cdbCopy),
                    readLength: result.readLength,
                    dataInLength,
                  });
                }
              } else if (result.status === 0x02) {
                report.checkCondition++;
                const problem = senseProblem(result.sense, Math.max(cdbCopy.length, groupLength(cdbCopy)));
                if (problem) {
                  report.badResponses++;
                  finding('malformed sense', {
                    cdb: hex(cdbCopy),
                    problem,
                    sense: hex(result.sense.subarray(0, 32)),
                  });
                } else {
                  const code = result.sense[0] & 0x7f;
                  const key = code >= 0x72 ? result.sense[1] & 0x0f : result.sense[2] & 0x0f;
                  const asc = code >= 0x72 ? result.sense[2] : result.sense[12];
                  const ascq = code >= 0x72 ? result.sense[3] : result.sense[13];
                  const name = [key, asc, ascq].map((n) => n.toString(16).padStart(2, '0')).join('/');
                  report.senseKeys[name] = (report.senseKeys[name] ?? 0) + 1;
                  if (name === '02/04/02') needStart = true;
                }
              } else {
                report.badResponses++;
                finding('status', { cdb: hex(cdbCopy), status: result.status });
              }
            },
            (error) => {
              report.cases++;
              if (error?.code === 'TCMU_ERR_RING_ABORTED') report.abortedWhileQueued++;
              else if (error?.code === 'TCMU_ERR_RING_BROKEN') {
                if (!broken) {
                  report.ringBreaks++;
                  finding('ring break', { cdb: hex(cdbCopy), error: String(error) });
                }
              } else {
                report.crashes++;
                finding('submit rejected', { cdb: hex(cdbCopy), error: String(error) });
              }
            },
          )
          .finally(() => inFlight.delete(pending));
        inFlight.add(pending);
        // Task management now and then, against what is in the ring at that moment.
        if (random.chance(0.003)) {
          const inRing = kernel.commandsInRing();
          const which = random.chance(0.3) ? 'all' : inRing.filter(() => random.chance(0.5));
          kernel.taskManagement(random.pick(taskManagementNames), which);
          report.taskManagement++;
        }
        if (inFlight.size >= depth) await Promise.race(inFlight);
        // Keep the device usable: a START UNIT undoes a random STOP (02/04 02 seen).
        if (needStart) {
          needStart = false;
          await Promise.all(inFlight);
          await kernel.submit({ cdb: Uint8Array.from([0x1b, 0, 0, 0, 1, 0]) }).catch(() => {});
        }
        const total = done + i + 1;
        if (total === warmUp) {
          await Promise.all(inFlight);
          globalThis.gc?.();
          report.rssAfterWarmUp = process.memoryUsage().rss;
        }
        if (onProgress && total % progressEvery === 0) onProgress(report);
      }
      await Promise.all(inFlight);
      report.pads += kernel.statistics.pads;
      report.handlerFailures += served.stats.handlerFailures;
      if (served.stats.handlerFailures > 0)
        finding('handler failure', { count: served.stats.handlerFailures });
      await served.close();
      await kernel.close();
      if (backend.close) await backend.close();
      done += sessionCases;
    }
  } finally {
    process.off('unhandledRejection', onEscape);
    process.off('uncaughtException', onEscape);
  }
  globalThis.gc?.();
  report.rssAtEnd = process.memoryUsage().rss;
  return report;
}

/** One CDB: a mutated fixture CDB (most of the time), a fresh random one, or a known opcode. */
function nextCdb(random, corpus, blocks, report) {
  const mode = random.int(10);
  let cdb;
  if (mode < 7) {
    report.mutated++;
    const base = random.pick(corpus);
    cdb = Uint8Array.from(base);
    // Length: mostly kept; sometimes cut or extended (short CDBs, trailing bytes).
    const shape = random.int(20);
    if (shape === 0) cdb = cdb.subarray(0, 1 + random.int(cdb.length));
    else if (shape === 1) {
      const longer = new Uint8Array(Math.min(260, cdb.length + 1 + random.int(20)));
      longer.set(cdb);
      cdb = longer;
    }
    const fields = fieldsOf(cdb);
    if (fields && random.chance(0.5)) {
      // Aim at the device: an LBA near the start or the end, a small length (or 0, or the maximum).
      const lba = random.chance(0.5) ? random.int(blocks) : blocks - 1 - random.int(4) + random.int(3);
      writeField(cdb, fields.lba, Math.max(0, lba) & (cdb.length <= 6 ? 0x1fffff : 0x7fffffff));
      writeField(cdb, fields.length, random.pick([0, 1, 2, 8, random.int(64), random.int(300), 0xffff]));
    }
    const flips = random.int(4);
    for (let k = 0; k < flips; k++) {
      const at = 1 + random.int(Math.max(1, cdb.length - 1));
      if (at >= cdb.length) continue;
      if (random.chance(0.5)) cdb[at] ^= 1 << random.int(8);
      else cdb[at] = random.pick(interesting);
    }
    if (random.chance(0.02)) cdb[0] = random.int(256);
  } else if (mode < 9) {
    report.randomCdbs++;
    const opcode = random.pick(opcodes);
    const group = opcode >> 5;
    const length = random.chance(0.9) ? [6, 10, 10, 16, 16, 12, 16, 16][group] : 1 + random.int(32);
    cdb = new Uint8Array(length);
    for (let k = 1; k < length; k++) if (random.chance(0.3)) cdb[k] = random.int(256);
    cdb[0] = opcode;
  } else {
    report.randomCdbs++;
    cdb = new Uint8Array(1 + random.int(random.chance(0.9) ? 32 : 260));
    for (let k = 0; k < cdb.length; k++) cdb[k] = random.int(256);
  }
  return cdb;
}
