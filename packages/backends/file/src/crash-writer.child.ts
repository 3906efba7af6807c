// Child process for the crash test: writes numbered 4 KiB records forever, flushing after every
// batch and printing `flushed <count>` once records [0, count) are durable. The parent SIGKILLs it.
import { openFileBackend } from './file-backend';

const [path, sizeText] = process.argv.slice(2);
const size = Number(sizeText);
const recordBytes = 4096;
const batch = 8;

export function record(index: number): Uint8Array {
  const bytes = new Uint8Array(recordBytes);
  const view = new DataView(bytes.buffer);
  let state = (index * 2654435761 + 7) >>> 0 || 1;
  for (let i = 0; i < recordBytes; i += 4) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    view.setUint32(i, state >>> 0);
  }
  view.setUint32(0, index);
  return bytes;
}

if (process.env.TCMU_CRASH_WRITER === '1' && path) {
  const backend = await openFileBackend({ path, size });
  process.stdout.write('ready\n');
  const records = size / recordBytes;
  for (let next = 0; next + batch <= records; next += batch) {
    // A batch of concurrent writes, with the views split to exercise the scatter path.
    await Promise.all(
      Array.from({ length: batch }, (_, i) => {
        const bytes = record(next + i);
        return backend.write((next + i) * recordBytes, [bytes.subarray(0, 1000), bytes.subarray(1000)]);
      }),
    );
    await backend.flush!();
    process.stdout.write(`flushed ${next + batch}\n`);
  }
  process.stdout.write('done\n');
}
