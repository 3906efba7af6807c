// A separate process for the tests: opens a volume with the package's sources and writes, verifies
// or holds it, printing one JSON line. Request (argv[2], JSON): { action, options, writes? }.
import { openS3Backend, type S3BackendOptions } from '../index.ts';
import { pattern } from './environment.ts';

interface Request {
  action: 'write' | 'verify' | 'open' | 'crash-after-write' | 'kill-after-write' | 'hold';
  options: S3BackendOptions;
  writes?: { offset: number; length: number; seed: number }[];
}

const request = JSON.parse(process.argv[2] ?? '{}') as Request;

async function main(): Promise<unknown> {
  let backend: Awaited<ReturnType<typeof openS3Backend>>;
  try {
    backend = await openS3Backend(request.options);
  } catch (error) {
    const e = error as { code?: string; message?: string };
    return { opened: false, code: e.code, message: e.message };
  }
  if (request.action === 'hold') {
    // The lease test's first writer: writes (the first write flushed, the rest left dirty), says
    // "ready", then on each stdin line ("write" or "flush") tries once more and prints the outcome.
    const [first, ...rest] = request.writes ?? [];
    if (first) {
      await backend.write(first.offset, [pattern(first.seed, first.length)]);
      await backend.flush();
    }
    for (const w of rest) await backend.write(w.offset, [pattern(w.seed, w.length)]);
    process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
    const { createInterface } = await import('node:readline');
    for await (const line of createInterface({ input: process.stdin })) {
      const outcome = async (operation: () => Promise<void>) =>
        operation().then(
          () => ({ acknowledged: true }),
          (error: { code?: string }) => ({ acknowledged: false, code: error.code }),
        );
      if (line === 'write')
        process.stdout.write(
          `${JSON.stringify(await outcome(() => backend.write(0, [pattern(99, 4096)])))}\n`,
        );
      else if (line === 'flush')
        process.stdout.write(`${JSON.stringify(await outcome(() => backend.flush()))}\n`);
      else break;
    }
    const closed = await backend.close().then(
      () => 'closed',
      (error: { code?: string }) => error.code,
    );
    return { held: true, closed };
  }
  if (request.action === 'open') {
    await backend.close();
    return { opened: true };
  }
  if (request.action === 'kill-after-write') {
    // Acknowledged writes, no flush, then SIGKILL: what only a crash-safe cache file can save.
    for (const w of request.writes ?? []) await backend.write(w.offset, [pattern(w.seed, w.length)]);
    process.stdout.write(
      `${JSON.stringify({ acknowledged: request.writes?.length ?? 0, stats: backend.stats() })}\n`,
    );
    process.kill(process.pid, 'SIGKILL');
  }
  if (request.action === 'write' || request.action === 'crash-after-write') {
    for (const w of request.writes ?? []) await backend.write(w.offset, [pattern(w.seed, w.length)]);
    await backend.flush();
    if (request.action === 'crash-after-write') process.exit(0); // no close: the lease stays behind
    await backend.close();
    return { opened: true, written: request.writes?.length ?? 0 };
  }
  const mismatches: number[] = [];
  for (const w of request.writes ?? []) {
    const out = new Uint8Array(w.length);
    await backend.read(w.offset, w.length, [out]);
    if (Buffer.compare(Buffer.from(out), Buffer.from(pattern(w.seed, w.length))) !== 0)
      mismatches.push(w.offset);
  }
  const stats = backend.stats();
  await backend.close();
  return { opened: true, mismatches, gets: stats.gets };
}

main().then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`);
  },
  (error) => {
    const e = error as { code?: string; message?: string };
    process.stdout.write(`${JSON.stringify({ failed: true, code: e.code, message: e.message })}\n`);
    process.exitCode = 1;
  },
);
