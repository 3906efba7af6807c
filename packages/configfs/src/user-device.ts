import { randomBytes } from 'node:crypto';
import {
  ensureUioNode,
  findBlockDevice,
  findGenericDevice,
  findUio,
  formatAddress,
  parseLoopbackAddress,
  readMapSize,
  scsiDeviceDirectory,
} from './discovery';
import { ConfigfsError, errnoCode, ioError } from './errors';
import {
  type Context,
  ensureDeviceNode,
  exists,
  mkdir,
  mkdirInShared,
  Rollback,
  readdirOptional,
  readOptional,
  removeDirectory,
  removeDirectoryIfUnused,
  resolveRoots,
  unlinkOptional,
  waitFor,
  withLock,
  write,
} from './internal';
import { currentOwner, formatDevConfig } from './ownership';
import type {
  AttachLoopbackOptions,
  CreateUserDeviceOptions,
  LoopbackAttachment,
  ResizeResult,
  ScsiAddress,
  UserDevice,
} from './types';
import {
  MAX_DEV_CONFIG_LENGTH,
  validateAttribute,
  validateBlockSize,
  validateDeviceName,
  validateHba,
  validateLinkDirectory,
  validateLinkName,
  validateLun,
  validatePositiveInteger,
  validateSerial,
  validateSize,
  validateTimeout,
  validateWwn,
} from './validate';

/**
 * Shared folders (an HBA `core/user_N`, the `loopback` fabric folder) are not owned by the process that
 * made them: any number of processes create devices in them at once. Creating treats "already exists"
 * as success ({@link mkdirInShared}); whoever removes a device or target tries to remove its shared
 * folder and the last user succeeds ({@link removeDirectoryIfUnused}: ENOTEMPTY/EBUSY/ENOENT mean
 * "still used" or "already gone"). So an empty HBA or `loopback` folder (which holds no configuration)
 * is removed with the last toolkit device in it, whoever made it; one holding anyone else's device is
 * never removed. Reattach used to adopt the HBA; with this rule there is nothing to adopt.
 */
export function adoptHba(_context: Context, _hba: number): void {}

/** tcm_loop targets this process created, with the LUNs it put there. */
interface OwnedTarget {
  luns: Set<number>;
}
const ownedTargets = new Map<string, OwnedTarget>();

/** Devices this process created or reattached and has not removed, by configfs path. */
export const liveDevices = new Map<string, UserDeviceImpl>();

/** A random NAA-5 style WWN: `naa.5001405` + 9 hex digits (the prefix LIO uses for its own). */
export function randomWwn(): string {
  return `naa.5001405${randomBytes(5).toString('hex').slice(0, 9)}`;
}

function hbaPath(context: Context, hba: number): string {
  return `${context.targetRoot}/core/user_${hba}`;
}

async function requireAttribute(context: Context, devicePath: string, attribute: string, feature: string) {
  if (!(await exists(context, `${devicePath}/attrib/${attribute}`))) {
    throw new ConfigfsError(
      'TCMU_ERR_KERNEL_FEATURE_MISSING',
      `this kernel has no ${feature} (attrib/${attribute} does not exist); a newer kernel is needed`,
      { feature: attribute, path: `${devicePath}/attrib/${attribute}` },
    );
  }
}

/**
 * Creates a TCMU user backstore, enables it and finds its uio device. Validates every input before
 * touching configfs; on any failure removes everything it made. Writes, one per write(2): dev_config
 * (the ownership mark `tcmu-ts/<name>/<pid>/<start>`), `nl_reply_supported=-1` (so a running
 * tcmu-runner can never make enable hang), dev_size, hw_block_size, then the optional tokens,
 * `wwn/vpd_unit_serial`, the attributes, and `enable`.
 */
export async function createUserDevice(options: CreateUserDeviceOptions): Promise<UserDevice> {
  const hba = validateHba(options.hba ?? 0);
  const name = validateDeviceName(options.name);
  const blockSize = validateBlockSize(options.blockSize);
  const size = validateSize(options.size, blockSize);
  const serial = validateSerial(options.serial);
  const maxSectors =
    options.maxSectors === undefined
      ? undefined
      : validatePositiveInteger('maxSectors', options.maxSectors, 65_535);
  const maxDataAreaMb =
    options.maxDataAreaMb === undefined
      ? undefined
      : validatePositiveInteger('maxDataAreaMb', options.maxDataAreaMb, 1 << 20);
  const dataPagesPerBlock =
    options.dataPagesPerBlock === undefined
      ? undefined
      : validatePositiveInteger('dataPagesPerBlock', options.dataPagesPerBlock, 1 << 16);
  const commandRingSizeMb =
    options.commandRingSizeMb === undefined
      ? undefined
      : validatePositiveInteger('commandRingSizeMb', options.commandRingSizeMb, 1 << 16);
  const attributes = Object.entries(options.attributes ?? {}).map(([key, value]) =>
    validateAttribute(key, value),
  );
  const uioTimeoutMs = validateTimeout('uioTimeoutMs', options.uioTimeoutMs ?? 10_000);
  const context = resolveRoots(options);
  const devConfig = formatDevConfig(name, await currentOwner(context.system, context.procRoot));
  if (devConfig.length > MAX_DEV_CONFIG_LENGTH) {
    throw new ConfigfsError(
      'TCMU_ERR_INVALID_NAME',
      `dev_config "${devConfig}" is longer than 255 characters`,
    );
  }

  return withLock(context, async () => {
    const rollback = new Rollback();
    try {
      if (!(await exists(context, `${context.targetRoot}/core`))) {
        throw new ConfigfsError(
          'TCMU_ERR_CONFIGFS_NOT_MOUNTED',
          `${context.targetRoot}/core does not exist: configfs is not mounted or target_core_mod is not loaded (run preflight())`,
          { path: `${context.targetRoot}/core` },
        );
      }
      const hbaDirectory = hbaPath(context, hba);
      const devicePath = `${hbaDirectory}/${name}`;
      const alreadyExists = () =>
        new ConfigfsError('TCMU_ERR_ALREADY_EXISTS', `device user_${hba}/${name} already exists`, {
          path: devicePath,
        });
      if (await exists(context, devicePath)) throw alreadyExists();
      // Other processes may create (EEXIST) or remove (last user) the HBA at the same moment.
      try {
        await mkdirInShared(context, hbaDirectory, devicePath);
      } catch (error) {
        if (errnoCode((error as { cause?: unknown }).cause) === 'EEXIST') throw alreadyExists();
        throw error;
      } finally {
        rollback.push(async () => {
          await removeDirectoryIfUnused(context, hbaDirectory);
        });
      }
      rollback.push(() => removeDirectory(context, devicePath));

      await requireAttribute(context, devicePath, 'nl_reply_supported', 'netlink reply opt-out');
      if (commandRingSizeMb !== undefined) {
        await requireAttribute(context, devicePath, 'cmd_ring_size_mb', 'command ring size setting');
      }
      if (dataPagesPerBlock !== undefined) {
        await requireAttribute(context, devicePath, 'data_pages_per_blk', 'data pages per block setting');
      }
      for (const attribute of attributes) {
        await requireAttribute(context, devicePath, attribute.name, `attribute ${attribute.name}`);
      }

      const control = `${devicePath}/control`;
      // The ownership mark first, so that even a crash right here leaves a device removeStale() knows.
      await write(context, control, `dev_config=${devConfig}`);
      await write(context, control, 'nl_reply_supported=-1');
      await write(context, control, `dev_size=${size}`);
      await write(context, control, `hw_block_size=${blockSize}`);
      if (maxSectors !== undefined) await write(context, control, `hw_max_sectors=${maxSectors}`);
      if (maxDataAreaMb !== undefined) await write(context, control, `max_data_area_mb=${maxDataAreaMb}`);
      if (dataPagesPerBlock !== undefined)
        await write(context, control, `data_pages_per_blk=${dataPagesPerBlock}`);
      if (commandRingSizeMb !== undefined)
        await write(context, control, `cmd_ring_size_mb=${commandRingSizeMb}`);
      await write(context, `${devicePath}/wwn/vpd_unit_serial`, serial);
      for (const attribute of attributes) {
        await write(context, `${devicePath}/attrib/${attribute.name}`, attribute.text);
      }
      await write(context, `${devicePath}/enable`, '1');

      const uio = await waitFor(
        () => findUio(context, hba, name),
        uioTimeoutMs,
        () =>
          new ConfigfsError(
            'TCMU_ERR_TIMEOUT',
            `the kernel made no uio device for user_${hba}/${name} within ${uioTimeoutMs} ms (is the uio module loaded?)`,
            { path: `${context.sysfsRoot}/class/uio` },
          ),
      );
      const mapSize = await readMapSize(context, uio);
      if (mapSize === undefined) {
        throw new ConfigfsError('TCMU_ERR_CONFIGFS_IO', `cannot read the map size of ${uio}`, {
          path: `${context.sysfsRoot}/class/uio/${uio}/maps/map0/size`,
        });
      }
      const node = await ensureUioNode(context, uio);
      if (node.created) rollback.push(() => unlinkOptional(context, node.path));

      const device = new UserDeviceImpl(context, {
        hba,
        name,
        devicePath,
        devConfig,
        uio,
        uioPath: node.path,
        uioNodeCreated: node.created,
        mapSize,
        size,
        blockSize,
      });
      liveDevices.set(devicePath, device);
      return device;
    } catch (error) {
      return rollback.fail(error);
    }
  });
}

export interface DeviceState {
  hba: number;
  name: string;
  devicePath: string;
  devConfig: string;
  uio: string;
  uioPath: string;
  uioNodeCreated: boolean;
  mapSize: number;
  size: number;
  blockSize: number;
}

class Attachment implements LoopbackAttachment {
  readonly wwn: string;
  readonly lun: number;
  readonly address: ScsiAddress;
  readonly blockDevice: string;
  readonly devicePath: string;
  readonly sgPath: string | undefined;
  readonly linkPath: string | undefined;
  /** Set by the device: detaches under its lock. */
  readonly targetPath: string;
  readonly lunPath: string;
  readonly lunLinkPath: string;
  readonly createdNodes: string[];
  readonly owner: UserDeviceImpl;

  constructor(fields: Omit<Attachment, 'detach'>) {
    this.wwn = fields.wwn;
    this.lun = fields.lun;
    this.address = fields.address;
    this.blockDevice = fields.blockDevice;
    this.devicePath = fields.devicePath;
    this.sgPath = fields.sgPath;
    this.linkPath = fields.linkPath;
    this.targetPath = fields.targetPath;
    this.lunPath = fields.lunPath;
    this.lunLinkPath = fields.lunLinkPath;
    this.createdNodes = fields.createdNodes;
    this.owner = fields.owner;
  }

  detach(): Promise<void> {
    return this.owner.detachOne(this);
  }
}

/**
 * Tears down the tcm_loop target of `targetPath` if this process created it and no LUN remains, then
 * the `loopback` folder if that was its last target (whoever made it: see {@link adoptHba}).
 */
async function releaseTarget(context: Context, targetPath: string, lun: number): Promise<void> {
  const owned = ownedTargets.get(targetPath);
  if (!owned) return;
  owned.luns.delete(lun);
  if (owned.luns.size > 0) return;
  const tpgt = `${targetPath}/tpgt_1`;
  const remaining = (await readdirOptional(context, `${tpgt}/lun`)).filter((entry) =>
    /^lun_\d+$/.test(entry),
  );
  if (remaining.length > 0) {
    // Someone else put LUNs on it: leave the target to them.
    ownedTargets.delete(targetPath);
    return;
  }
  if (await exists(context, `${tpgt}/nexus`)) {
    const nexus = await readOptional(context, `${tpgt}/nexus`);
    if (nexus !== undefined && nexus !== '' && nexus !== 'NULL') {
      try {
        await context.system.writeFile(`${tpgt}/nexus`, 'NULL');
      } catch (error) {
        if (errnoCode(error) !== 'ENODEV') throw ioError('write "NULL" to', `${tpgt}/nexus`, error);
      }
    }
  }
  // A LUN someone added meanwhile keeps the target (EBUSY/ENOTEMPTY): it is theirs to remove.
  if (await removeDirectoryIfUnused(context, tpgt)) await removeDirectoryIfUnused(context, targetPath);
  ownedTargets.delete(targetPath);
  await removeDirectoryIfUnused(context, `${context.targetRoot}/loopback`);
}

export class UserDeviceImpl implements UserDevice {
  readonly #context: Context;
  readonly #state: DeviceState;
  #attachments: Attachment[] = [];
  #removed = false;

  constructor(context: Context, state: DeviceState) {
    this.#context = context;
    this.#state = state;
  }

  get hba() {
    return this.#state.hba;
  }
  get name() {
    return this.#state.name;
  }
  get configfsPath() {
    return this.#state.devicePath;
  }
  get devConfig() {
    return this.#state.devConfig;
  }
  get uio() {
    return this.#state.uio;
  }
  get uioPath() {
    return this.#state.uioPath;
  }
  get mapSize() {
    return this.#state.mapSize;
  }
  get size() {
    return this.#state.size;
  }
  get blockSize() {
    return this.#state.blockSize;
  }
  get attachments(): readonly LoopbackAttachment[] {
    return [...this.#attachments];
  }

  #checkLive(): void {
    if (this.#removed) {
      throw new ConfigfsError('TCMU_ERR_REMOVED', `device user_${this.hba}/${this.name} was removed`);
    }
  }

  /** Adopts LUNs found in configfs (reattach): they are detached by `remove()`. */
  adoptAttachment(fields: Omit<Attachment, 'detach' | 'owner'>): void {
    this.#attachments.push(new Attachment({ ...fields, owner: this }));
    // Adopted from a dead owner: its target (and an emptied fabric folder) become ours to remove.
    const owned = ownedTargets.get(fields.targetPath) ?? { luns: new Set<number>() };
    owned.luns.add(fields.lun);
    ownedTargets.set(fields.targetPath, owned);
  }

  async attachLoopback(options: AttachLoopbackOptions = {}): Promise<LoopbackAttachment> {
    const lun = validateLun(options.lun ?? 0);
    const wwn = options.wwn === undefined ? randomWwn() : validateWwn(options.wwn);
    const timeoutMs = validateTimeout('timeoutMs', options.timeoutMs ?? 30_000);
    const linkDirectory =
      options.linkDirectory === undefined ? undefined : validateLinkDirectory(options.linkDirectory);
    const linkName = validateLinkName(options.linkName ?? (lun === 0 ? this.name : `${this.name}-lun${lun}`));
    const context = this.#context;

    return withLock(context, async () => {
      this.#checkLive();
      const rollback = new Rollback();
      const fabric = `${context.targetRoot}/loopback`;
      const targetPath = `${fabric}/${wwn}`;
      const tpgt = `${targetPath}/tpgt_1`;
      const lunPath = `${tpgt}/lun/lun_${lun}`;
      const lunLinkPath = `${lunPath}/${this.name}`;
      let owned = ownedTargets.get(targetPath);
      const createdNodes: string[] = [];
      try {
        if (!owned) {
          if (await exists(context, targetPath)) {
            throw new ConfigfsError(
              'TCMU_ERR_NOT_OWNER',
              `tcm_loop target ${wwn} exists and was not created by this process; choose another WWN`,
              { path: targetPath },
            );
          }
          const fresh: OwnedTarget = { luns: new Set() };
          // mkdir of `loopback` loads tcm_loop on demand; other processes make and remove it too.
          try {
            await mkdirInShared(context, fabric, targetPath);
          } catch (error) {
            if (errnoCode((error as { cause?: unknown }).cause) !== 'EEXIST') throw error;
            throw new ConfigfsError(
              'TCMU_ERR_NOT_OWNER',
              `tcm_loop target ${wwn} exists and was not created by this process; choose another WWN`,
              { path: targetPath },
            );
          } finally {
            rollback.push(async () => {
              await removeDirectoryIfUnused(context, fabric);
            });
          }
          rollback.push(() => removeDirectory(context, targetPath));
          await mkdir(context, tpgt);
          rollback.push(() => removeDirectory(context, tpgt));
          if (!(await exists(context, `${tpgt}/address`))) {
            throw new ConfigfsError(
              'TCMU_ERR_KERNEL_FEATURE_MISSING',
              'tcm_loop has no tpgt_1/address on this kernel, so the disk cannot be found; a newer kernel is needed',
              { feature: 'tcm_loop address', path: `${tpgt}/address` },
            );
          }
          await write(context, `${tpgt}/nexus`, randomWwn());
          rollback.push(() => context.system.writeFile(`${tpgt}/nexus`, 'NULL'));
          owned = fresh;
        } else if (owned.luns.has(lun) || (await exists(context, lunPath))) {
          throw new ConfigfsError('TCMU_ERR_ALREADY_EXISTS', `LUN ${lun} of ${wwn} is already in use`, {
            path: lunPath,
          });
        }
        if (!(await exists(context, `${tpgt}/lun`))) {
          throw new ConfigfsError('TCMU_ERR_CONFIGFS_IO', `${tpgt}/lun does not exist`, {
            path: `${tpgt}/lun`,
          });
        }
        await mkdir(context, lunPath);
        rollback.push(() => removeDirectory(context, lunPath));
        try {
          // The kernel probes the new disk during this call: the ring must be served meanwhile.
          await context.system.symlink(this.configfsPath, lunLinkPath);
        } catch (error) {
          throw ioError('symlink', lunLinkPath, error);
        }
        rollback.push(() => unlinkOptional(context, lunLinkPath));

        const addressText = await readOptional(context, `${tpgt}/address`);
        const address = parseLoopbackAddress(addressText, lun);
        if (!address) {
          throw new ConfigfsError(
            'TCMU_ERR_CONFIGFS_IO',
            `cannot parse ${tpgt}/address: ${JSON.stringify(addressText)}`,
            {
              path: `${tpgt}/address`,
            },
          );
        }
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
        const disk = await ensureDeviceNode(
          context,
          blockDevice,
          `${scsiDirectory}/block/${blockDevice}`,
          'block',
        );
        if (disk.created) {
          createdNodes.push(disk.path);
          rollback.push(() => unlinkOptional(context, disk.path));
        }
        let sgPath: string | undefined;
        const generic = await findGenericDevice(context, address);
        if (generic !== undefined) {
          const node = await ensureDeviceNode(
            context,
            generic,
            `${scsiDirectory}/scsi_generic/${generic}`,
            'character',
          );
          sgPath = node.path;
          if (node.created) {
            createdNodes.push(node.path);
            rollback.push(() => unlinkOptional(context, node.path));
          }
        }
        let linkPath: string | undefined;
        if (linkDirectory !== undefined) {
          linkPath = `${linkDirectory}/${linkName}`;
          if ((await context.system.kind(linkPath)) !== undefined) {
            throw new ConfigfsError('TCMU_ERR_ALREADY_EXISTS', `${linkPath} already exists`, {
              path: linkPath,
            });
          }
          try {
            await context.system.symlink(disk.path, linkPath);
          } catch (error) {
            throw ioError('symlink', linkPath, error);
          }
        }
        owned.luns.add(lun);
        ownedTargets.set(targetPath, owned);
        const attachment = new Attachment({
          wwn,
          lun,
          address,
          blockDevice,
          devicePath: disk.path,
          sgPath,
          linkPath,
          targetPath,
          lunPath,
          lunLinkPath,
          createdNodes,
          owner: this,
        });
        this.#attachments.push(attachment);
        return attachment;
      } catch (error) {
        return rollback.fail(error);
      }
    });
  }

  /** Detaches one attachment; the caller holds no lock. */
  detachOne(attachment: Attachment): Promise<void> {
    return withLock(this.#context, () => this.#detachLocked(attachment));
  }

  async #detachLocked(attachment: Attachment): Promise<void> {
    const index = this.#attachments.indexOf(attachment);
    if (index < 0) return;
    const context = this.#context;
    if (attachment.linkPath !== undefined) {
      try {
        if ((await context.system.readlink(attachment.linkPath)) === attachment.devicePath) {
          await unlinkOptional(context, attachment.linkPath);
        }
      } catch {
        // gone or replaced by someone else: leave it
      }
    }
    // The kernel removes the disk during this unlink (sd may send SYNCHRONIZE CACHE).
    await unlinkOptional(context, attachment.lunLinkPath);
    await removeDirectory(context, attachment.lunPath);
    for (const node of attachment.createdNodes) await unlinkOptional(context, node);
    await releaseTarget(context, attachment.targetPath, attachment.lun);
    this.#attachments.splice(this.#attachments.indexOf(attachment), 1);
  }

  async detachLoopback(): Promise<void> {
    await withLock(this.#context, async () => {
      for (const attachment of [...this.#attachments].reverse()) await this.#detachLocked(attachment);
    });
  }

  async resize(size: number | bigint): Promise<ResizeResult> {
    const bytes = validateSize(size, this.blockSize);
    return withLock(this.#context, async () => {
      this.#checkLive();
      let kernelUpdated = true;
      const system = this.#context.system;
      // Listen to TCM-USER/config while writing: the kernel multicasts RECONFIG_DEVICE and, with no
      // listener, refuses the write (ESRCH). nl_reply_supported=-1 means it does not wait for a reply.
      const membership = await system.joinNetlinkGroup?.('TCM-USER', 'config').catch(() => undefined);
      try {
        await system.writeFile(`${this.configfsPath}/attrib/dev_size`, String(bytes));
      } catch (error) {
        // ESRCH: the kernel could not announce the change (no netlink listener) and kept its figure.
        if (errnoCode(error) !== 'ESRCH')
          throw ioError(`write "${bytes}" to`, `${this.configfsPath}/attrib/dev_size`, error);
        kernelUpdated = false;
      } finally {
        try {
          membership?.close();
        } catch {
          // closing a socket cannot usefully fail here
        }
      }
      this.#state.size = bytes;
      return { size: bytes, kernelUpdated };
    });
  }

  async setBlocked(blocked: boolean): Promise<void> {
    this.#checkLive();
    await write(this.#context, `${this.configfsPath}/action/block_dev`, blocked ? '1' : '0');
  }

  async resetRing(mode: 'busy' | 'check-condition' = 'busy'): Promise<void> {
    this.#checkLive();
    await write(this.#context, `${this.configfsPath}/action/reset_ring`, mode === 'busy' ? '1' : '2');
  }

  async remove(): Promise<void> {
    await withLock(this.#context, async () => {
      if (this.#removed) return;
      for (const attachment of [...this.#attachments].reverse()) await this.#detachLocked(attachment);
      const context = this.#context;
      if (this.#state.uioNodeCreated) await unlinkOptional(context, this.#state.uioPath);
      await removeDirectory(context, this.configfsPath);
      this.#removed = true;
      liveDevices.delete(this.configfsPath);
      // The last device out removes the HBA, whichever process made it (see adoptHba).
      await removeDirectoryIfUnused(context, hbaPath(context, this.hba));
    });
  }
}
