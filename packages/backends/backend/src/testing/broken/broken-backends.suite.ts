// Deliberately broken backends, run by conformance-catches-bugs.test.ts in a child vitest: each must
// fail the conformance test named in its suite name. Not picked up by the normal test run.
import type { Backend } from '../../backend';
import { firstDifference } from '../../bytes';
import { scatterConcat, scatterLength } from '../../scatter';
import { runBackendConformance } from '../conformance';
import { createReferenceBackend } from '../reference-backend';

const broken = (name: string, change: (backend: Backend & Record<string, unknown>) => void) =>
  runBackendConformance({
    name,
    size: 4 * 1024 * 1024,
    largeIoLength: 1024 * 1024,
    open: async (size) => {
      const backend = createReferenceBackend(size) as Backend & Record<string, unknown>;
      change(backend);
      return backend;
    },
  });

broken('sync-read-answers-stale-bytes', (backend) => {
  // A fast path that answers from somewhere else than read does (here: always zeros).
  backend.tryReadSync = (offset: number, length: number, into: readonly Uint8Array[]) => {
    if (offset < 0 || offset + length > backend.size) return false;
    for (const view of into) view.fill(0);
    return true;
  };
});
broken('unmap-does-nothing', (backend) => {
  backend.unmap = async () => {};
});
broken('past-end-zero-fills', (backend) => {
  const read = backend.read.bind(backend);
  backend.read = async (offset, length, into) => {
    if (offset + length > backend.size) {
      for (const view of into) view.fill(0);
      return;
    }
    return read(offset, length, into);
  };
});
broken('compare-and-write-not-atomic', (backend) => {
  const read = backend.read.bind(backend);
  const write = backend.write.bind(backend);
  backend.compareAndWrite = async (offset, expected, data) => {
    const length = scatterLength(data);
    const current = new Uint8Array(length);
    await read(offset, length, [current]);
    await new Promise((resolve) => setTimeout(resolve, 1));
    const index = firstDifference(current, scatterConcat(expected));
    if (index >= 0)
      throw Object.assign(new Error('miscompare'), { code: 'TCMU_ERR_BACKEND_MISCOMPARE', offset: index });
    await write(offset, data);
  };
});
broken('flush-is-not-a-function', (backend) => {
  backend.flush = true as unknown as Backend['flush'];
});
broken('unwritten-reads-leave-garbage', (backend) => {
  const read = backend.read.bind(backend);
  backend.read = async (offset, length, into) => {
    await read(offset, length, into);
    if (into[0] && into[0].byteLength > 0 && into[0][0] === 0) into[0][0] = 0xa5;
  };
});
broken('short-read-is-silent', (backend) => {
  const read = backend.read.bind(backend);
  backend.read = async (offset, length, into) => {
    if (length > 4096) return read(offset, length - 1, into);
    return read(offset, length, into);
  };
});
broken('compare-and-write-ignores-last-byte', (backend) => {
  const compareAndWrite = backend.compareAndWrite!.bind(backend);
  const read = backend.read.bind(backend);
  backend.compareAndWrite = async (offset, expected, data) => {
    // Patch the expected last byte to what is stored: a mismatch there goes unnoticed.
    const length = data.reduce((n, v) => n + v.byteLength, 0);
    const stored = new Uint8Array(1);
    await read(offset + length - 1, 1, [stored]);
    const flat = new Uint8Array(length);
    let p = 0;
    for (const v of expected) {
      flat.set(v, p);
      p += v.byteLength;
    }
    flat[length - 1] = stored[0]!;
    return compareAndWrite(offset, [flat], data);
  };
});
