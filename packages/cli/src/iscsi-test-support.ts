// Helpers of the iSCSI kernel tests (iscsi.kernel.test.ts, iscsi-s3.kernel.test.ts): the built CLI as a
// child process, a configfs snapshot, and qemu's libiscsi-based initiator (qemu-io, qemu-img).
import { expect } from 'vitest';
import { serve as serveCli } from './kernel-test-support.js';
import { runProgram } from './run-program.js';

export { cli, configfsSnapshot, running, SLOW, TARGET } from './kernel-test-support.js';
export const ALLOWED = 'iqn.2026-12.test.tcmu:allowed';
export const STRANGER = 'iqn.2026-12.test.tcmu:stranger';
export const MIB = 1024 * 1024;

export const run = (file: string, args: readonly string[], env?: NodeJS.ProcessEnv) =>
  runProgram(file, args, { timeoutMilliseconds: 300_000, ...(env ? { env } : {}) });

export interface Server {
  readonly ready: { name: string; device: string; iscsi: string; pid: number };
  stderr(): string;
  stop(signal: NodeJS.Signals): Promise<number | string>;
}

/** Starts `tcmu serve … --json` and waits for its ready event (which must carry the iSCSI URL). */
export async function serve(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<Server> {
  const server = await serveCli(args, env);
  return { ready: server.event as Server['ready'], stderr: server.stderr, stop: server.stop };
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
