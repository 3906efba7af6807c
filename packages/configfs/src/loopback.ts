// The steps of attaching a backstore to a tcm_loop LUN, each with its own undo, and the one teardown of
// a tcm_loop target (used by a device's detach and by removeDevice/removeStale of a dead owner's device).
import { randomBytes } from 'node:crypto';
import {
  findBlockDevice,
  findGenericDevice,
  formatAddress,
  parseLoopbackAddress,
  scsiDeviceDirectory,
} from './discovery';
import { ConfigfsError, errnoCode, ioError } from './errors';
import {
  type Context,
  ensureDeviceNode,
  exists,
  mkdirInShared,
  mkdirUndoable,
  type Rollback,
  readOptional,
  removeDirectory,
  removeDirectoryIfUnused,
  symlinkUndoable,
  unlinkOptional,
  waitFor,
  write,
} from './internal';
import { lunFolders } from './luns';
import type { OwnedTarget } from './tree-state';
import type { ScsiAddress } from './types';

/** Where one LUN of a tcm_loop target lives in configfs. */
export interface LoopbackPaths {
  wwn: string;
  lun: number;
  /** `<target>/loopback`, shared by every process. */
  fabric: string;
  targetPath: string;
  tpgt: string;
  lunPath: string;
  /** The LUN's link to the backstore, named after the device. */
  lunLinkPath: string;
}

export function loopbackPaths(context: Context, wwn: string, lun: number, deviceName: string): LoopbackPaths {
  const fabric = `${context.targetRoot}/loopback`;
  const targetPath = `${fabric}/${wwn}`;
  const tpgt = `${targetPath}/tpgt_1`;
  const lunPath = `${tpgt}/lun/lun_${lun}`;
  return { wwn, lun, fabric, targetPath, tpgt, lunPath, lunLinkPath: `${lunPath}/${deviceName}` };
}

/** A random NAA-5 style WWN: `naa.5001405` + 9 hex digits (the prefix LIO uses for its own). */
export function randomWwn(): string {
  return `naa.5001405${randomBytes(5).toString('hex').slice(0, 9)}`;
}

function notOwner(paths: LoopbackPaths): ConfigfsError {
  return new ConfigfsError(
    'TCMU_ERR_NOT_OWNER',
    `tcm_loop target ${paths.wwn} exists and was not created by this process; choose another WWN`,
    { path: paths.targetPath },
  );
}

/**
 * The target to put the LUN on: one this process made (the LUN must be free), else a new one
 * ({@link makeTarget}). A target someone else made is refused: this process never adds LUNs to it.
 */
export async function claimTarget(
  context: Context,
  paths: LoopbackPaths,
  rollback: Rollback,
): Promise<OwnedTarget> {
  const owned = context.state.loopbackTargets.get(paths.targetPath);
  if (!owned) {
    await makeTarget(context, paths, rollback);
    return { luns: new Set() };
  }
  if (owned.luns.has(paths.lun) || (await exists(context, paths.lunPath))) {
    throw new ConfigfsError('TCMU_ERR_ALREADY_EXISTS', `LUN ${paths.lun} of ${paths.wwn} is already in use`, {
      path: paths.lunPath,
    });
  }
  return owned;
}

/** A new tcm_loop target: its folder (in the shared fabric folder), TPG 1 and the nexus. */
async function makeTarget(context: Context, paths: LoopbackPaths, rollback: Rollback): Promise<void> {
  if (await exists(context, paths.targetPath)) throw notOwner(paths);
  // mkdir of `loopback` loads tcm_loop on demand; other processes make and remove it too.
  try {
    await mkdirInShared(context, paths.fabric, paths.targetPath);
  } catch (error) {
    if (errnoCode((error as { cause?: unknown }).cause) !== 'EEXIST') throw error;
    throw notOwner(paths);
  } finally {
    rollback.push(async () => {
      await removeDirectoryIfUnused(context, paths.fabric);
    });
  }
  rollback.push(() => removeDirectory(context, paths.targetPath));
  await mkdirUndoable(context, paths.tpgt, rollback);
  if (!(await exists(context, `${paths.tpgt}/address`))) {
    throw new ConfigfsError(
      'TCMU_ERR_KERNEL_FEATURE_MISSING',
      'tcm_loop has no tpgt_1/address on this kernel, so the disk cannot be found; a newer kernel is needed',
      { feature: 'tcm_loop address', path: `${paths.tpgt}/address` },
    );
  }
  await write(context, `${paths.tpgt}/nexus`, randomWwn());
  rollback.push(() => context.system.writeFile(`${paths.tpgt}/nexus`, 'NULL'));
}

/**
 * Makes the LUN and links it to the backstore at `devicePath`; returns the SCSI address the kernel
 * gave it. The kernel probes the new disk during the link: the ring must be served meanwhile.
 */
export async function linkLun(
  context: Context,
  paths: LoopbackPaths,
  devicePath: string,
  rollback: Rollback,
): Promise<ScsiAddress> {
  if (!(await exists(context, `${paths.tpgt}/lun`))) {
    throw new ConfigfsError('TCMU_ERR_CONFIGFS_IO', `${paths.tpgt}/lun does not exist`, {
      path: `${paths.tpgt}/lun`,
    });
  }
  await mkdirUndoable(context, paths.lunPath, rollback);
  await symlinkUndoable(context, devicePath, paths.lunLinkPath, rollback);
  const addressText = await readOptional(context, `${paths.tpgt}/address`);
  const address = parseLoopbackAddress(addressText, paths.lun);
  if (!address) {
    throw new ConfigfsError(
      'TCMU_ERR_CONFIGFS_IO',
      `cannot parse ${paths.tpgt}/address: ${JSON.stringify(addressText)}`,
      { path: `${paths.tpgt}/address` },
    );
  }
  return address;
}

/** The disk the kernel made for the LUN, with its device nodes (and the sg node, when sg is loaded). */
export interface LoopbackDisk {
  blockDevice: string;
  /** `<devRoot>/<blockDevice>`. */
  devicePath: string;
  sgPath: string | undefined;
  /** The nodes this process made with mknod (removed at detach). */
  createdNodes: string[];
}

/**
 * Waits for the SCSI disk at `address`, then makes sure its block node (and its sg node) exist,
 * making them with mknod when nothing else does.
 */
export async function findDisk(
  context: Context,
  address: ScsiAddress,
  timeoutMs: number,
  rollback: Rollback,
): Promise<LoopbackDisk> {
  const blockDevice = await waitFor(
    () => findBlockDevice(context, address),
    timeoutMs,
    () =>
      new ConfigfsError(
        'TCMU_ERR_TIMEOUT',
        `no disk appeared for SCSI address ${formatAddress(address)} within ${timeoutMs} ms (is sd_mod loaded, is the ring served?)`,
        { path: `${scsiDeviceDirectory(context, address)}/block` },
      ),
  );
  const scsiDirectory = scsiDeviceDirectory(context, address);
  const createdNodes: string[] = [];
  const node = async (name: string, folder: string, type: 'block' | 'character') => {
    const made = await ensureDeviceNode(context, name, `${scsiDirectory}/${folder}/${name}`, type);
    if (made.created) {
      createdNodes.push(made.path);
      rollback.push(() => unlinkOptional(context, made.path));
    }
    return made.path;
  };
  const devicePath = await node(blockDevice, 'block', 'block');
  const generic = await findGenericDevice(context, address);
  const sgPath = generic === undefined ? undefined : await node(generic, 'scsi_generic', 'character');
  return { blockDevice, devicePath, sgPath, createdNodes };
}

/** Makes the stable link `<linkDirectory>/<linkName>` → the disk; refuses to replace anything there. */
export async function makeStableLink(
  context: Context,
  linkDirectory: string | undefined,
  linkName: string,
  diskPath: string,
  rollback: Rollback,
): Promise<string | undefined> {
  if (linkDirectory === undefined) return undefined;
  const linkPath = `${linkDirectory}/${linkName}`;
  if ((await context.system.kind(linkPath)) !== undefined) {
    throw new ConfigfsError('TCMU_ERR_ALREADY_EXISTS', `${linkPath} already exists`, { path: linkPath });
  }
  await symlinkUndoable(context, diskPath, linkPath, rollback);
  return linkPath;
}

/**
 * Removes a tcm_loop target whose LUNs are all gone: clears its nexus, removes TPG and target, and
 * returns true. Returns false, touching nothing, when a LUN remains (someone else's: theirs to remove).
 * A LUN added meanwhile keeps the TPG (EBUSY/ENOTEMPTY) and a TPG keeps the target.
 */
export async function removeTargetIfEmpty(
  context: Context,
  targetPath: string,
  tpgt: string,
): Promise<boolean> {
  if ((await lunFolders(context, tpgt)).length > 0) return false;
  const nexus = await readOptional(context, `${tpgt}/nexus`);
  if (nexus !== undefined && nexus !== '' && nexus !== 'NULL') {
    try {
      await context.system.writeFile(`${tpgt}/nexus`, 'NULL');
    } catch (error) {
      if (errnoCode(error) !== 'ENODEV') throw ioError('write "NULL" to', `${tpgt}/nexus`, error);
    }
  }
  if (await removeDirectoryIfUnused(context, tpgt)) await removeDirectoryIfUnused(context, targetPath);
  return true;
}

/**
 * Removes the `loopback` fabric folder once no target is left in it, whoever made it (it comes back on
 * the next mkdir). No check first: rmdir itself fails with ENOTEMPTY while a target exists.
 */
export async function releaseFabricIfEmpty(context: Context): Promise<void> {
  await removeDirectoryIfUnused(context, `${context.targetRoot}/loopback`);
}
