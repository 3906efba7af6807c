import { access, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliError } from './errors.js';
import { lastLine, runProgram } from './run-program.js';

/** Where the kernel pieces show up; overridable so tests can point at a temp tree. */
export interface KernelPaths {
  /** The configfs mount point (normally /sys/kernel/config). */
  readonly configfsRoot: string;
  /** sysfs module folder (normally /sys/module). */
  readonly sysModuleRoot: string;
}

export const defaultKernelPaths: KernelPaths = {
  configfsRoot: '/sys/kernel/config',
  sysModuleRoot: '/sys/module',
};

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Whether this kernel can serve TCMU devices now, and if not, why (one line). */
export type TcmuAvailability =
  | { readonly available: true }
  | { readonly available: false; readonly reason: string };

/** True when configfs shows the target subsystem and both modules are loaded (or built in). */
export async function tcmuLoaded(paths: KernelPaths = defaultKernelPaths): Promise<boolean> {
  return (
    (await exists(join(paths.configfsRoot, 'target'))) &&
    (await exists(join(paths.sysModuleRoot, 'target_core_user'))) &&
    (await exists(join(paths.sysModuleRoot, 'tcm_loop')))
  );
}

/**
 * Finds out whether this kernel has TCMU: already loaded, or loadable with `modprobe target_core_user
 * tcm_loop` (tried only as root; configfs is mounted at its usual place when it is not).
 */
export async function detectTcmu(
  options: { paths?: KernelPaths; isRoot?: boolean; modprobe?: boolean } = {},
): Promise<TcmuAvailability> {
  const paths = options.paths ?? defaultKernelPaths;
  if (await tcmuLoaded(paths)) return { available: true };
  const isRoot = options.isRoot ?? process.getuid?.() === 0;
  if (!isRoot) return { available: false, reason: 'TCMU is not loaded and loading it needs root' };
  if (options.modprobe === false)
    return { available: false, reason: 'target_core_user or tcm_loop is not loaded' };
  for (const module of ['target_core_user', 'tcm_loop']) {
    let result: Awaited<ReturnType<typeof runProgram>>;
    try {
      result = await runProgram('modprobe', [module], { timeoutMilliseconds: 30_000 });
    } catch {
      return { available: false, reason: 'modprobe is not installed (apt-get install kmod)' };
    }
    if (result.exitCode !== 0) {
      return {
        available: false,
        reason: `modprobe ${module} failed: ${lastLine(result.stderr).replace(/^modprobe: (FATAL: )?/, '') || `exit ${result.exitCode}`}`,
      };
    }
  }
  if (!(await exists(join(paths.configfsRoot, 'target')))) {
    const mount = await runProgram('mount', ['-t', 'configfs', 'configfs', paths.configfsRoot]).catch(
      () => undefined,
    );
    if (mount?.exitCode !== 0 || !(await exists(join(paths.configfsRoot, 'target')))) {
      return { available: false, reason: `configfs is not mounted at ${paths.configfsRoot}` };
    }
  }
  return (await tcmuLoaded(paths))
    ? { available: true }
    : { available: false, reason: 'the modules loaded but configfs shows no target folder' };
}

/** Throws `TCMU_ERR_CLI_NOT_ROOT` unless the process runs as root. */
export function requireRoot(command: string): void {
  if (process.getuid && process.getuid() !== 0) {
    throw new CliError(
      'TCMU_ERR_CLI_NOT_ROOT',
      `${command} needs root (configfs and /dev/uioN are root-only)`,
      {
        hint: 'run it with sudo',
      },
    );
  }
}

/** The repository's kernel lab runner (`tools/lab/run`) when this CLI runs from a checkout, else undefined. */
export async function findLabRunner(
  from: string = fileURLToPath(import.meta.url),
): Promise<string | undefined> {
  // src/x.ts and dist/x.js both sit three folders below the repository root (packages/cli/<dir>/).
  const root = dirname(dirname(dirname(dirname(from))));
  const runner = join(root, 'tools', 'lab', 'run');
  try {
    const info = await stat(runner);
    return info.isFile() ? runner : undefined;
  } catch {
    return undefined;
  }
}

/** The one-line advice printed when the kernel has no TCMU. */
export function noTcmuHint(labRunner: string | undefined): string {
  if (!labRunner) {
    return 'load target_core_user and tcm_loop (Debian: modprobe target_core_user tcm_loop), or run it in the kernel lab of the tcmu repository (tools/lab/run)';
  }
  const cli = join(dirname(dirname(dirname(labRunner))), 'packages', 'cli', 'dist', 'cli.js');
  return `run it in the kernel lab: ${labRunner} node ${cli} <command> …; the demo: tcmu demo`;
}
