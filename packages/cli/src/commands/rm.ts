import { join } from 'node:path';
import type { DeviceRecord, SystemRoots } from '@tcmu/configfs';
import { parseCommandLine, parseInteger } from '../arguments.js';
import { requireRoot } from '../environment.js';
import { CliError } from '../errors.js';
import { RM_HELP } from '../help.js';
import type { CommandIo } from '../io.js';
import { inspectLink, removeFile } from '../service.js';
import { DEFAULT_LINK_DIRECTORY, readServerState, removeServerState, runDirectory } from '../state.js';
import { type DeviceListing, listListings } from './ls.js';

/** What `tcmu rm` touches outside configfs (injected in tests). */
export interface RemoveDependencies {
  /** Sends a signal to a process (process.kill). */
  kill(pid: number, signal: NodeJS.Signals): void;
  /** Resolves after `milliseconds`. */
  sleep(milliseconds: number): Promise<void>;
}

const processRemoveDependencies: RemoveDependencies = {
  kill: (pid, signal) => process.kill(pid, signal),
  sleep: (milliseconds) => new Promise((resolve) => setTimeout(resolve, milliseconds)),
};

/**
 * Tells the SCSI disk driver that the disks of stale devices have no write cache, with
 * `temporary write through` in /sys/class/scsi_disk/H:C:T:L/cache_type (the kernel only changes its own
 * view; nothing is sent to the device). Otherwise removing the LUN makes sd send SYNCHRONIZE CACHE to a
 * ring nobody serves any more, and the removal waits through its timeouts and retries (about 95 s on
 * Linux 6.1). Nothing is lost: the cache belonged to the process that is gone. Failures are ignored
 * (no sd_mod, disk already gone): removal then just takes longer.
 */
export async function skipCacheFlushOnRemoval(
  records: readonly DeviceRecord[],
  roots: SystemRoots,
): Promise<void> {
  const configfs = await import('@tcmu/configfs');
  const system = roots.system ?? configfs.nodeSystem;
  const sysfs = roots.sysfsRoot ?? '/sys';
  for (const record of records) {
    for (const lun of record.luns) {
      if (!lun.address || !lun.blockDevice) continue;
      const { host, channel, target, lun: number } = lun.address;
      await system
        .writeFile(
          `${sysfs}/class/scsi_disk/${host}:${channel}:${target}:${number}/cache_type`,
          'temporary write through',
        )
        .catch(() => {});
    }
  }
}

/**
 * Removes what a dead server left outside configfs for device `name`: its state record, and its stable
 * link (`/dev/tcmu/<name>`, or where the record says) when that link dangles or points at one of the
 * device's disks `devicePaths`. Anything else at the link's path is left alone. Returns the links removed.
 */
export async function removeServerLeftovers(
  name: string,
  devicePaths: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Promise<string[]> {
  const directory = runDirectory(env);
  const state = await readServerState(directory, name);
  const candidates = new Set([join(DEFAULT_LINK_DIRECTORY, name)]);
  if (state?.link) candidates.add(state.link);
  const removed: string[] = [];
  for (const link of candidates) {
    const found = await inspectLink(link);
    if (!found) continue;
    const { target, dangling } = found;
    if (dangling || devicePaths.includes(target) || (state !== undefined && target === state.device)) {
      if ((await removeFile(link)) === undefined) removed.push(link);
    }
  }
  await removeServerState(directory, name);
  return removed;
}

/** Removes one stale device of this toolkit (without waiting on a cache flush nobody can answer). */
async function removeStaleDevice(
  target: DeviceListing,
  roots: SystemRoots,
  env: Readonly<Record<string, string | undefined>>,
): Promise<void> {
  const configfs = await import('@tcmu/configfs');
  const records = await configfs.listDevices({ ...roots });
  await skipCacheFlushOnRemoval(
    records.filter((record) => record.name === target.name && record.hba === target.hba && record.stale),
    roots,
  );
  await configfs.removeDevice({ ...roots, name: target.name, hba: target.hba });
  await removeServerLeftovers(target.name, target.devices, env);
}

/** `tcmu rm`: see RM_HELP. */
export async function removeCommand(
  argv: readonly string[],
  io: CommandIo,
  roots: SystemRoots = {},
  dependencies: RemoveDependencies = processRemoveDependencies,
): Promise<number> {
  const { values, positionals } = parseCommandLine('rm', argv, {
    stale: { type: 'boolean' },
    timeout: { type: 'string' },
  });
  if (values.help) {
    io.stdout(RM_HELP);
    return 0;
  }
  if (values.stale && positionals.length > 0) {
    throw new CliError('TCMU_ERR_CLI_USAGE', 'give device names or --stale, not both', {
      hint: 'see tcmu rm --help',
    });
  }
  if (!values.stale && positionals.length === 0) {
    throw new CliError('TCMU_ERR_CLI_USAGE', 'missing device name (or --stale)', {
      hint: 'see tcmu rm --help',
    });
  }
  const timeoutSeconds =
    values.timeout === undefined ? 30 : parseInteger('--timeout', values.timeout, 1, 3600);
  if (roots.configfsRoot === undefined) requireRoot('tcmu rm'); // the real configfs is root-only
  const configfs = await import('@tcmu/configfs');

  if (values.stale) {
    const stale = (await configfs.listDevices({ ...roots })).filter((record) => record.stale);
    await skipCacheFlushOnRemoval(stale, roots);
    const removed = await configfs.removeStale({ ...roots });
    for (const record of removed) {
      const before = stale.find(
        (candidate) => candidate.name === record.name && candidate.hba === record.hba,
      );
      const disks = (before ?? record).luns.flatMap((lun) => (lun.devicePath ? [lun.devicePath] : []));
      const links = await removeServerLeftovers(record.name, disks, io.env);
      io.stdout(
        `removed ${record.name} (stale, hba ${record.hba}${links.length > 0 ? `; link ${links.join(', ')}` : ''})\n`,
      );
    }
    if (removed.length === 0) io.stdout('no stale devices\n');
    return 0;
  }

  // Check every name first, so a typo removes nothing.
  const listings = await listListings(roots);
  const targets: DeviceListing[] = [];
  for (const name of positionals) {
    const matches = listings.filter((listing) => listing.name === name);
    if (matches.length === 0) {
      throw new CliError('TCMU_ERR_CLI_NO_SUCH_DEVICE', `no device named "${name}" created by tcmu`, {
        hint: 'see tcmu ls',
      });
    }
    targets.push(...matches);
  }
  for (const target of targets) {
    if (target.state !== 'stale' && target.pid !== undefined) {
      // A live server: ask it to drain and tear down itself (it owns the ring), then wait.
      try {
        dependencies.kill(target.pid, 'SIGTERM');
      } catch (error) {
        if ((error as { code?: unknown }).code !== 'ESRCH') throw error;
      }
      const deadline = timeoutSeconds * 1000;
      let waited = 0;
      while (waited < deadline) {
        const still = (await listListings(roots)).find((l) => l.name === target.name && l.hba === target.hba);
        if (!still) break;
        if (still.state === 'stale') {
          await removeStaleDevice(target, roots, io.env);
          break;
        }
        await dependencies.sleep(100);
        waited += 100;
      }
      if (waited >= deadline) {
        throw new CliError(
          'TCMU_ERR_CLI_DEVICE_BUSY',
          `device "${target.name}" is still served by pid ${target.pid} after ${timeoutSeconds} s`,
          { hint: `wait longer (--timeout), or kill -9 ${target.pid} and then tcmu rm --stale` },
        );
      }
      io.stdout(`removed ${target.name} (stopped pid ${target.pid})\n`);
    } else {
      await removeStaleDevice(target, roots, io.env);
      io.stdout(`removed ${target.name} (stale, hba ${target.hba})\n`);
    }
  }
  return 0;
}
