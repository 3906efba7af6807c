// Shared by the host benchmarks (core.mjs, ring.mjs): command-line options, units, medians and the
// memcpy reference measured in the same run.
export const KiB = 1024;
export const MiB = 1024 * KiB;

/** --json, --seconds N (per measurement, default 1), --rounds N (default 3); `log` prints unless --json. */
export function benchOptions(args) {
  const json = args.includes('--json');
  const option = (name, fallback) => {
    const at = args.indexOf(name);
    return at >= 0 ? Number(args[at + 1]) : fallback;
  };
  const log = (...parts) => {
    if (!json) console.log(...parts);
  };
  return { json, seconds: option('--seconds', 1), rounds: option('--rounds', 3), log };
}

export const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** memcpy reference: 1 MiB TypedArray copies out of `source` for `duration` seconds; returns MiB/s. */
export function measureMemcpy(source, duration) {
  const target = new Uint8Array(MiB);
  let bytes = 0;
  let offset = 0;
  const start = performance.now();
  const end = start + duration * 1000;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 16; i++) {
      target.set(source.subarray(offset, offset + MiB));
      offset = (offset + 7 * MiB) % source.length;
      bytes += MiB;
    }
    now = performance.now();
  }
  return bytes / MiB / ((now - start) / 1000);
}

/** A READ(16) or WRITE(16) CDB of `blocks` 512-byte blocks at `lba`. */
export function cdb16(opcode, lba, blocks) {
  const cdb = new Uint8Array(16);
  const view = new DataView(cdb.buffer);
  cdb[0] = opcode;
  view.setUint32(6, lba);
  view.setUint32(10, blocks);
  return cdb;
}

/**
 * The initiator of the host benchmarks: keeps `depth` commands in flight on a SimulatedKernel for
 * `duration` seconds. `request(at, slot)` builds the command for position `at` (0-1023, cycling) in
 * initiator slot `slot`. Throws when any command did not answer GOOD. Returns commands per second and
 * per CPU-second of this process.
 */
export async function closedLoop(kernel, { depth, duration, request }) {
  let completed = 0;
  let failures = 0;
  let running = true;
  let next = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  const deadline = start + duration * 1000;
  await new Promise((resolve) => {
    let active = 0;
    const issue = (slot) => {
      active++;
      kernel.submit(request(next++ & 1023, slot)).then((result) => {
        active--;
        if (result.status !== 0) failures++;
        completed++;
        if ((completed & 127) === 0 && performance.now() > deadline) running = false;
        if (running) issue(slot);
        else if (active === 0) resolve();
      });
    };
    for (let slot = 0; slot < depth; slot++) issue(slot);
  });
  const elapsed = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  if (failures > 0) throw new Error(`${failures} of ${completed} commands failed`);
  return {
    completed,
    perSecond: completed / elapsed,
    perCpuSecond: completed / ((used.user + used.system) / 1e6),
  };
}
