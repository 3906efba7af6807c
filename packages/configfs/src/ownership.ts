import type { SystemAccess } from './system';

/** First component of every dev_config this toolkit writes: how `listDevices()` recognises its devices. */
export const OWNER_PREFIX = 'tcmu-ts';

/** Who created a device: the process id and its start time (clock ticks since boot, from /proc). */
export interface DeviceOwner {
  pid: number;
  /** Field 22 of /proc/<pid>/stat; tells a reused pid from the original process. 0 when unknown. */
  startTime: number;
}

/**
 * dev_config written for our devices: `tcmu-ts/<name>/<pid>/<startTime>`. It becomes part of the uio
 * name (`tcm-user/<hba>/<name>/<dev_config>`); tcmu-runner has no handler called `tcmu-ts`, so it
 * leaves these devices alone.
 */
export function formatDevConfig(name: string, owner: DeviceOwner): string {
  return `${OWNER_PREFIX}/${name}/${owner.pid}/${owner.startTime}`;
}

/** Parses a dev_config; undefined when it was not written by this toolkit. */
export function parseDevConfig(devConfig: string): { name: string; owner: DeviceOwner } | undefined {
  const parts = devConfig.trim().split('/');
  if (parts.length !== 4 || parts[0] !== OWNER_PREFIX) return undefined;
  const [, name, pid, start] = parts as [string, string, string, string];
  if (!/^[0-9]+$/.test(pid) || !/^[0-9]+$/.test(start) || name.length === 0) return undefined;
  return { name, owner: { pid: Number(pid), startTime: Number(start) } };
}

/** Start time (field 22 of /proc/<pid>/stat), or undefined when the process does not exist. */
export async function processStartTime(
  system: SystemAccess,
  procRoot: string,
  pid: number,
): Promise<number | undefined> {
  let stat: string;
  try {
    stat = await system.readFile(`${procRoot}/${pid}/stat`);
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const start = Number(rest[19]);
  return Number.isSafeInteger(start) ? start : 0;
}

/** The identity of this process, as written into dev_config. */
export async function currentOwner(system: SystemAccess, procRoot: string): Promise<DeviceOwner> {
  return { pid: process.pid, startTime: (await processStartTime(system, procRoot, process.pid)) ?? 0 };
}

/** True while the owner process still runs (same pid and same start time). */
export async function ownerAlive(
  system: SystemAccess,
  procRoot: string,
  owner: DeviceOwner,
): Promise<boolean> {
  const start = await processStartTime(system, procRoot, owner.pid);
  if (start === undefined) return false;
  return owner.startTime === 0 || start === 0 || start === owner.startTime;
}
