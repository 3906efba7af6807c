import { findBlockDevice, findGenericDevice, findUio, parseLoopbackAddress } from './discovery';
import { ConfigfsError } from './errors';
import {
  type Context,
  exists,
  readdirOptional,
  readOptional,
  removeDirectory,
  removeDirectoryIfUnused,
  resolveRoots,
  unlinkOptional,
  withLock,
  write,
} from './internal';
import { findIscsiExports, removeIscsiExports } from './iscsi';
import { releaseFabricIfEmpty, removeTargetIfEmpty } from './loopback';
import { findLunLinks } from './luns';
import { currentOwner, formatDevConfig, ownerAlive, parseDevConfig } from './ownership';
import type {
  DeviceRecord,
  ListDevicesOptions,
  LunRecord,
  ReattachUserDeviceOptions,
  RemoveDeviceOptions,
  SystemRoots,
  UserDevice,
} from './types';
import { hbaPath, openUio, registerDevice } from './user-device';
import { validateDeviceName, validateHba, validateTimeout } from './validate';

interface FoundLun extends LunRecord {
  lunPath: string;
  linkPath: string;
  targetPath: string;
  tpgtPath: string;
}

/** Every tcm_loop LUN whose link points at the device `devicePath`, with its disk. */
async function findLuns(context: Context, devicePath: string): Promise<FoundLun[]> {
  const found: FoundLun[] = [];
  const fabric = `${context.targetRoot}/loopback`;
  for (const link of await findLunLinks(context, fabric, /^naa\./, devicePath)) {
    const address = parseLoopbackAddress(await readOptional(context, `${link.tpgtPath}/address`), link.lun);
    const blockDevice = address ? await findBlockDevice(context, address) : undefined;
    const generic = address ? await findGenericDevice(context, address) : undefined;
    found.push({
      wwn: link.target,
      tpgt: link.tpgt,
      lun: link.lun,
      address,
      blockDevice,
      devicePath: blockDevice === undefined ? undefined : `${context.devRoot}/${blockDevice}`,
      sgPath: generic === undefined ? undefined : `${context.devRoot}/${generic}`,
      lunPath: link.lunPath,
      linkPath: link.linkPath,
      targetPath: link.targetPath,
      tpgtPath: link.tpgtPath,
    });
  }
  return found;
}

/** dev_config of an existing device: `attrib/dev_config`, else the `Config:` field of `info`. */
async function readDevConfig(context: Context, devicePath: string): Promise<string | undefined> {
  const attribute = await readOptional(context, `${devicePath}/attrib/dev_config`);
  if (attribute !== undefined) return attribute;
  const info = await readOptional(context, `${devicePath}/info`);
  return info === undefined ? undefined : /Config: (\S+)/.exec(info)?.[1];
}

async function readSize(context: Context, devicePath: string): Promise<number | undefined> {
  let text = await readOptional(context, `${devicePath}/attrib/dev_size`);
  if (text === undefined) {
    const info = await readOptional(context, `${devicePath}/info`);
    text = info === undefined ? undefined : /Size: (\d+)/.exec(info)?.[1];
  }
  const size = Number(text);
  return text !== undefined && Number.isSafeInteger(size) ? size : undefined;
}

/** Pids of processes holding `<devRoot>/<uio>` open, from the fd links in /proc. */
async function uioHolders(context: Context, uio: string | undefined): Promise<number[]> {
  if (uio === undefined) return [];
  const node = `${context.devRoot}/${uio}`;
  const holders: number[] = [];
  for (const entry of await readdirOptional(context, context.procRoot)) {
    if (!/^\d+$/.test(entry)) continue;
    const fdDirectory = `${context.procRoot}/${entry}/fd`;
    for (const fd of await readdirOptional(context, fdDirectory)) {
      try {
        if ((await context.system.readlink(`${fdDirectory}/${fd}`)) === node) {
          holders.push(Number(entry));
          break;
        }
      } catch {
        // closed meanwhile, or not ours to read
      }
    }
  }
  return holders;
}

async function describe(
  context: Context,
  hba: number,
  name: string,
): Promise<DeviceRecord & { found: FoundLun[] }> {
  const configfsPath = `${context.targetRoot}/core/user_${hba}/${name}`;
  const devConfig = await readDevConfig(context, configfsPath);
  const parsed = devConfig === undefined ? undefined : parseDevConfig(devConfig);
  const owned = parsed !== undefined && parsed.name === name;
  const alive = owned ? await ownerAlive(context.system, context.procRoot, parsed.owner) : false;
  const uio = await findUio(context, hba, name);
  const enableText = await readOptional(context, `${configfsPath}/enable`);
  const found = await findLuns(context, configfsPath);
  const holders = owned && !alive ? await uioHolders(context, uio) : [];
  const iscsi = (await findIscsiExports(context, configfsPath)).map(
    ({ targetPath: _path, ...entry }) => entry,
  );
  return {
    hba,
    name,
    configfsPath,
    devConfig,
    owned,
    owner: owned ? parsed.owner : undefined,
    ownerAlive: alive,
    uioHolders: holders,
    stale: owned && !alive && holders.length === 0,
    enabled: enableText === undefined ? uio !== undefined : enableText === '1',
    uio,
    size: await readSize(context, configfsPath),
    luns: found.map(({ wwn, tpgt, lun, address, blockDevice, devicePath, sgPath }) => ({
      wwn,
      tpgt,
      lun,
      address,
      blockDevice,
      devicePath,
      sgPath,
    })),
    ...(iscsi.length > 0 ? { iscsi } : {}),
    found,
  };
}

async function scan(context: Context, all: boolean): Promise<Array<DeviceRecord & { found: FoundLun[] }>> {
  const records: Array<DeviceRecord & { found: FoundLun[] }> = [];
  const core = `${context.targetRoot}/core`;
  for (const hbaName of await readdirOptional(context, core)) {
    const match = /^user_(\d+)$/.exec(hbaName);
    if (!match) continue;
    for (const name of await readdirOptional(context, `${core}/${hbaName}`)) {
      if ((await context.system.kind(`${core}/${hbaName}/${name}`)) !== 'directory') continue;
      const record = await describe(context, Number(match[1]), name);
      if (all || record.owned) records.push(record);
    }
  }
  return records.sort((a, b) => a.hba - b.hba || a.name.localeCompare(b.name));
}

function strip(record: DeviceRecord & { found?: FoundLun[] }): DeviceRecord {
  const { found: _found, ...rest } = record;
  return rest;
}

/**
 * User backstores in configfs with their state (enabled, uio, LUNs, disks, owner alive or stale).
 * By default only those this toolkit created; `all: true` lists every `user_*` device. Read-only.
 */
export async function listDevices(options: ListDevicesOptions = {}): Promise<DeviceRecord[]> {
  const context = resolveRoots(options);
  return (await scan(context, options.all ?? false)).map(strip);
}

async function locate(context: Context, name: string, hba: number | undefined) {
  const matches = (await scan(context, true)).filter(
    (record) => record.name === name && (hba === undefined || record.hba === hba),
  );
  if (matches.length === 0) {
    throw new ConfigfsError(
      'TCMU_ERR_NOT_FOUND',
      `no user device named ${name}${hba === undefined ? '' : ` on HBA ${hba}`}`,
    );
  }
  if (matches.length > 1) {
    throw new ConfigfsError(
      'TCMU_ERR_INVALID_ARGUMENT',
      `device ${name} exists on HBAs ${matches.map((m) => m.hba).join(', ')}: say which`,
    );
  }
  const record = matches[0]!;
  if (!record.owned) {
    throw new ConfigfsError(
      'TCMU_ERR_NOT_OWNER',
      `device user_${record.hba}/${name} was not created by this toolkit (dev_config ${JSON.stringify(record.devConfig)}); left alone`,
      { path: record.configfsPath },
    );
  }
  return record;
}

/** Removes a device left by another process: its LUNs (and their target if emptied), device, HBA if empty. */
async function removeFound(context: Context, record: DeviceRecord & { found: FoundLun[] }): Promise<void> {
  if (record.enabled) {
    // Fail whatever the dead owner left in flight, so removing the disk does not wait on it.
    try {
      await context.system.writeFile(`${record.configfsPath}/action/reset_ring`, '2');
    } catch {
      // older kernels have no reset_ring; nothing else to do
    }
  }
  await removeIscsiExports(context, record.configfsPath);
  const touchedTargets = new Map<string, string>(); // TPG → its target
  for (const lun of record.found) {
    await unlinkOptional(context, lun.linkPath);
    await removeDirectory(context, lun.lunPath);
    touchedTargets.set(lun.tpgtPath, lun.targetPath);
  }
  for (const [tpgtPath, targetPath] of touchedTargets)
    await removeTargetIfEmpty(context, targetPath, tpgtPath);
  if (touchedTargets.size > 0) await releaseFabricIfEmpty(context);
  await removeDirectory(context, record.configfsPath);
  await removeDirectoryIfUnused(context, hbaPath(context, record.hba));
}

/**
 * Removes one device this toolkit created. A device of this process is removed through its
 * {@link UserDevice}; one whose owner still runs fails with TCMU_ERR_DEVICE_IN_USE unless `force`;
 * a device not created by this toolkit fails with TCMU_ERR_NOT_OWNER, always.
 */
export async function removeDevice(options: RemoveDeviceOptions): Promise<void> {
  const name = validateDeviceName(options.name);
  const hba = options.hba === undefined ? undefined : validateHba(options.hba);
  const context = resolveRoots(options);
  const record = await locate(context, name, hba);
  const own = context.state.devices.get(record.configfsPath);
  if (own) {
    await own.remove();
    return;
  }
  if ((record.ownerAlive || record.uioHolders.length > 0) && !options.force) {
    const pid = record.ownerAlive ? record.owner?.pid : record.uioHolders.join(', ');
    throw new ConfigfsError(
      'TCMU_ERR_DEVICE_IN_USE',
      `device user_${record.hba}/${name} is in use by running process ${pid}; stop it first (or force)`,
      { path: record.configfsPath },
    );
  }
  await withLock(context, () => removeFound(context, record));
}

/** Removes every device this toolkit created whose owner process is gone. Returns what it removed. */
export async function removeStale(options: SystemRoots = {}): Promise<DeviceRecord[]> {
  const context = resolveRoots(options);
  const removed: DeviceRecord[] = [];
  for (const record of await scan(context, false)) {
    if (!record.stale || context.state.devices.has(record.configfsPath)) continue;
    await withLock(context, () => removeFound(context, record));
    removed.push(strip(record));
  }
  return removed;
}

/**
 * Takes over a device this toolkit created, after its owner restarted or crashed: blocks it, resets the
 * ring (commands in flight fail with BUSY or CHECK CONDITION so initiators retry), unblocks it, marks
 * this process as the owner (attrib/dev_config, when the kernel allows it), finds its uio device and
 * adopts its LUNs. The caller then opens the ring at `uioPath`.
 */
export async function reattachUserDevice(options: ReattachUserDeviceOptions): Promise<UserDevice> {
  const name = validateDeviceName(options.name);
  const hba = options.hba === undefined ? undefined : validateHba(options.hba);
  const uioTimeoutMs = validateTimeout('uioTimeoutMs', options.uioTimeoutMs ?? 10_000);
  const context = resolveRoots(options);
  const record = await locate(context, name, hba);
  if (context.state.devices.has(record.configfsPath)) {
    throw new ConfigfsError(
      'TCMU_ERR_DEVICE_IN_USE',
      `device user_${record.hba}/${name} is already open in this process`,
    );
  }
  const owner = await currentOwner(context.system, context.procRoot);
  const holders = record.uioHolders.filter((pid) => pid !== owner.pid);
  if (((record.ownerAlive && record.owner?.pid !== owner.pid) || holders.length > 0) && !options.force) {
    throw new ConfigfsError(
      'TCMU_ERR_DEVICE_IN_USE',
      `device user_${record.hba}/${name} belongs to running process ${record.owner?.pid} (or force)`,
      { path: record.configfsPath },
    );
  }
  if (!record.enabled) {
    throw new ConfigfsError('TCMU_ERR_NOT_FOUND', `device user_${record.hba}/${name} is not enabled`, {
      path: record.configfsPath,
    });
  }
  return withLock(context, async () => {
    const devicePath = record.configfsPath;
    const blockSize = Number(await readOptional(context, `${devicePath}/attrib/hw_block_size`)) || 512;
    await write(context, `${devicePath}/action/block_dev`, '1');
    try {
      await write(
        context,
        `${devicePath}/action/reset_ring`,
        options.resetMode === 'check-condition' ? '2' : '1',
      );
    } finally {
      await write(context, `${devicePath}/action/block_dev`, '0');
    }
    let devConfig = record.devConfig ?? formatDevConfig(name, owner);
    const newConfig = formatDevConfig(name, owner);
    if (devConfig !== newConfig && (await exists(context, `${devicePath}/attrib/dev_config`))) {
      try {
        await context.system.writeFile(`${devicePath}/attrib/dev_config`, newConfig);
        devConfig = newConfig;
      } catch {
        // kernels that refuse a new dev_config on a live device keep the old owner mark
      }
    }
    const uio = await openUio(context, record.hba, name, uioTimeoutMs);
    const device = registerDevice(context, {
      hba: record.hba,
      name,
      devicePath,
      devConfig,
      ...uio,
      size: record.size ?? 0,
      blockSize,
    });
    for (const lun of record.found) {
      if (!lun.address || !lun.blockDevice || !lun.devicePath) continue;
      device.adoptAttachment({
        wwn: lun.wwn,
        lun: lun.lun,
        address: lun.address,
        blockDevice: lun.blockDevice,
        devicePath: lun.devicePath,
        sgPath: lun.sgPath,
        linkPath: undefined,
        targetPath: lun.targetPath,
        lunPath: lun.lunPath,
        lunLinkPath: lun.linkPath,
        createdNodes: [],
      });
    }
    return device;
  });
}
