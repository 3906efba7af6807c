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
