#!/usr/bin/env node
// Fuzz @tcmu/scsi decodeCdb: one million random inputs (lengths 0..300, biased towards real opcodes
// and plausible lengths). Prints the count and the time; exits 1 if any input throws or returns a
// malformed result. Usage: node tools/fuzz/decode-million.mjs [count=1000000] [seed=1]
// Needs the build: pnpm --filter @tcmu/scsi build
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('../../packages/scsi/dist/index.js', import.meta.url));
if (!existsSync(dist)) {
  console.error(`decode-million: ${dist} is missing; run: pnpm --filter @tcmu/scsi build`);
  process.exit(2);
}
const { decodeCdb, knownCommands } = await import(dist);

const count = Number(process.argv[2] ?? 1_000_000);
let seed = Number(process.argv[3] ?? 1) >>> 0 || 1;
if (!Number.isInteger(count) || count < 1) {
  console.error('decode-million: count must be a positive integer');
  process.exit(2);
}

// mulberry32: small, fast, deterministic for a given seed.
function random() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n) => Math.floor(random() * n);

const commands = knownCommands();
const buffer = new Uint8Array(300);

function nextInput() {
  const mode = int(10);
  let length;
  let opcode;
  if (mode < 6) {
    // A known command with a plausible length, mostly-zero bytes (reaches the field checks and successes).
    const command = commands[int(commands.length)];
    opcode = command.opcode;
    length = Math.max(0, command.cdbLength + int(5) - 2);
    buffer.fill(0, 0, length);
    const flips = int(4);
    for (let i = 0; i < flips; i++) buffer[1 + int(Math.max(1, length - 1))] = 1 << int(8);
    if (command.serviceAction !== undefined && length > 1 && int(4))
      buffer[1] = command.serviceAction | (buffer[1] & 0xe0);
    if (length > 0) buffer[length - 1] = int(3) ? 0 : buffer[length - 1];
  } else {
    // Anything: random opcode (often 7Fh or a known one), random length 0..300, random bytes.
    length = int(301);
    for (let i = 0; i < length; i++) buffer[i] = int(256);
    opcode = mode === 6 ? 0x7f : mode === 7 ? commands[int(commands.length)].opcode : int(256);
  }
  if (length > 0) buffer[0] = opcode;
  return buffer.subarray(0, length);
}

const tally = { ok: 0, invalidOpcode: 0, invalidField: 0 };
const start = process.hrtime.bigint();
for (let i = 0; i < count; i++) {
  const cdb = nextInput();
  let result;
  try {
    result = decodeCdb(cdb);
  } catch (error) {
    console.error(`decode-million: decodeCdb threw on input #${i}: ${Buffer.from(cdb).toString('hex')}`);
    console.error(error);
    process.exit(1);
  }
  if (result.ok === true) tally.ok++;
  else if (result.ok === false && result.sense?.asc === 0x20) tally.invalidOpcode++;
  else if (result.ok === false && result.sense?.asc === 0x24) tally.invalidField++;
  else {
    console.error(`decode-million: malformed result on input #${i}: ${Buffer.from(cdb).toString('hex')}`);
    console.error(result);
    process.exit(1);
  }
}
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
console.log(
  `decodeCdb: ${count} inputs, 0 throws, ${seconds.toFixed(2)} s (${Math.round(count / seconds)} per second)`,
);
console.log(
  `  decoded ${tally.ok}, 05/20 00 invalid opcode ${tally.invalidOpcode}, 05/24 00 invalid field ${tally.invalidField}`,
);
