import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import * as fs from 'node:fs/promises';
import { joinNetlinkGroup, type NetlinkMembership } from './netlink';

export type { NetlinkMembership } from './netlink';

/** What `kind()` reports for a path (from lstat: a symlink is reported as a symlink, not followed). */
export type PathKind = 'file' | 'directory' | 'symlink' | 'other';

/** The outcome of running a helper program (modprobe, mount). */
export interface CommandResult {
  /** Exit status; non-zero on failure, -1 when the program could not be started. */
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Every operation this package performs on configfs, sysfs, /dev and helper programs goes through
 * this interface. The default ({@link nodeSystem}) uses node:fs and node:child_process; tests pass the
 * fake kernel's from `@tcmu/configfs/testing`, which performs the same operations on a temporary folder
 * and simulates what the kernel would do.
 *
 * Contract for every member: async, never blocks the event loop (the kernel may need this process to
 * serve its command ring while a `symlink`/`unlink` in configfs is in progress), rejects with the
 * Node system error (`code` = errno) on failure, performs exactly one system call where one is named.
 * Calls may run concurrently; the package serialises its own structural changes.
 */
export interface SystemAccess {
  /** mkdir(2) of one directory (not recursive). EEXIST if it exists. */
  mkdir(path: string): Promise<void>;
  /** rmdir(2). In configfs this also removes the kernel's default groups. */
  rmdir(path: string): Promise<void>;
  /** Opens write-only (no O_CREAT, no O_TRUNC: ENOENT if the attribute does not exist) and performs exactly ONE write(2) of `text` (configfs parses per write). */
  writeFile(path: string, text: string): Promise<void>;
  /** Reads the whole file as UTF-8. */
  readFile(path: string): Promise<string>;
  /** Names in a directory, without `.` and `..`. */
  readdir(path: string): Promise<string[]>;
  /** readlink(2). */
  readlink(path: string): Promise<string>;
  /** symlink(2): creates `path` pointing at `target`. */
  symlink(target: string, path: string): Promise<void>;
  /** unlink(2) of a file, symlink or device node. */
  unlink(path: string): Promise<void>;
  /** lstat(2) reduced to a kind, or undefined when the path does not exist. */
  kind(path: string): Promise<PathKind | undefined>;
  /** mknod(2): creates a block or character device node with mode 0660. */
  makeDeviceNode(path: string, type: 'block' | 'character', major: number, minor: number): Promise<void>;
  /** Runs a program (no shell) and reports its outcome; never rejects. */
  run(command: string, args: readonly string[]): Promise<CommandResult>;
  /**
   * Optional: joins generic netlink `family`'s multicast group `group` (e.g. TCM-USER/config) and
   * holds the membership until `close()`. Resolves undefined when it cannot (family not registered,
   * no permission, no native support); never rejects. The real one uses koffi, loaded on first call.
   */
  joinNetlinkGroup?(family: string, group: string): Promise<NetlinkMembership | undefined>;
}

function runProgram(command: string, args: readonly string[]): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(command, [...args], { encoding: 'utf8', timeout: 120_000 }, (error, stdout, stderr) => {
      if (error) {
        const status = (error as { code?: unknown }).code;
        resolve({
          exitCode: typeof status === 'number' ? status : -1,
          stdout: String(stdout ?? ''),
          stderr: String(stderr ?? '') || error.message,
        });
        return;
      }
      resolve({ exitCode: 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** The real system: node:fs/promises and node:child_process. */
export const nodeSystem: SystemAccess = {
  async mkdir(path) {
    await fs.mkdir(path);
  },
  async rmdir(path) {
    await fs.rmdir(path);
  },
  async writeFile(path, text) {
    // O_WRONLY without O_CREAT: never create a file where the kernel has no attribute.
    const handle = await fs.open(path, constants.O_WRONLY);
    try {
      const data = Buffer.from(text, 'utf8');
      const { bytesWritten } = await handle.write(data, 0, data.length, null);
      if (bytesWritten !== data.length) {
        throw Object.assign(new Error(`short write to ${path}: ${bytesWritten} of ${data.length} bytes`), {
          code: 'EIO',
        });
      }
    } finally {
      await handle.close();
    }
  },
  async readFile(path) {
    return fs.readFile(path, 'utf8');
  },
  async readdir(path) {
    return fs.readdir(path);
  },
  async readlink(path) {
    return fs.readlink(path);
  },
  async symlink(target, path) {
    await fs.symlink(target, path);
  },
  async unlink(path) {
    await fs.unlink(path);
  },
  async kind(path) {
    try {
      const stat = await fs.lstat(path);
      if (stat.isSymbolicLink()) return 'symlink';
      if (stat.isDirectory()) return 'directory';
      if (stat.isFile()) return 'file';
      return 'other';
    } catch (error) {
      if ((error as { code?: unknown }).code === 'ENOENT') return undefined;
      throw error;
    }
  },
  async makeDeviceNode(path, type, major, minor) {
    // Node has no mknod(2): use coreutils' mknod.
    const result = await runProgram('mknod', [
      '-m',
      '0660',
      path,
      type === 'block' ? 'b' : 'c',
      `${major}`,
      `${minor}`,
    ]);
    if (result.exitCode !== 0) {
      const code = /File exists/.test(result.stderr) ? 'EEXIST' : 'EIO';
      throw Object.assign(new Error(`mknod ${path} failed: ${result.stderr.trim()}`), { code });
    }
  },
  run: runProgram,
  async joinNetlinkGroup(family, group) {
    return joinNetlinkGroup(family, group);
  },
};
