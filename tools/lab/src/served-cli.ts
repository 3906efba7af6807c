// The built `tcmu` CLI as a child process, and a Ceph RGW inside the guest: what the kernel tests of
// several packages (cli, backend-s3) share. Tests only; nothing here is published.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built CLI (`pnpm build` first). */
export const cliPath = fileURLToPath(new URL('../../../packages/cli/dist/cli.js', import.meta.url));
const rgwScript = fileURLToPath(new URL('../../s3/rgw', import.meta.url));

/**
 * Runs a program that must succeed (exit 0) and resolves with its stdout; otherwise rejects with an
 * error holding the exit code, stderr and stdout. Default limit 300 s.
 */
export function must(
  file: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMilliseconds?: number } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      [...args],
      {
        ...(options.env ? { env: options.env } : {}),
        timeout: options.timeoutMilliseconds ?? 300_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (!error) return resolve(stdout);
        const code =
          (error as { code?: unknown; signal?: unknown }).code ?? (error as { signal?: unknown }).signal;
        reject(new Error(`${file} ${args.join(' ')} exited ${String(code)}: ${stderr}${stdout}`));
      },
    );
  });
}

/** A running `tcmu serve … --json`, once it printed its ready event. */
export interface ServedCli {
  readonly child: ChildProcess;
  readonly name: string;
  readonly device: string;
  /** The whole ready event (link, window, pid, takenOver…). */
  readonly event: Record<string, unknown>;
  /** stderr so far (log lines and the error line). */
  stderr(): string;
  /** Sends `signal` and resolves with the exit code (or signal name). */
  stop(signal: NodeJS.Signals): Promise<number | string>;
}

/** Servers started by {@link serveCli} that have not exited yet. */
export const runningServers = new Set<ChildProcess>();

/**
 * Starts `tcmu serve <args> --json` (with `env`, default this process's) and resolves at its ready
 * event; rejects with its stderr when it exits first.
 */
export function serveCli(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<ServedCli> {
  const child = spawn(process.execPath, [cliPath, 'serve', ...args, '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  runningServers.add(child);
  let stdout = '';
  let stderr = '';
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      runningServers.delete(child);
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
    exited.then((code) => reject(new Error(`tcmu serve exited (${code}) before ready: ${stderr}${stdout}`)));
  });
}

/** Stops the servers a failed test left behind, properly (SIGTERM; SIGKILL would leave stale devices). */
export async function stopAllServers(): Promise<void> {
  await Promise.all(
    [...runningServers].map(
      (child) =>
        new Promise((resolve) => {
          child.once('exit', resolve);
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 60_000).unref();
        }),
    ),
  );
}

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
