import { get as httpGet } from 'node:http';
import type { DeviceRecord, SystemRoots } from '@tcmu/configfs';
import { parseCommandLine } from '../arguments.js';
import { CliError } from '../errors.js';
import { LS_HELP } from '../help.js';
import type { CommandIo } from '../io.js';
import type { StatsSnapshot } from '../metrics.js';
import { formatSize } from '../size.js';
import { readServerStates, runDirectory } from '../state.js';

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
  /** What its `tcmu serve` recorded (undefined for a device served otherwise, or stale). */
  readonly server?: ServerDetails | undefined;
}

/** What `tcmu serve` recorded about a device it serves, plus live rates from its metrics endpoint. */
export interface ServerDetails {
  readonly backend: string;
  readonly blockSize: number;
  readonly readOnly: boolean;
  readonly uptimeSeconds: number;
  /** `/dev/tcmu/<name>`, when serve made the link. */
  readonly link: string | undefined;
  /** `host:port`, when serve runs with --metrics. */
  readonly metrics: string | undefined;
  /** Over the last seconds, when the metrics endpoint answered. */
  readonly rates?:
    | {
        readonly commandsPerSecond: number;
        readonly readBytesPerSecond: number;
        readonly writeBytesPerSecond: number;
      }
    | undefined;
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

/** `3d4h`, `2h5m`, `4m10s`, `12s`. */
export function formatUptime(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const [d, h, m] = [Math.floor(s / 86400), Math.floor((s % 86400) / 3600), Math.floor((s % 3600) / 60)];
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${m}m`;
  if (m > 0) return `${m}m${s % 60}s`;
  return `${s}s`;
}

/** Bytes per second as `12.3 MiB/s`. */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** Bytes, rounded, as `3.5 KiB` or `120 MiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 100 || unit === 0 ? Math.round(value) : Number(value.toFixed(1))} ${units[unit]}`;
}

/**
 * Formats listings as an aligned text table with a header row. The serve columns (backend, block
 * size, read-only, uptime) appear when a device has them, the rate columns when one has metrics.
 */
export function formatTable(listings: readonly DeviceListing[]): string {
  // The ISCSI column appears only when some disk is exported over iSCSI.
  const iscsi = listings.some((listing) => listing.iscsi !== undefined);
  const served = listings.some((listing) => listing.server !== undefined);
  const rated = listings.some((listing) => listing.server?.rates !== undefined);
  const rows = [
    [
      'NAME',
      'HBA',
      'STATE',
      'SIZE',
      'DEVICE',
      'PID',
      ...(served ? ['BS', 'RO', 'UPTIME', 'LINK', 'BACKEND'] : []),
      ...(iscsi ? ['ISCSI'] : []),
      ...(rated ? ['IOPS', 'READ', 'WRITE'] : []),
    ],
    ...listings.map((listing) => {
      const server = listing.server;
      const rates = server?.rates;
      return [
        listing.name,
        String(listing.hba),
        listing.state,
        listing.size === undefined ? '-' : formatSize(listing.size),
        listing.devices.join(',') || '-',
        listing.pid === undefined ? '-' : String(listing.pid),
        ...(served
          ? server
            ? [
                String(server.blockSize),
                server.readOnly ? 'yes' : 'no',
                formatUptime(server.uptimeSeconds),
                server.link ?? '-',
                server.backend,
              ]
            : ['-', '-', '-', '-', '-']
          : []),
        ...(iscsi ? [listing.iscsi?.join(',') ?? '-'] : []),
        ...(rated
          ? rates
            ? [
                String(Math.round(rates.commandsPerSecond)),
                formatRate(rates.readBytesPerSecond),
                formatRate(rates.writeBytesPerSecond),
              ]
            : ['-', '-', '-']
          : []),
      ];
    }),
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

/**
 * GETs a server's /stats.json (undefined when it does not answer within `timeoutMs`). node:http rather
 * than fetch: it loads much faster, which matters for a one-shot command (and in the emulated lab).
 */
export function fetchStats(address: string, timeoutMs = 3000): Promise<StatsSnapshot | undefined> {
  return new Promise((resolve) => {
    const request = httpGet(`http://${address}/stats.json`, { timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', () => resolve(undefined));
      response.on('end', () => {
        try {
          resolve(
            response.statusCode === 200
              ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as StatsSnapshot)
              : undefined,
          );
        } catch {
          resolve(undefined);
        }
      });
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(undefined));
  });
}

/** Adds what each live device's `tcmu serve` recorded in the run directory, and its live rates. */
export async function addServerDetails(
  listings: readonly DeviceListing[],
  directory: string,
  now: number = Date.now(),
): Promise<DeviceListing[]> {
  const states = await readServerStates(directory);
  return Promise.all(
    listings.map(async (listing) => {
      const state = states.get(listing.name);
      if (!state || listing.state === 'stale' || state.pid !== listing.pid) return listing;
      const snapshot = state.metrics === undefined ? undefined : await fetchStats(state.metrics);
      const server: ServerDetails = {
        backend: state.backend,
        blockSize: state.blockSize,
        readOnly: state.readOnly,
        uptimeSeconds: Math.max(0, (now - Date.parse(state.started)) / 1000),
        link: state.link,
        metrics: state.metrics,
        rates:
          snapshot === undefined
            ? undefined
            : {
                commandsPerSecond: snapshot.rates.commandsPerSecond,
                readBytesPerSecond: snapshot.rates.readBytesPerSecond,
                writeBytesPerSecond: snapshot.rates.writeBytesPerSecond,
              },
      };
      return { ...listing, server };
    }),
  );
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
  const listings = await addServerDetails(await listListings(roots), runDirectory(io.env));
  if (values.json) io.stdout(`${JSON.stringify(listings)}\n`);
  else if (listings.length === 0) io.stdout('no devices\n');
  else io.stdout(`${formatTable(listings)}\n`);
  return 0;
}
