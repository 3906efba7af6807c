// A separate process for the tests: opens a volume with the package's sources and writes, verifies
// or holds it, printing one JSON line. Request (argv[2], JSON): { action, options, writes? }.
import { openS3Backend, type S3BackendOptions } from '../index.ts';
import { pattern } from './environment.ts';

interface Request {
  action: 'write' | 'verify' | 'open' | 'crash-after-write' | 'kill-after-write';
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
