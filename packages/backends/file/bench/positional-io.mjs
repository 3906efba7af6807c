// Positional I/O paths compared on this machine: node:fs FileHandle read/readv vs koffi
// pread/preadv (.async on the libuv pool, and synchronous). Prints MiB/s and IOPS per path.
// It binds its own koffi calls (pread/preadv variants @tcmu/libc has no use for): a measurement, not
// library code; koffi is a devDependency for it.
// Usage: node bench/positional-io.mjs [blockBytes=4096] [queueDepth=32] [seconds=2]
// Try UV_THREADPOOL_SIZE=16 or UV_USE_IO_URING=1 to see the pool's effect.
import { randomInt } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import koffi from 'koffi';

const blockBytes = Number(process.argv[2] ?? 4096);
const depth = Number(process.argv[3] ?? 32);
const seconds = Number(process.argv[4] ?? 2); // per path, split over the rounds
const fileSize = 256 * 1024 * 1024;
const views = 8;

const folder = mkdtempSync(join(tmpdir(), 'tcmu-io-bench-'));
const path = join(folder, 'disk.img');
{
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(8 * 1024 * 1024, 0x5a);
  for (let off = 0; off < fileSize; off += chunk.byteLength) writeSync(fd, chunk, 0, chunk.byteLength, off);
  closeSync(fd);
}
const libc = koffi.load('libc.so.6');
const pread = libc.func('int64_t pread(int fd, _Out_ uint8_t *buf, size_t count, int64_t offset)');
const pwrite = libc.func('int64_t pwrite(int fd, const uint8_t *buf, size_t count, int64_t offset)');
koffi.struct('bench_iovec', { base: 'void *', length: 'size_t' });
const preadv = libc.func('int64_t preadv(int fd, const bench_iovec *iov, int count, int64_t offset)');
const preadv2 = libc.func(
  'int64_t preadv2(int fd, const bench_iovec *iov, int count, int64_t offset, int flags)',
);

const handle = await open(path, 'r+');
const fd = handle.fd;
const offsetOf = () => randomInt(fileSize / blockBytes) * blockBytes;
const split = (buffer) => {
  const step = buffer.byteLength / views;
  return Array.from({ length: views }, (_, i) => buffer.subarray(i * step, (i + 1) * step));
};
const promisify =
  (fn) =>
  (...args) =>
    new Promise((resolve, reject) => fn.async(...args, (err, res) => (err ? reject(err) : resolve(res))));
const preadAsync = promisify(pread);
const pwriteAsync = promisify(pwrite);
const preadvAsync = promisify(preadv);

const paths = {
  'fs FileHandle.read': (b) => handle.read(b, 0, b.byteLength, offsetOf()),
  [`fs FileHandle.readv (${views} views)`]: (b) => handle.readv(split(b), offsetOf()),
  'fs FileHandle.write': (b) => handle.write(b, 0, b.byteLength, offsetOf()),
  [`fs FileHandle.writev (${views} views)`]: (b) => handle.writev(split(b), offsetOf()),
  'koffi pread.async': (b) => preadAsync(fd, b, b.byteLength, offsetOf()),
  [`koffi preadv.async (${views} views)`]: (b) =>
    preadvAsync(
      fd,
      split(b).map((v) => ({ base: v, length: v.byteLength })),
      views,
      offsetOf(),
    ),
  'koffi pwrite.async': (b) => pwriteAsync(fd, b, b.byteLength, offsetOf()),
  'preadv2 RWF_NOWAIT sync, miss → fs readv': async (b) => {
    const offset = offsetOf();
    const n = preadv2(fd, [{ base: b, length: b.byteLength }], 1, offset, 8);
    if (n !== b.byteLength) await handle.read(b, 0, b.byteLength, offset);
  },
  'koffi pread sync (blocks the event loop)': async (b) => pread(fd, b, b.byteLength, offsetOf()),
};

console.log(
  `block ${blockBytes} B, queue depth ${depth}, ${seconds} s each, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 4}, UV_USE_IO_URING=${process.env.UV_USE_IO_URING ?? 'unset'}`,
);
// Paths are interleaved round by round and the median round is reported, so load from other
// processes on a shared machine hits every path alike.
const rounds = 5;
const results = Object.fromEntries(Object.keys(paths).map((name) => [name, []]));
for (let round = 0; round < rounds; round++) {
  for (const [name, call] of Object.entries(paths)) {
    let done = 0;
    const end = performance.now() + (seconds * 1000) / rounds;
    const worker = async () => {
      const buffer = Buffer.alloc(blockBytes);
      while (performance.now() < end) {
        await call(buffer);
        done++;
      }
    };
    const start = performance.now();
    await Promise.all(Array.from({ length: depth }, worker));
    results[name].push(done / ((performance.now() - start) / 1000));
  }
}
const reference = 'fs FileHandle.read';
const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
const referenceIops = median([...results[reference]]);
for (const [name, values] of Object.entries(results)) {
  const iops = median(values);
  console.log(
    `${name.padEnd(42)} ${Math.round(iops).toString().padStart(8)} IOPS ${((iops * blockBytes) / 2 ** 20).toFixed(1).padStart(8)} MiB/s  ×${(iops / referenceIops).toFixed(2)} vs ${reference}`,
  );
}
await handle.close();
rmSync(folder, { recursive: true, force: true });
