// Shared by the kernel tests: running the system's tools without blocking the event loop (the ring
// is served by this same process: a synchronous child would deadlock it). Not exported.
import { execFile } from 'node:child_process';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program asynchronously; never throws (a failure is a non-zero `code`). */
export function run(
  file: string,
  args: readonly string[],
  options: { timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Runs a program and fails with its output when it exits non-zero. */
export async function runOk(file: string, args: readonly string[], options: { timeoutMs?: number } = {}) {
  const result = await run(file, args, options);
  if (result.code !== 0)
    throw new Error(`${file} ${args.join(' ')} exited ${result.code}\n${result.stdout}\n${result.stderr}`);
  return result;
}

/** A unique-enough device name for this test process. */
export function testName(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
}

/**
 * An HBA number for this test process (6000-8999, away from the ranges other packages' kernel tests
 * use), `offset` 0..9 apart per test so each can check that its own HBA is removed afterwards.
 */
export function testHba(offset: number): number {
  return 6000 + (process.pid % 300) * 10 + offset;
}
