// Helpers of the CLI's kernel tests (run inside the kernel lab): the built `tcmu` as child processes,
// and configfs snapshots to prove nothing is left behind. Not part of the published build.
import { type ChildProcess, spawn } from 'node:child_process';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runProgram } from './run-program.js';

export const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
export const TARGET = '/sys/kernel/config/target';
/** Per-test limit: everything is emulated (TCG) in the lab, 10-20x slower than native. */
export const SLOW = 600_000;

/** Every directory and symlink under configfs's target tree (attribute files left out), sorted. */
export async function configfsSnapshot(): Promise<string[]> {
  const out: string[] = [];
  async function walk(path: string): Promise<void> {
    const entries = await readdir(path).catch(() => [] as string[]);
    for (const entry of entries) {
      const child = join(path, entry);
      const info = await lstat(child).catch(() => undefined);
      if (!info) continue; // removed while walking
      if (info.isSymbolicLink()) out.push(`${child} ->`);
      else if (info.isDirectory()) {
        out.push(`${child}/`);
        await walk(child);
      }
    }
  }
  await walk(TARGET);
  return out.sort();
}

/** Runs the CLI to completion. */
export function tcmu(args: readonly string[], options: { user?: number } = {}) {
  const command = options.user === undefined ? process.execPath : 'setpriv';
  const prefix =
    options.user === undefined
      ? []
      : [`--reuid=${options.user}`, `--regid=${options.user}`, '--clear-groups', process.execPath];
  return runProgram(command, [...prefix, cli, ...args], { timeoutMilliseconds: 300_000 });
}

/** Runs a program that must succeed (default limit 300 s); returns its stdout. */
export async function must(
  file: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMilliseconds?: number } = {},
): Promise<string> {
  const result = await runProgram(file, args, {
    timeoutMilliseconds: options.timeoutMilliseconds ?? 300_000,
    ...(options.env ? { env: options.env } : {}),
  });
  if (result.exitCode !== 0) {
    throw new Error(
      `${file} ${args.join(' ')} exited ${result.exitCode ?? result.signal}: ${result.stderr}${result.stdout}`,
    );
  }
  return result.stdout;
}

export interface Server {
  readonly child: ChildProcess;
  readonly name: string;
  readonly device: string;
  /** The whole ready event (link, metrics, pid…). */
  readonly event: Record<string, unknown>;
  /** stderr so far (pino logs and the error line). */
  stderr(): string;
  /** Sends `signal` and resolves with the exit code (or signal name). */
  stop(signal: NodeJS.Signals): Promise<number | string>;
}

export const running = new Set<ChildProcess>();

/** Starts `tcmu serve … --json` (with `env`, default this process's) and waits for its ready event. */
export function serve(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<Server> {
  const child = spawn(process.execPath, [cli, 'serve', ...args, '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  running.add(child);
  let stdout = '';
  let stderr = '';
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const line = stdout.split('\n').find((l) => l.includes('"event":"ready"'));
      if (line) {
        const event = JSON.parse(line) as { name: string; device: string };
        resolve({
          child,
          name: event.name,
          device: event.device,
          event,
          stderr: () => stderr,
          stop: (signal) => {
            child.kill(signal);
            return exited;
          },
        });
      }
    });
    exited.then((code) => reject(new Error(`tcmu serve exited (${code}) before ready: ${stderr}`)));
  });
}

/** Stops servers a failed test left behind, properly (SIGKILL would leave stale devices). */
export async function stopAllServers(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise((resolve) => {
          child.once('exit', resolve);
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 60_000).unref();
        }),
    ),
  );
}

const rgwScript = fileURLToPath(new URL('../../../tools/s3/rgw', import.meta.url));
/** The guest's own RGW data folder: never the host's (its pid files mean nothing in the guest). */
const rgwEnv = () => ({ ...process.env, TCMU_RGW_DIR: '/tmp/tcmu-rgw-lab' });

/**
 * Starts a Ceph RGW inside the lab's guest (tools/s3/rgw, idempotent) and resolves with this
 * process's environment plus the endpoint, bucket and test keys (`TCMU_S3_ENDPOINT`,
 * `TCMU_S3_BUCKET`, `AWS_*`) for `tcmu serve s3://…`.
 */
export async function startGuestRgw(): Promise<NodeJS.ProcessEnv> {
  await must(rgwScript, ['start'], { env: rgwEnv(), timeoutMilliseconds: 900_000 });
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const line of (await must(rgwScript, ['env'], { env: rgwEnv() })).split('\n')) {
    const match = /^export (\w+)=(.*)$/.exec(line.trim());
    if (match) env[match[1]!] = match[2]!;
  }
  return env;
}

/** Stops the guest's RGW and removes its data (errors ignored: cleanup). */
export async function stopGuestRgw(): Promise<void> {
  await must(rgwScript, ['stop'], { env: rgwEnv(), timeoutMilliseconds: 180_000 }).catch(() => {});
}
