// Helpers of the CLI's kernel tests (run inside the kernel lab): the built `tcmu` as child processes,
// and configfs snapshots to prove nothing is left behind. Not part of the published build.
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { cliPath } from '@tcmu/lab';
import { runProgram } from './run-program.js';

export const cli = cliPath;
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

// Shared with other packages' kernel tests (the built CLI as a child process, the guest's RGW).
export {
  must,
  runningServers as running,
  type ServedCli as Server,
  serveCli as serve,
  startGuestRgw,
  stopAllServers,
  stopGuestRgw,
} from '@tcmu/lab';
