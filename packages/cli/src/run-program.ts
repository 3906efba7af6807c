import { spawn } from 'node:child_process';

/** What a finished program left behind. */
export interface ProgramResult {
  /** Exit status, or null when a signal ended it. */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time in milliseconds. */
  readonly milliseconds: number;
}

export interface RunProgramOptions {
  /** Kill the program (SIGKILL) after this many milliseconds; no limit when undefined. */
  readonly timeoutMilliseconds?: number;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Written to the program's stdin, which is then closed. */
  readonly input?: string | Uint8Array;
}

/**
 * Runs a program asynchronously and collects its output. Never blocks the event loop: a process that
 * serves a disk must keep answering the kernel while mkfs or mount run against that disk.
 * Rejects only when the program cannot be started (e.g. ENOENT); a non-zero exit is a normal result.
 */
export function runProgram(
  file: string,
  args: readonly string[],
  options: RunProgramOptions = {},
): Promise<ProgramResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    if (options.input !== undefined) child.stdin?.end(options.input);
    const timer =
      options.timeoutMilliseconds === undefined
        ? undefined
        : setTimeout(() => child.kill('SIGKILL'), options.timeoutMilliseconds);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({
        exitCode,
        signal,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        milliseconds: performance.now() - started,
      });
    });
  });
}

/** The last non-empty line of a program's output, for one-line error messages. */
export function lastLine(text: string): string {
  return (
    text
      .split('\n')
      .map((line) => line.trim())
      .filter(Boolean)
      .at(-1) ?? ''
  );
}
