import { ConfigfsError, errnoCode, ioError } from './errors';
import { nodeSystem, type SystemAccess } from './system';
import { type TreeState, treeState } from './tree-state';
import type { SystemRoots } from './types';

export interface Context {
  configfsRoot: string;
  /** `<configfsRoot>/target`. */
  targetRoot: string;
  sysfsRoot: string;
  devRoot: string;
  procRoot: string;
  system: SystemAccess;
  /** What this process made in the tree, and its lock (shared by every call naming the same root). */
  state: TreeState;
}

export function resolveRoots(options: SystemRoots = {}): Context {
  const configfsRoot = trimSlash(options.configfsRoot ?? '/sys/kernel/config');
  return {
    configfsRoot,
    targetRoot: `${configfsRoot}/target`,
    sysfsRoot: trimSlash(options.sysfsRoot ?? '/sys'),
    devRoot: trimSlash(options.devRoot ?? '/dev'),
    procRoot: trimSlash(options.procRoot ?? '/proc'),
    system: options.system ?? nodeSystem,
    state: treeState(configfsRoot),
  };
}

function trimSlash(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, '') : path;
}

/** Serialises structural changes to one configfs tree within this process ({@link TreeState.lock}). */
export function withLock<T>(context: Context, work: () => Promise<T>): Promise<T> {
  return context.state.lock(work);
}

/**
 * Runs a creation made of steps, each of which records its own undo in `rollback` as soon as it has
 * made something; on any failure the undo steps run in reverse order and the error is rethrown
 * (with any rollback failures attached: {@link Rollback.fail}).
 */
export async function transaction<T>(work: (rollback: Rollback) => Promise<T>): Promise<T> {
  const rollback = new Rollback();
  try {
    return await work(rollback);
  } catch (error) {
    return rollback.fail(error);
  }
}

/** Undo steps recorded during a creation, run in reverse on failure. */
export class Rollback {
  #steps: Array<() => Promise<void>> = [];

  push(step: () => Promise<void>): void {
    this.#steps.push(step);
  }

  /** Runs every step in reverse order; returns the errors (never throws). */
  async run(): Promise<Error[]> {
    const errors: Error[] = [];
    while (this.#steps.length > 0) {
      const step = this.#steps.pop()!;
      try {
        await step();
      } catch (error) {
        errors.push(error instanceof Error ? error : new Error(String(error)));
      }
    }
    return errors;
  }

  /** Runs the rollback and rethrows `error` with the rollback errors attached. */
  async fail(error: unknown): Promise<never> {
    const rollbackErrors = await this.run();
    if (error instanceof ConfigfsError) {
      if (rollbackErrors.length === 0) throw error;
      throw new ConfigfsError(
        error.code,
        `${error.message} (rollback also failed: ${rollbackErrors[0]?.message})`,
        {
          path: error.path,
          operation: error.operation,
          modules: error.modules,
          feature: error.feature,
          rollbackErrors,
          cause: error.cause,
        },
      );
    }
    const wrapped =
      error instanceof Error && errnoCode(error) !== undefined
        ? ioError('operation', '(unknown)', error)
        : new ConfigfsError('TCMU_ERR_CONFIGFS_IO', `unexpected failure: ${String(error)}`, { cause: error });
    throw new ConfigfsError(wrapped.code, wrapped.message, { rollbackErrors, cause: error });
  }
}

export async function exists(context: Context, path: string): Promise<boolean> {
  try {
    return (await context.system.kind(path)) !== undefined;
  } catch {
    return false;
  }
}

export async function mkdir(context: Context, path: string): Promise<void> {
  try {
    await context.system.mkdir(path);
  } catch (error) {
    throw ioError('mkdir', path, error);
  }
}

/** mkdir, recording its undo (rmdir) in `rollback`. */
export async function mkdirUndoable(context: Context, path: string, rollback: Rollback): Promise<void> {
  await mkdir(context, path);
  rollback.push(() => removeDirectory(context, path));
}

/** Makes the symlink `path` → `target`, recording its undo (unlink) in `rollback`. */
export async function symlinkUndoable(
  context: Context,
  target: string,
  path: string,
  rollback: Rollback,
): Promise<void> {
  try {
    await context.system.symlink(target, path);
  } catch (error) {
    throw ioError('symlink', path, error);
  }
  rollback.push(() => unlinkOptional(context, path));
}

export async function write(context: Context, path: string, text: string): Promise<void> {
  try {
    await context.system.writeFile(path, text);
  } catch (error) {
    throw ioError(`write "${text}" to`, path, error);
  }
}

/** Reads a file trimmed, or undefined when it cannot be read. */
export async function readOptional(context: Context, path: string): Promise<string | undefined> {
  try {
    return (await context.system.readFile(path)).trim();
  } catch {
    return undefined;
  }
}

export async function readdirOptional(context: Context, path: string): Promise<string[]> {
  try {
    return await context.system.readdir(path);
  } catch {
    return [];
  }
}

/** How often {@link mkdirInShared} tries again when a concurrent last user removes the shared parent. */
const SHARED_PARENT_ATTEMPTS = 20;

/**
 * mkdir of `path` inside `parent`, a folder other processes create and remove at the same time (an HBA
 * `core/user_N`, the `loopback` fabric folder). Lock-free: makes `parent` when missing (EEXIST means
 * another process made it first, which is as good), then `path`; when a concurrent last user removes
 * `parent` in between (ENOENT), starts again. Any other
 * failure, EEXIST of `path` included, is thrown as a ConfigfsError (its `cause` keeps the errno).
 * The counterpart is {@link removeDirectoryIfUnused}: every user tries to remove the shared parent
 * after removing its own child, and the last one succeeds.
 */
export async function mkdirInShared(context: Context, parent: string, path: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await context.system.mkdir(parent);
    } catch (error) {
      if (errnoCode(error) !== 'EEXIST') throw ioError('mkdir', parent, error);
    }
    try {
      await context.system.mkdir(path);
      return;
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT' || attempt >= SHARED_PARENT_ATTEMPTS)
        throw ioError('mkdir', path, error);
    }
  }
}

/** rmdir that treats "already gone" as success. */
export async function removeDirectory(context: Context, path: string): Promise<void> {
  try {
    await context.system.rmdir(path);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return;
    throw ioError('rmdir', path, error);
  }
}

/**
 * rmdir of a shared folder (HBA, `loopback`, a target or tpgt) that ignores "not empty"/"busy"
 * (someone else still uses it) and "already gone" (another last user was faster). Returns whether
 * this call removed it.
 */
export async function removeDirectoryIfUnused(context: Context, path: string): Promise<boolean> {
  try {
    await context.system.rmdir(path);
    return true;
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT' || code === 'ENOTEMPTY' || code === 'EBUSY' || code === 'EEXIST') return false;
    throw ioError('rmdir', path, error);
  }
}

export async function unlinkOptional(context: Context, path: string): Promise<void> {
  try {
    await context.system.unlink(path);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return;
    throw ioError('unlink', path, error);
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns a value, backing off from 5 ms to 100 ms, until `timeoutMs`. */
export async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  onTimeout: () => ConfigfsError,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) throw onTimeout();
    await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
    delay = Math.min(delay * 2, 100);
  }
}

/** Parses a sysfs `dev` file (`major:minor`). */
export function parseDeviceNumber(text: string | undefined): { major: number; minor: number } | undefined {
  const match = /^(\d+):(\d+)$/.exec(text?.trim() ?? '');
  if (!match) return undefined;
  return { major: Number(match[1]), minor: Number(match[2]) };
}

/** How long to wait for devtmpfs to make a node before making it with mknod. */
const DEVTMPFS_WAIT_MS = 3000;

/** True when `devRoot` is a devtmpfs mount (the kernel makes device nodes there by itself). */
async function isDevtmpfs(context: Context): Promise<boolean> {
  const mounts = await readOptional(context, `${context.procRoot}/mounts`);
  return (mounts ?? '').split('\n').some((line) => {
    const [, mountPoint, type] = line.split(' ');
    return type === 'devtmpfs' && mountPoint === context.devRoot;
  });
}

/**
 * Makes sure `<devRoot>/<name>` exists, creating it with mknod from the sysfs `dev` file when nothing
 * (udev, devtmpfs) did. Returns the path and whether this call created it.
 */
export async function ensureDeviceNode(
  context: Context,
  name: string,
  sysfsDeviceDirectory: string,
  type: 'block' | 'character',
): Promise<{ path: string; created: boolean }> {
  const path = `${context.devRoot}/${name}`;
  if (await exists(context, path)) return { path, created: false };
  if (await isDevtmpfs(context)) {
    // devtmpfs makes the node itself, a moment after the device appears: wait for it.
    const made = await waitFor(
      async () => ((await exists(context, path)) ? true : undefined),
      DEVTMPFS_WAIT_MS,
      () => new ConfigfsError('TCMU_ERR_TIMEOUT', `${path} did not appear`),
    ).catch(() => false);
    if (made) return { path, created: false };
  }
  const number = parseDeviceNumber(await readOptional(context, `${sysfsDeviceDirectory}/dev`));
  if (!number) {
    throw new ConfigfsError(
      'TCMU_ERR_CONFIGFS_IO',
      `cannot read the device number of ${name} in ${sysfsDeviceDirectory}/dev`,
      {
        path: `${sysfsDeviceDirectory}/dev`,
        operation: 'read',
      },
    );
  }
  try {
    await context.system.makeDeviceNode(path, type, number.major, number.minor);
  } catch (error) {
    if (errnoCode(error) === 'EEXIST') return { path, created: false };
    throw ioError('mknod', path, error);
  }
  return { path, created: true };
}

/** The absolute, normalized path a symlink at `linkPath` whose content is `target` points at. */
export function resolveLinkTarget(linkPath: string, target: string): string {
  if (target.startsWith('/')) return normalize(target);
  const base = linkPath.slice(0, linkPath.lastIndexOf('/'));
  return normalize(`${base}/${target}`);
}

function normalize(path: string): string {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return `/${out.join('/')}`;
}
