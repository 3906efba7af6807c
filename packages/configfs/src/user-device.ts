import { ensureUioNode, findUio, readMapSize } from './discovery';
import { ConfigfsError, errnoCode, ioError } from './errors';
import {
  type Context,
  exists,
  mkdirInShared,
  type Rollback,
  removeDirectory,
  removeDirectoryIfUnused,
  resolveRoots,
  transaction,
  unlinkOptional,
  waitFor,
  withLock,
  write,
} from './internal';
import {
  claimTarget,
  findDisk,
  type LoopbackDisk,
  type LoopbackPaths,
  linkLun,
  loopbackPaths,
  makeStableLink,
  randomWwn,
  releaseFabricIfEmpty,
  removeTargetIfEmpty,
} from './loopback';
import { currentOwner, formatDevConfig } from './ownership';
import type { OwnedTarget } from './tree-state';
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

export { randomWwn };

// Shared folders (an HBA `core/user_N`, the `loopback` fabric folder) are not owned by the process that
// made them: any number of processes create devices in them at once. Creating treats "already exists"
// as success (mkdirInShared); whoever removes a device or target tries to remove its shared folder and
// the last user succeeds (removeDirectoryIfUnused: ENOTEMPTY/EBUSY/ENOENT mean "still used" or
// "already gone"). So an empty HBA or `loopback` folder (which holds no configuration) is removed with
// the last toolkit device in it, whoever made it; one holding anyone else's device is never removed.
// Reattach therefore adopts no HBA.

export function hbaPath(context: Context, hba: number): string {
  return `${context.targetRoot}/core/user_${hba}`;
}

/** createUserDevice's options, validated. */
interface UserDeviceRequest {
  hba: number;
  name: string;
  blockSize: number;
  size: number;
  serial: string;
  maxSectors: number | undefined;
  maxDataAreaMb: number | undefined;
  dataPagesPerBlock: number | undefined;
  commandRingSizeMb: number | undefined;
  attributes: Array<{ name: string; text: string }>;
  uioTimeoutMs: number;
}

/**
 * Creates a TCMU user backstore, enables it and finds its uio device. Validates every input before
 * touching configfs; on any failure removes everything it made, in reverse order. Writes, one per
 * write(2): dev_config (the ownership mark `tcmu-ts/<name>/<pid>/<start>`), `nl_reply_supported=-1`
 * (so a running tcmu-runner can never make enable hang), dev_size, hw_block_size, then the optional
 * tokens, `wwn/vpd_unit_serial`, the attributes, and `enable`.
 */
export async function createUserDevice(options: CreateUserDeviceOptions): Promise<UserDevice> {
  const request = validateUserDeviceRequest(options);
  const context = resolveRoots(options);
  const devConfig = await ownershipMark(context, request.name);
  return withLock(context, () =>
    transaction(async (rollback) => {
      await requireConfigfs(context);
      const devicePath = await makeDeviceFolder(context, request.hba, request.name, rollback);
      await requireKernelFeatures(context, devicePath, request);
      await writeControl(context, devicePath, controlTokens(devConfig, request));
      await writeSerialAndAttributes(context, devicePath, request);
      await write(context, `${devicePath}/enable`, '1');
      const uio = await openUio(context, request.hba, request.name, request.uioTimeoutMs, rollback);
      const { hba, name, size, blockSize } = request;
      return registerDevice(context, { hba, name, size, blockSize, devicePath, devConfig, ...uio });
    }),
  );
}

function validateUserDeviceRequest(options: CreateUserDeviceOptions): UserDeviceRequest {
  // In the order the options are documented: with several bad ones, the first is reported.
  const hba = validateHba(options.hba ?? 0);
  const name = validateDeviceName(options.name);
  const blockSize = validateBlockSize(options.blockSize);
  const optional = (what: string, value: number | undefined, max: number) =>
    value === undefined ? undefined : validatePositiveInteger(what, value, max);
  return {
    hba,
    name,
    blockSize,
    size: validateSize(options.size, blockSize),
    serial: validateSerial(options.serial),
    maxSectors: optional('maxSectors', options.maxSectors, 65_535),
    maxDataAreaMb: optional('maxDataAreaMb', options.maxDataAreaMb, 1 << 20),
    dataPagesPerBlock: optional('dataPagesPerBlock', options.dataPagesPerBlock, 1 << 16),
    commandRingSizeMb: optional('commandRingSizeMb', options.commandRingSizeMb, 1 << 16),
    attributes: Object.entries(options.attributes ?? {}).map(([key, value]) => validateAttribute(key, value)),
    uioTimeoutMs: validateTimeout('uioTimeoutMs', options.uioTimeoutMs ?? 10_000),
  };
}

/** The dev_config that marks the device as this process's (checked before anything is touched). */
async function ownershipMark(context: Context, name: string): Promise<string> {
  const devConfig = formatDevConfig(name, await currentOwner(context.system, context.procRoot));
  if (devConfig.length > MAX_DEV_CONFIG_LENGTH) {
    throw new ConfigfsError(
      'TCMU_ERR_INVALID_NAME',
      `dev_config "${devConfig}" is longer than 255 characters`,
    );
  }
  return devConfig;
}

async function requireConfigfs(context: Context): Promise<void> {
  if (!(await exists(context, `${context.targetRoot}/core`))) {
    throw new ConfigfsError(
      'TCMU_ERR_CONFIGFS_NOT_MOUNTED',
      `${context.targetRoot}/core does not exist: configfs is not mounted or target_core_mod is not loaded (run preflight())`,
      { path: `${context.targetRoot}/core` },
    );
  }
}

/**
 * Makes `core/user_<hba>/<name>`, and the HBA folder when missing. Other processes may create
 * (EEXIST) or remove (last user) the HBA at the same moment; the undo removes the HBA only when
 * nothing else is left in it.
 */
async function makeDeviceFolder(
  context: Context,
  hba: number,
  name: string,
  rollback: Rollback,
): Promise<string> {
  const hbaDirectory = hbaPath(context, hba);
  const devicePath = `${hbaDirectory}/${name}`;
  const alreadyExists = () =>
    new ConfigfsError('TCMU_ERR_ALREADY_EXISTS', `device user_${hba}/${name} already exists`, {
      path: devicePath,
    });
  if (await exists(context, devicePath)) throw alreadyExists();
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
  return devicePath;
}

/** Refuses, before the first write, a kernel without an attribute the request needs. */
async function requireKernelFeatures(
  context: Context,
  devicePath: string,
  request: UserDeviceRequest,
): Promise<void> {
  const required: Array<[attribute: string, feature: string]> = [
    ['nl_reply_supported', 'netlink reply opt-out'],
  ];
  if (request.commandRingSizeMb !== undefined)
    required.push(['cmd_ring_size_mb', 'command ring size setting']);
  if (request.dataPagesPerBlock !== undefined)
    required.push(['data_pages_per_blk', 'data pages per block setting']);
  for (const attribute of request.attributes) required.push([attribute.name, `attribute ${attribute.name}`]);
  for (const [attribute, feature] of required) {
    if (!(await exists(context, `${devicePath}/attrib/${attribute}`))) {
      throw new ConfigfsError(
        'TCMU_ERR_KERNEL_FEATURE_MISSING',
        `this kernel has no ${feature} (attrib/${attribute} does not exist); a newer kernel is needed`,
        { feature: attribute, path: `${devicePath}/attrib/${attribute}` },
      );
    }
  }
}

/**
 * The `control` tokens, in the order they are written. The ownership mark comes first, so that even a
 * crash right after it leaves a device removeStale() knows.
 */
function controlTokens(devConfig: string, request: UserDeviceRequest): string[] {
  const tokens = [
    `dev_config=${devConfig}`,
    'nl_reply_supported=-1',
    `dev_size=${request.size}`,
    `hw_block_size=${request.blockSize}`,
  ];
  if (request.maxSectors !== undefined) tokens.push(`hw_max_sectors=${request.maxSectors}`);
  if (request.maxDataAreaMb !== undefined) tokens.push(`max_data_area_mb=${request.maxDataAreaMb}`);
  if (request.dataPagesPerBlock !== undefined) tokens.push(`data_pages_per_blk=${request.dataPagesPerBlock}`);
  if (request.commandRingSizeMb !== undefined) tokens.push(`cmd_ring_size_mb=${request.commandRingSizeMb}`);
  return tokens;
}

/** Writes the tokens to `control`, one per write(2) (the kernel parses one token per write). */
async function writeControl(context: Context, devicePath: string, tokens: readonly string[]): Promise<void> {
  for (const token of tokens) await write(context, `${devicePath}/control`, token);
}

async function writeSerialAndAttributes(
  context: Context,
  devicePath: string,
  request: UserDeviceRequest,
): Promise<void> {
  await write(context, `${devicePath}/wwn/vpd_unit_serial`, request.serial);
  for (const attribute of request.attributes) {
    await write(context, `${devicePath}/attrib/${attribute.name}`, attribute.text);
  }
}

/** The uio device the kernel made for an enabled device. */
interface UioDevice {
  uio: string;
  uioPath: string;
  uioNodeCreated: boolean;
  mapSize: number;
}

/**
 * Waits for the uio device of the enabled device `user_<hba>/<name>`, reads its map size and makes
 * sure its node exists (made with mknod when nothing else does; that node is this call's to undo).
 */
export async function openUio(
  context: Context,
  hba: number,
  name: string,
  timeoutMs: number,
  rollback?: Rollback,
): Promise<UioDevice> {
  const uio = await waitFor(
    () => findUio(context, hba, name),
    timeoutMs,
    () =>
      new ConfigfsError(
        'TCMU_ERR_TIMEOUT',
        `the kernel made no uio device for user_${hba}/${name} within ${timeoutMs} ms (is the uio module loaded?)`,
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
  if (node.created) rollback?.push(() => unlinkOptional(context, node.path));
  return { uio, uioPath: node.path, uioNodeCreated: node.created, mapSize };
}

/** The device object, recorded in the tree state as this process's (the last step: nothing to undo). */
export function registerDevice(context: Context, state: DeviceState): UserDeviceImpl {
  const device = new UserDeviceImpl(context, state);
  context.state.devices.set(state.devicePath, device);
  return device;
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
 * the `loopback` folder if that was its last target (whoever made it: see the note on shared folders).
 */
async function releaseTarget(context: Context, targetPath: string, lun: number): Promise<void> {
  const targets = context.state.loopbackTargets;
  const owned = targets.get(targetPath);
  if (!owned) return;
  owned.luns.delete(lun);
  if (owned.luns.size > 0) return;
  // A LUN someone else put on it keeps the target: it is theirs to remove.
  const removed = await removeTargetIfEmpty(context, targetPath, `${targetPath}/tpgt_1`);
  targets.delete(targetPath);
  if (removed) await releaseFabricIfEmpty(context);
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
    const targets = this.#context.state.loopbackTargets;
    const owned = targets.get(fields.targetPath) ?? { luns: new Set<number>() };
    owned.luns.add(fields.lun);
    targets.set(fields.targetPath, owned);
  }

  /**
   * Puts the device on a tcm_loop LUN and finds its disk. Steps, each undone (in reverse) when a later
   * one fails: claim the target (make it, its TPG and nexus, or use one this process made), make and
   * link the LUN, wait for the disk and its nodes, make the stable link; then record the attachment.
   */
  async attachLoopback(options: AttachLoopbackOptions = {}): Promise<LoopbackAttachment> {
    const request = validateAttachRequest(options, this.name);
    const context = this.#context;
    return withLock(context, async () => {
      this.#checkLive();
      return transaction(async (rollback) => {
        const paths = loopbackPaths(context, request.wwn, request.lun, this.name);
        const target = await claimTarget(context, paths, rollback);
        const address = await linkLun(context, paths, this.configfsPath, rollback);
        const disk = await findDisk(context, address, request.timeoutMs, rollback);
        const linkPath = await makeStableLink(
          context,
          request.linkDirectory,
          request.linkName,
          disk.devicePath,
          rollback,
        );
        return this.#recordAttachment(paths, target, address, disk, linkPath);
      });
    });
  }

  /** The last step of attachLoopback: nothing can fail after it, so it needs no undo. */
  #recordAttachment(
    paths: LoopbackPaths,
    target: OwnedTarget,
    address: ScsiAddress,
    disk: LoopbackDisk,
    linkPath: string | undefined,
  ): Attachment {
    target.luns.add(paths.lun);
    this.#context.state.loopbackTargets.set(paths.targetPath, target);
    const attachment = new Attachment({
      wwn: paths.wwn,
      lun: paths.lun,
      address,
      blockDevice: disk.blockDevice,
      devicePath: disk.devicePath,
      sgPath: disk.sgPath,
      linkPath,
      targetPath: paths.targetPath,
      lunPath: paths.lunPath,
      lunLinkPath: paths.lunLinkPath,
      createdNodes: disk.createdNodes,
      owner: this,
    });
    this.#attachments.push(attachment);
    return attachment;
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
      context.state.devices.delete(this.configfsPath);
      // The last device out removes the HBA, whichever process made it (see the note on shared folders).
      await removeDirectoryIfUnused(context, hbaPath(context, this.hba));
    });
  }
}

/** attachLoopback's options, validated. */
function validateAttachRequest(options: AttachLoopbackOptions, deviceName: string) {
  const lun = validateLun(options.lun ?? 0);
  return {
    lun,
    wwn: options.wwn === undefined ? randomWwn() : validateWwn(options.wwn),
    timeoutMs: validateTimeout('timeoutMs', options.timeoutMs ?? 30_000),
    linkDirectory:
      options.linkDirectory === undefined ? undefined : validateLinkDirectory(options.linkDirectory),
    linkName: validateLinkName(options.linkName ?? (lun === 0 ? deviceName : `${deviceName}-lun${lun}`)),
  };
}
