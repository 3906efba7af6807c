import { type Context, ensureDeviceNode, readdirOptional, readOptional } from './internal';
import type { ScsiAddress } from './types';

/**
 * Parses a uio name `tcm-user/<hba>/<name>/<dev_config>` (the dev_config may contain `/`, so the
 * split keeps everything after the third `/` together). Undefined for other uio devices.
 */
export function parseUioName(text: string): { hba: number; name: string; devConfig: string } | undefined {
  const line = text.trim();
  const parts: string[] = [];
  let rest = line;
  for (let i = 0; i < 3; i++) {
    const slash = rest.indexOf('/');
    if (slash < 0) return undefined;
    parts.push(rest.slice(0, slash));
    rest = rest.slice(slash + 1);
  }
  parts.push(rest);
  const [prefix, hba, name, devConfig] = parts as [string, string, string, string];
  if (prefix !== 'tcm-user' || !/^\d+$/.test(hba) || name.length === 0) return undefined;
  return { hba: Number(hba), name, devConfig };
}

/** The uio device (`uioN`) the kernel made for `user_<hba>/<name>`, if present. */
export async function findUio(context: Context, hba: number, name: string): Promise<string | undefined> {
  const classDirectory = `${context.sysfsRoot}/class/uio`;
  for (const uio of await readdirOptional(context, classDirectory)) {
    const text = await readOptional(context, `${classDirectory}/${uio}/name`);
    const parsed = text === undefined ? undefined : parseUioName(text);
    if (parsed && parsed.hba === hba && parsed.name === name) return uio;
  }
  return undefined;
}

/** `maps/map0/size` of a uio device (sysfs prints it in hex). */
export async function readMapSize(context: Context, uio: string): Promise<number | undefined> {
  const text = await readOptional(context, `${context.sysfsRoot}/class/uio/${uio}/maps/map0/size`);
  if (text === undefined) return undefined;
  const value = Number(text.startsWith('0x') ? text : `0x${text}`);
  return Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

/** Parses tcm_loop's `tpgt_N/address` (`<host>:0:<tpgt>`) plus a LUN into a SCSI address. */
export function parseLoopbackAddress(text: string | undefined, lun: number): ScsiAddress | undefined {
  const match = /^(\d+):(\d+):(\d+)$/.exec(text?.trim() ?? '');
  if (!match) return undefined;
  return { host: Number(match[1]), channel: Number(match[2]), target: Number(match[3]), lun };
}

export function formatAddress(address: ScsiAddress): string {
  return `${address.host}:${address.channel}:${address.target}:${address.lun}`;
}

/** The sysfs directory of the SCSI device at `address`. */
export function scsiDeviceDirectory(context: Context, address: ScsiAddress): string {
  return `${context.sysfsRoot}/bus/scsi/devices/${formatAddress(address)}`;
}

/** The disk (`sdX`) of the SCSI device at `address`, once sd has attached. */
export async function findBlockDevice(context: Context, address: ScsiAddress): Promise<string | undefined> {
  const names = await readdirOptional(context, `${scsiDeviceDirectory(context, address)}/block`);
  return names.find((name) => /^sd[a-z]+$/.test(name)) ?? names[0];
}

/** The SCSI generic device (`sgN`) of the SCSI device at `address`, if sg is loaded. */
export async function findGenericDevice(context: Context, address: ScsiAddress): Promise<string | undefined> {
  const names = await readdirOptional(context, `${scsiDeviceDirectory(context, address)}/scsi_generic`);
  return names.find((name) => /^sg\d+$/.test(name));
}

/** Makes sure /dev/uioN exists (mknod from sysfs when there is no devtmpfs/udev). */
export async function ensureUioNode(
  context: Context,
  uio: string,
): Promise<{ path: string; created: boolean }> {
  return ensureDeviceNode(context, uio, `${context.sysfsRoot}/class/uio/${uio}`, 'character');
}
