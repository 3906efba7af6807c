// Helpers of the iSCSI kernel tests (iscsi.kernel.test.ts, iscsi-s3.kernel.test.ts): the built CLI as a
// child process, a configfs snapshot, and qemu's libiscsi-based initiator (qemu-io, qemu-img).
import { type ChildProcess, spawn } from 'node:child_process';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { runProgram } from './run-program.js';

export const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
export const TARGET = '/sys/kernel/config/target';
export const SLOW = 600_000;
export const ALLOWED = 'iqn.2026-12.test.tcmu:allowed';
export const STRANGER = 'iqn.2026-12.test.tcmu:stranger';
export const MIB = 1024 * 1024;

/** Every directory and symlink under configfs's target tree, sorted. */
export async function configfsSnapshot(): Promise<string[]> {
  const out: string[] = [];
  async function walk(path: string): Promise<void> {
    for (const entry of await readdir(path).catch(() => [] as string[])) {
      const child = join(path, entry);
      const info = await lstat(child).catch(() => undefined);
      if (info?.isSymbolicLink()) out.push(`${child} ->`);
      else if (info?.isDirectory()) {
        out.push(`${child}/`);
        await walk(child);
      }
    }
  }
  await walk(TARGET);
  return out.sort();
}

export const run = (file: string, args: readonly string[], env?: NodeJS.ProcessEnv) =>
  runProgram(file, args, { timeoutMilliseconds: 300_000, ...(env ? { env } : {}) });

export interface Server {
  readonly ready: { name: string; device: string; iscsi: string; pid: number };
  stderr(): string;
  stop(signal: NodeJS.Signals): Promise<number | string>;
}
export const running = new Set<ChildProcess>();

/** Starts `tcmu serve … --json` and waits for its ready event (which must carry the iSCSI URL). */
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
        resolve({
          ready: JSON.parse(line),
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

/** qemu's iSCSI driver options for a target on 127.0.0.1:3260, LUN 0. */
export function imageOptions(
  iqn: string,
  initiator: string,
  chap?: { user: string; secretId: string },
): string {
  const base = `driver=iscsi,transport=tcp,portal=127.0.0.1:3260,target=${iqn},lun=0,initiator-name=${initiator}`;
  return chap ? `${base},user=${chap.user},password-secret=${chap.secretId}` : base;
}

/** Runs qemu-io commands on the iSCSI LUN; `secretFile` supplies the CHAP secret as a qemu secret object. */
export function qemuIo(
  options: string,
  commands: string[],
  extra: { secretFile?: string; readOnly?: boolean } = {},
) {
  return run('qemu-io', [
    ...(extra.secretFile ? ['--object', `secret,id=chap0,file=${extra.secretFile}`] : []),
    ...(extra.readOnly ? ['-r'] : []),
    '--image-opts',
    options,
    ...commands.flatMap((command) => ['-c', command]),
  ]);
}

/** Reads `length` bytes at `offset` of the local disk, bypassing the page cache. */
export async function readLocal(device: string, offset: number, length: number): Promise<Buffer> {
  const result = await runProgram('dd', [
    `if=${device}`,
    'iflag=direct,skip_bytes,count_bytes',
    `skip=${offset}`,
    `count=${length}`,
    'bs=1M',
    'status=none',
  ]);
  expect(result.exitCode, result.stderr).toBe(0);
  return Buffer.from(result.stdout, 'latin1');
}
