import {
  ensureUioNode,
  findBlockDevice,
  findGenericDevice,
  findUio,
  parseLoopbackAddress,
  readMapSize,
} from './discovery';
import { ConfigfsError, errnoCode, ioError } from './errors';
import {
  type Context,
  exists,
  readdirOptional,
  readOptional,
  removeDirectory,
  removeDirectoryIfUnused,
  resolveLinkTarget,
  resolveRoots,
  unlinkOptional,
  waitFor,
  withLock,
  write,
} from './internal';
import { findIscsiExports, removeIscsiExports } from './iscsi';
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
import { adoptHba, liveDevices, UserDeviceImpl } from './user-device';
import { validateDeviceName, validateHba, validateTimeout } from './validate';

interface FoundLun extends LunRecord {
  lunPath: string;
  linkPath: string;
  targetPath: string;
  tpgtPath: string;
}

/** Every tcm_loop LUN whose link points at the device `devicePath`. */
async function findLuns(context: Context, devicePath: string): Promise<FoundLun[]> {
  const found: FoundLun[] = [];
  const fabric = `${context.targetRoot}/loopback`;
  // configfs link targets are reported relative to the link; compare from `target/` on.
  const wanted = devicePath.slice(context.targetRoot.length);
  for (const wwn of await readdirOptional(context, fabric)) {
    if (!wwn.startsWith('naa.')) continue;
    const targetPath = `${fabric}/${wwn}`;
    for (const tpgtName of await readdirOptional(context, targetPath)) {
      const tpgtMatch = /^tpgt_(\d+)$/.exec(tpgtName);
      if (!tpgtMatch) continue;
      const tpgtPath = `${targetPath}/${tpgtName}`;
      for (const lunName of await readdirOptional(context, `${tpgtPath}/lun`)) {
        const lunMatch = /^lun_(\d+)$/.exec(lunName);
        if (!lunMatch) continue;
        const lunPath = `${tpgtPath}/lun/${lunName}`;
        for (const entry of await readdirOptional(context, lunPath)) {
          const linkPath = `${lunPath}/${entry}`;
          if ((await context.system.kind(linkPath)) !== 'symlink') continue;
          let target: string;
          try {
            target = resolveLinkTarget(linkPath, await context.system.readlink(linkPath));
          } catch {
            continue;
          }
          const targetIndex = target.lastIndexOf('/target/core/');
          const relative = targetIndex >= 0 ? target.slice(targetIndex + '/target'.length) : target;
          if (relative !== wanted && target !== devicePath) continue;
          const lun = Number(lunMatch[1]);
          const address = parseLoopbackAddress(await readOptional(context, `${tpgtPath}/address`), lun);
          const blockDevice = address ? await findBlockDevice(context, address) : undefined;
          const generic = address ? await findGenericDevice(context, address) : undefined;
          found.push({
            wwn,
            tpgt: Number(tpgtMatch[1]),
            lun,
            address,
            blockDevice,
            devicePath: blockDevice === undefined ? undefined : `${context.devRoot}/${blockDevice}`,
            sgPath: generic === undefined ? undefined : `${context.devRoot}/${generic}`,
            lunPath,
            linkPath,
            targetPath,
            tpgtPath,
          });
        }
      }
    }
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

/**
 * Removes the `loopback` fabric folder once no target is left in it (it comes back on the next mkdir).
 * No check first: rmdir itself fails with ENOTEMPTY while a target exists, even one made a moment ago.
 */
async function releaseFabricIfEmpty(context: Context): Promise<void> {
  await removeDirectoryIfUnused(context, `${context.targetRoot}/loopback`);
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
  const touchedTargets = new Set<string>();
  for (const lun of record.found) {
    await unlinkOptional(context, lun.linkPath);
    await removeDirectory(context, lun.lunPath);
    touchedTargets.add(`${lun.targetPath}\n${lun.tpgtPath}`);
  }
  for (const key of touchedTargets) {
    const [targetPath, tpgtPath] = key.split('\n') as [string, string];
    if ((await readdirOptional(context, `${tpgtPath}/lun`)).some((entry) => /^lun_\d+$/.test(entry)))
      continue;
    const nexus = await readOptional(context, `${tpgtPath}/nexus`);
    if (nexus !== undefined && nexus !== '' && nexus !== 'NULL') {
      try {
        await context.system.writeFile(`${tpgtPath}/nexus`, 'NULL');
      } catch (error) {
        if (errnoCode(error) !== 'ENODEV') throw ioError('write "NULL" to', `${tpgtPath}/nexus`, error);
      }
    }
    // A LUN added since the check keeps the tpgt (EBUSY/ENOTEMPTY), and a tpgt keeps the target.
    if (await removeDirectoryIfUnused(context, tpgtPath)) await removeDirectoryIfUnused(context, targetPath);
  }
  if (touchedTargets.size > 0) await releaseFabricIfEmpty(context);
  await removeDirectory(context, record.configfsPath);
  await removeDirectoryIfUnused(context, `${context.targetRoot}/core/user_${record.hba}`);
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
  const own = liveDevices.get(record.configfsPath);
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
    if (!record.stale || liveDevices.has(record.configfsPath)) continue;
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
  if (liveDevices.has(record.configfsPath)) {
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
    const uio = await waitFor(
      () => findUio(context, record.hba, name),
      uioTimeoutMs,
      () => new ConfigfsError('TCMU_ERR_TIMEOUT', `no uio device for user_${record.hba}/${name}`),
    );
    const mapSize = await readMapSize(context, uio);
    if (mapSize === undefined) {
      throw new ConfigfsError('TCMU_ERR_CONFIGFS_IO', `cannot read the map size of ${uio}`);
    }
    const node = await ensureUioNode(context, uio);
    const device = new UserDeviceImpl(context, {
      hba: record.hba,
      name,
      devicePath,
      devConfig,
      uio,
      uioPath: node.path,
      uioNodeCreated: node.created,
      mapSize,
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
    adoptHba(context, record.hba);
    liveDevices.set(devicePath, device);
    return device;
  });
}
