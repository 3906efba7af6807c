// What a running `tcmu serve` tells other tcmu commands about itself beyond configfs: one small JSON
// file per device in the run directory (/run/tcmu, or $TCMU_RUN_DIR), written when the disk is ready
// and removed at teardown (and by `tcmu rm --stale` after a crash). `tcmu ls` and `tcmu stats` read it.
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeFile } from './service.js';

/** Where serve records its state, unless $TCMU_RUN_DIR says otherwise. */
export const DEFAULT_RUN_DIRECTORY = '/run/tcmu';

/** Where serve links `/dev/tcmu/<name>` to the disk, unless `--link-dir` says otherwise. */
export const DEFAULT_LINK_DIRECTORY = '/dev/tcmu';

export function runDirectory(env: Readonly<Record<string, string | undefined>>): string {
  return env.TCMU_RUN_DIR || DEFAULT_RUN_DIRECTORY;
}

/** One serving process's record. */
export interface ServerState {
  readonly name: string;
  readonly pid: number;
  /** The backend as given (credentials are never part of it). */
  readonly backend: string;
  readonly size: number;
  readonly blockSize: number;
  readonly readOnly: boolean;
  /** ISO time the disk became ready. */
  readonly started: string;
  readonly device: string;
  /** The stable link (`/dev/tcmu/<name>`), when serve made one. */
  readonly link: string | undefined;
  /** `host:port` of the metrics endpoint, when serve runs with `--metrics`. */
  readonly metrics: string | undefined;
}

function statePath(directory: string, name: string): string {
  return join(directory, `${name}.json`);
}

/** Writes the record atomically (a reader never sees half a file). */
export async function writeServerState(directory: string, state: ServerState): Promise<void> {
  await mkdir(directory, { recursive: true, mode: 0o755 });
  const temporary = join(directory, `.${state.name}.${state.pid}.tmp`);
  await writeFile(temporary, `${JSON.stringify(state)}\n`, { mode: 0o644 });
  await rename(temporary, statePath(directory, state.name));
}

/** Removes the record of `name`, but only when it belongs to `pid` (when given). */
export async function removeServerState(directory: string, name: string, pid?: number): Promise<void> {
  if (pid !== undefined) {
    const current = await readServerState(directory, name);
    if (current !== undefined && current.pid !== pid) return;
  }
  await removeFile(statePath(directory, name));
}

export async function readServerState(directory: string, name: string): Promise<ServerState | undefined> {
  try {
    const state = JSON.parse(await readFile(statePath(directory, name), 'utf8')) as ServerState;
    return typeof state?.name === 'string' && typeof state.pid === 'number' ? state : undefined;
  } catch {
    return undefined;
  }
}

/** Every readable record in the directory, by device name (none when it does not exist). */
export async function readServerStates(directory: string): Promise<Map<string, ServerState>> {
  const states = new Map<string, ServerState>();
  let names: string[];
  try {
    names = await readdir(directory);
  } catch {
    return states;
  }
  for (const file of names) {
    if (!file.endsWith('.json') || file.startsWith('.')) continue;
    const state = await readServerState(directory, file.slice(0, -'.json'.length));
    if (state) states.set(state.name, state);
  }
  return states;
}
