import type { DeviceRecord, SystemRoots } from '@tcmu/configfs';
import { parseCommandLine } from '../arguments.js';
import { CliError } from '../errors.js';
import { LS_HELP } from '../help.js';
import type { CommandIo } from '../io.js';
import { formatSize } from '../size.js';

/** A device of this toolkit as `tcmu ls` shows it. */
export interface DeviceListing {
  readonly name: string;
  readonly hba: number;
  /**
   * `serving`: the creating process is alive and the disk is attached; `starting`: alive, no disk yet;
   * `stale`: the creating process is gone (remove with `tcmu rm --stale`).
   */
  readonly state: 'serving' | 'starting' | 'stale';
  /** Bytes, when configfs reports it. */
  readonly size: number | undefined;
  /** The disks (`/dev/sdX`) its LUNs appear as. */
  readonly devices: readonly string[];
  /** The SCSI generic nodes (`/dev/sgN`). */
  readonly genericDevices: readonly string[];
  /** The process that serves it (its creator, or the process holding its uio device), or that created it when stale. */
  readonly pid: number | undefined;
  readonly uio: string | undefined;
  /** `iscsi://<portal>/<target IQN>/<lun>` per portal, when the disk is also exported over iSCSI. */
  readonly iscsi?: readonly string[];
}

/** Reduces configfs's record of one device to its listing. */
export function toListing(record: DeviceRecord): DeviceListing {
  const devices = record.luns.flatMap((lun) => (lun.devicePath ? [lun.devicePath] : []));
  // The server is the creating process, or whoever holds the uio device now (a process that reattached).
  const server = record.ownerAlive ? record.owner?.pid : (record.uioHolders[0] ?? record.owner?.pid);
  const alive = record.ownerAlive || record.uioHolders.length > 0;
  const iscsi = (record.iscsi ?? []).flatMap((entry) =>
    entry.portals.map((portal) => `iscsi://${portal}/${entry.iqn}/${entry.lun}`),
  );
  return {
    name: record.name,
    hba: record.hba,
    state: record.stale || !alive ? 'stale' : devices.length > 0 ? 'serving' : 'starting',
    size: record.size,
    devices,
    genericDevices: record.luns.flatMap((lun) => (lun.sgPath ? [lun.sgPath] : [])),
    pid: server,
    uio: record.uio,
    ...(iscsi.length > 0 ? { iscsi } : {}),
  };
}

/** Formats listings as an aligned text table with a header row. */
export function formatTable(listings: readonly DeviceListing[]): string {
  // The ISCSI column appears only when some disk is exported over iSCSI.
  const iscsi = listings.some((listing) => listing.iscsi !== undefined);
  const rows = [
    ['NAME', 'HBA', 'STATE', 'SIZE', 'DEVICE', 'PID', ...(iscsi ? ['ISCSI'] : [])],
    ...listings.map((listing) => [
      listing.name,
      String(listing.hba),
      listing.state,
      listing.size === undefined ? '-' : formatSize(listing.size),
      listing.devices.join(',') || '-',
      listing.pid === undefined ? '-' : String(listing.pid),
      ...(iscsi ? [listing.iscsi?.join(',') ?? '-'] : []),
    ]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** Lists this toolkit's devices from configfs; an empty list when configfs has no target tree. */
export async function listListings(roots: SystemRoots): Promise<DeviceListing[]> {
  const configfs = await import('@tcmu/configfs');
  const records = await configfs.listDevices({ ...roots });
  return records.filter((record) => record.owned).map(toListing);
}

/** `tcmu ls`: see LS_HELP. `roots` points at other configfs/sysfs trees (tests). */
export async function listCommand(
  argv: readonly string[],
  io: CommandIo,
  roots: SystemRoots = {},
): Promise<number> {
  const { values, positionals } = parseCommandLine('ls', argv, { json: { type: 'boolean' } });
  if (values.help) {
    io.stdout(LS_HELP);
    return 0;
  }
  if (positionals.length > 0) {
    throw new CliError(
      'TCMU_ERR_CLI_USAGE',
      `unexpected argument "${positionals[0]}": ls takes no arguments`,
      {
        hint: 'see tcmu ls --help',
      },
    );
  }
  const listings = await listListings(roots);
  if (values.json) io.stdout(`${JSON.stringify(listings)}\n`);
  else if (listings.length === 0) io.stdout('no devices\n');
  else io.stdout(`${formatTable(listings)}\n`);
  return 0;
}
