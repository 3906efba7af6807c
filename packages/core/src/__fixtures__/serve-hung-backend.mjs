// Child process of hung-backend.kernel.test.ts: serves a disk whose media commands, after SIGUSR1,
// never settle (and whose backend flush/close never settle either), and closes it on SIGTERM the way
// `tcmu serve` does. Prints JSON lines: ready, stats (every 250 ms), closed. Uses the built package.
import { openMemoryBackend } from '@tcmu/backend-memory';
import { emulate, handlerFunction, openDevice } from '@tcmu/core';

const [name, hba, drainTimeoutMs] = process.argv.slice(2);
const never = () => new Promise(() => {});
const memory = await openMemoryBackend({ size: 16 * 1024 * 1024, blockSize: 512 });
let hang = false;
const backend = {
  size: memory.size,
  blockSize: memory.blockSize,
  read: (offset, length, into) => memory.read(offset, length, into),
  write: (offset, data) => memory.write(offset, data),
  flush: () => (hang ? never() : memory.flush()),
  close: () => (hang ? never() : memory.close()),
};
const emulation = emulate(backend);
const handler = handlerFunction((command) =>
  hang && /^(READ|WRITE|SYNCHRONIZE)/.test(command.decoded.name ?? '') ? never() : emulation.handle(command),
);
const warnings = [];
const logger = { warn: (_context, message) => warnings.push(message) };
const device = await openDevice({
  name,
  handler,
  backend,
  hba: Number(hba),
  drainTimeoutMs: Number(drainTimeoutMs),
  logger,
});
const print = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
process.on('SIGUSR1', () => {
  hang = true;
});
process.on('SIGTERM', async () => {
  const started = Date.now();
  await device.close();
  print({ event: 'closed', ms: Date.now() - started, stats: device.stats, warnings });
  process.exit(0);
});
setInterval(() => print({ event: 'stats', stats: device.stats }), 250);
print({ event: 'ready', device: device.devicePath });
