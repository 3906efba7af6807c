/**
 * Helpers for kernel tests (`*.kernel.test.ts`): tests that need the real TCMU kernel path, which only
 * the kernel lab (`tools/lab/run`) provides on development and CI machines.
 *
 * Outside the lab a kernel test must skip visibly, with the reason in its title; inside it must run
 * for real. `describeKernel` does both.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe } from 'vitest';

/** Where the target stack lives once configfs is mounted and target_core_mod is loaded. */
export const TARGET_CONFIGFS = '/sys/kernel/config/target';

/** What the skip decision looks at. Injected in unit tests; `systemProbe` reads the real machine. */
export interface KernelProbe {
  /** True when the process runs as root (uid 0): configfs writes need it. */
  isRoot(): boolean;
  /** True when `/sys/kernel/config/target` exists (configfs mounted, target_core_mod loaded). */
  hasTargetConfigfs(): boolean;
  /** True when `target_core_user` is loaded (its module folder exists in sysfs). */
  hasTargetCoreUser(): boolean;
}

/** The probe of the running machine. */
export const systemProbe: KernelProbe = {
  isRoot: () => process.getuid?.() === 0,
  hasTargetConfigfs: () => existsSync(TARGET_CONFIGFS),
  hasTargetCoreUser: () => existsSync('/sys/module/target_core_user'),
};

const LAB_HINT = 'run in the kernel lab (tools/lab/run)';

/**
 * Why kernel tests cannot run here, or `undefined` when they can (root, configfs target/ present,
 * target_core_user loaded). The reason is one short sentence ending with how to get a kernel that has it.
 */
export function kernelSkipReason(probe: KernelProbe = systemProbe): string | undefined {
  if (!probe.hasTargetConfigfs())
    return `needs a kernel with target_core_user (no ${TARGET_CONFIGFS}): ${LAB_HINT}`;
  if (!probe.hasTargetCoreUser()) return `needs the target_core_user module loaded: ${LAB_HINT}`;
  if (!probe.isRoot()) return `needs root to write configfs: ${LAB_HINT}`;
  return undefined;
}

/** True inside the kernel lab's guest (tools/lab/run sets TCMU_LAB=1). */
export function isInsideLab(environment: NodeJS.ProcessEnv = process.env): boolean {
  return environment.TCMU_LAB === '1';
}

/**
 * `describe` for kernel tests: runs `body` when the kernel path is available, otherwise registers the
 * suite as skipped with the reason in its title, e.g.
 * `configfs by hand [skipped: needs a kernel with target_core_user (…): run in the kernel lab (tools/lab/run)]`.
 *
 * Vitest runs a skipped suite's body too (to list its tests): touch the kernel only inside hooks
 * (`beforeAll`…) and tests, never directly in `body`.
 */
export function describeKernel(name: string, body: () => void, probe: KernelProbe = systemProbe): void {
  const reason = kernelSkipReason(probe);
  if (reason === undefined) describe(name, body);
  else describe.skip(`${name} [skipped: ${reason}]`, body);
}

/** A block device whose middle fails every I/O with EIO, for tests of how errors reach the initiator. */
export interface ErrorDevice {
  /** `/dev/mapper/<name>`: 8 MiB; bytes [2 MiB, 3 MiB) (sectors 4096-6143) fail, the rest is a loop device. */
  readonly path: string;
  /** Removes the mapping and detaches the loop device (idempotent; also after a failed create). */
  remove(): void;
}

/**
 * Creates an {@link ErrorDevice} named `name` (a device-mapper table: linear over a loop device on a
 * file in `folder`, with an `error` target in the middle). Needs root, the loop and dm_mod modules
 * and dmsetup: the lab has them.
 */
export function createErrorDevice(folder: string, name: string): ErrorDevice {
  const sh = (command: string, ...args: string[]) => execFileSync(command, args, { encoding: 'utf8' }).trim();
  let loop = '';
  let mapped = false;
  const remove = () => {
    if (mapped) sh('dmsetup', 'remove', '--noudevsync', name);
    mapped = false;
    if (loop) sh('losetup', '--detach', loop);
    loop = '';
  };
  try {
    sh('modprobe', 'loop');
    sh('modprobe', 'dm_mod');
    const backing = join(folder, `${name}.img`);
    sh('truncate', '-s', String(8 * 1024 * 1024), backing);
    loop = sh('losetup', '--find', '--show', backing);
    const table = `0 4096 linear ${loop} 0\n4096 2048 error\n6144 10240 linear ${loop} 6144\n`;
    execFileSync('dmsetup', ['create', '--noudevsync', name], { input: table });
    mapped = true;
    sh('dmsetup', 'mknodes', name);
  } catch (error) {
    remove();
    throw error;
  }
  return { path: `/dev/mapper/${name}`, remove };
}

export {
  cliPath,
  must,
  runningServers,
  type ServedCli,
  serveCli,
  startGuestRgw,
  stopAllServers,
  stopGuestRgw,
} from './served-cli';
