import { ConfigfsError } from './errors';
import { type Context, readOptional, resolveRoots, write } from './internal';
import { listDevices } from './inventory';
import type { DeviceRecord, SystemRoots } from './types';
import { validateDeviceName, validateHba } from './validate';

/** What a new process needs to know before it takes over a device whose owner died. */
export interface TakeOverCandidate {
  /** The device as `listDevices()` reports it. */
  record: DeviceRecord;
  /** `wwn/vpd_unit_serial` (the identity the initiator knows; the NAA designator derives from it). */
  serial: string | undefined;
  /** `attrib/hw_block_size` in bytes. */
  blockSize: number | undefined;
  /** `attrib/cmd_time_out` in seconds (0 = never); fixed while the device is exported. */
  commandTimeoutSeconds: number | undefined;
  /** `attrib/qfull_time_out` in seconds (-1 = same as cmd_time_out). */
  queueFullTimeoutSeconds: number | undefined;
  /**
   * `takeover`: owned by this toolkit, enabled, its owner is gone and no process holds its uio device.
   * `in-use`: its owner (or another process holding the uio device) still runs.
   * `not-owner`: not created by this toolkit. `not-enabled`: never finished setting up.
   */
  verdict: 'takeover' | 'in-use' | 'not-owner' | 'not-enabled';
}

export interface FindTakeOverCandidateOptions extends SystemRoots {
  name: string;
  /** Default: any HBA (an error if the name exists on several). */
  hba?: number;
}

function numberOrUndefined(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  return text !== '' && Number.isSafeInteger(value) ? value : undefined;
}

/** The serial in `wwn/vpd_unit_serial`, which the kernel shows as `T10 VPD Unit Serial Number: <serial>`. */
export function parseUnitSerial(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const value = text.includes(':') ? text.slice(text.indexOf(':') + 1).trim() : text.trim();
  return value === '' ? undefined : value;
}

/**
 * Looks for an existing device named `name` and says whether this process may take it over. Undefined
 * when no such device exists. Read-only: nothing in configfs changes.
 */
export async function findTakeOverCandidate(
  options: FindTakeOverCandidateOptions,
): Promise<TakeOverCandidate | undefined> {
  const name = validateDeviceName(options.name);
  const hba = options.hba === undefined ? undefined : validateHba(options.hba);
  const context = resolveRoots(options);
  const matches = (await listDevices({ ...options, all: true })).filter(
    (record) => record.name === name && (hba === undefined || record.hba === hba),
  );
  if (matches.length === 0) return undefined;
  if (matches.length > 1) {
    throw new ConfigfsError(
      'TCMU_ERR_INVALID_ARGUMENT',
      `device ${name} exists on HBAs ${matches.map((match) => match.hba).join(', ')}: say which`,
    );
  }
  const record = matches[0]!;
  const path = record.configfsPath;
  const others = record.uioHolders.filter((pid) => pid !== process.pid);
  let verdict: TakeOverCandidate['verdict'];
  if (!record.owned) verdict = 'not-owner';
  else if (record.ownerAlive || others.length > 0) verdict = 'in-use';
  else if (!record.enabled) verdict = 'not-enabled';
  else verdict = 'takeover';
  return {
    record,
    serial: parseUnitSerial(await readOptional(context, `${path}/wwn/vpd_unit_serial`)),
    blockSize: numberOrUndefined(await readOptional(context, `${path}/attrib/hw_block_size`)),
    commandTimeoutSeconds: numberOrUndefined(await readOptional(context, `${path}/attrib/cmd_time_out`)),
    queueFullTimeoutSeconds: numberOrUndefined(await readOptional(context, `${path}/attrib/qfull_time_out`)),
    verdict,
  };
}

/** Options of {@link setDiskTimeout}. */
export interface SetDiskTimeoutOptions extends SystemRoots {
  /** Kernel name of the disk, e.g. `sdb`. */
  blockDevice: string;
  /** `/sys/block/<disk>/device/timeout`: seconds before the SCSI layer aborts a command (1..86400). */
  timeoutSeconds: number;
}

/**
 * Sets the SCSI layer's command timeout of a disk (`/sys/block/<disk>/device/timeout`). Keep it above
 * the device's `cmd_time_out`: otherwise the SCSI layer aborts and retries a command first, and the
 * abort waits for TCMU's own timeout, so a disk with no server hangs for several timeouts in a row.
 */
export async function setDiskTimeout(options: SetDiskTimeoutOptions): Promise<void> {
  if (!/^[a-z]+$/.test(options.blockDevice)) {
    throw new ConfigfsError('TCMU_ERR_INVALID_ARGUMENT', `not a disk name: ${options.blockDevice}`);
  }
  const seconds = options.timeoutSeconds;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 86_400) {
    throw new ConfigfsError('TCMU_ERR_INVALID_ARGUMENT', `timeoutSeconds must be 1..86400, got ${seconds}`);
  }
  const context: Context = resolveRoots(options);
  await write(context, `${context.sysfsRoot}/block/${options.blockDevice}/device/timeout`, String(seconds));
}

/** Reads `/sys/block/<disk>/device/timeout` (seconds), undefined when unreadable. */
export async function readDiskTimeout(
  options: SystemRoots & { blockDevice: string },
): Promise<number | undefined> {
  const context = resolveRoots(options);
  return numberOrUndefined(
    await readOptional(context, `${context.sysfsRoot}/block/${options.blockDevice}/device/timeout`),
  );
}
