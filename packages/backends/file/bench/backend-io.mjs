// The file backend end to end (built dist): 4 KiB random reads and writes at queue depth 32 through
// the Backend contract, with the page-cache fast path on and off, rounds interleaved, median shown.
// Usage: pnpm build && node bench/backend-io.mjs [seconds=3]
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFileBackend } from '../dist/index.js';

const seconds = Number(process.argv[2] ?? 3);
const size = 256 * 1024 * 1024;
const block = 4096;
const depth = 32;
const folder = mkdtempSync(join(tmpdir(), 'tcmu-backend-bench-'));
const path = join(folder, 'disk.img');
{
  const backend = await openFileBackend({ path, size });
  const chunk = new Uint8Array(8 * 1024 * 1024).fill(0x5a);
  for (let offset = 0; offset < size; offset += chunk.byteLength) await backend.write(offset, [chunk]);
  await backend.close();
}
const offsetOf = () => randomInt(size / block) * block;
const configurations = {
  'read, cachedReads on (default)': {
    options: { cachedReads: true },
    call: (b, buf) => b.read(offsetOf(), block, [buf]),
  },
  'read, cachedReads off (thread pool only)': {
    options: { cachedReads: false },
    call: (b, buf) => b.read(offsetOf(), block, [buf]),
  },
  write: { options: {}, call: (b, buf) => b.write(offsetOf(), [buf]) },
  'read, O_DIRECT (every read is a device read)': {
    options: { direct: true },
    call: (b, buf) => b.read(offsetOf(), block, [buf]),
  },
};
const rounds = 3;
const results = Object.fromEntries(Object.keys(configurations).map((name) => [name, []]));
for (let round = 0; round < rounds; round++) {
  for (const [name, { options, call }] of Object.entries(configurations)) {
    const backend = await openFileBackend({ path, ...options });
    let done = 0;
    const end = performance.now() + (seconds * 1000) / rounds;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: depth }, async () => {
        const buffer = new Uint8Array(block);
        while (performance.now() < end) {
          await call(backend, buffer);
          done++;
        }
      }),
    );
    results[name].push(done / ((performance.now() - start) / 1000));
    await backend.close();
  }
}
const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
const reference = median([...results['read, cachedReads off (thread pool only)']]);
console.log(
  `file backend, ${block} B random I/O, queue depth ${depth}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 4}`,
);
for (const [name, values] of Object.entries(results)) {
  const iops = median(values);
  console.log(
    `${name.padEnd(46)} ${Math.round(iops).toString().padStart(8)} IOPS  ×${(iops / reference).toFixed(2)} vs thread-pool reads`,
  );
}
rmSync(folder, { recursive: true, force: true });
