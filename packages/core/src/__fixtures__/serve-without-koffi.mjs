// Child process of portable.test.ts, run with koffi hidden (no-koffi.mjs): the pure parts of the
// built @tcmu/core (decoding, the emulation over a backend, serveRing) load and serve. The ring is a
// plain in-process one: serveRing takes any ServableRing (the SimulatedKernel of @tcmu/ring/testing
// maps a real memfd through koffi, so it needs koffi). Prints one JSON line.
import { createRequire } from 'node:module';
import { openMemoryBackend } from '@tcmu/backend-memory';
import { serveRing } from '@tcmu/core';
import { buildCdb } from '@tcmu/scsi';

let koffi = 'loadable';
try {
  createRequire(import.meta.url)('koffi');
} catch (error) {
  koffi = error.code;
}

/** A ring in plain memory: submit() hands a command to the server and resolves with its completion. */
function memoryRing() {
  let handlers;
  const pending = new Map();
  let nextId = 1;
  return {
    start: (h) => {
      handlers = h;
    },
    complete: (id, completion) => pending.get(id)?.(completion),
    close: async () => {},
    submit(cdb, data) {
      const id = nextId++;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        handlers.onCommand({ id, cdb, iovecs: [data], dataLength: data.length, bidirectionalIovecs: [] });
      });
    },
  };
}

const backend = await openMemoryBackend({ size: 1 << 20 });
const ring = memoryRing();
const served = serveRing(ring, { backend, powerOnUnitAttention: false });
const cdb = (name) => buildCdb({ name, lba: 3n, transferLength: 1 });
const written = await ring.submit(cdb('WRITE(10)'), new Uint8Array(512).fill(7));
const into = new Uint8Array(512);
const read = await ring.submit(cdb('READ(10)'), into);
await served.close();
console.log(JSON.stringify({ koffi, written: written.status, read: read.status, byte: into[511] }));
