import type { Backend } from '@tcmu/backend';
import {
  type AttributeValue,
  ConfigfsError,
  createUserDevice,
  findTakeOverCandidate,
  type LoopbackAttachment,
  type PreflightReport,
  preflight,
  reattachUserDevice,
  type ScsiAddress,
  type SystemRoots,
  setDiskTimeout,
  type UserDevice,
} from '@tcmu/configfs';
import { openRing } from '@tcmu/ring';
import { type DeviceContext, type DeviceStats, generateSerial } from './device';
import { CoreError, CoreErrorCode } from './errors';
import {
  planServe,
  type ServedDevice,
  type ServeOptions,
  type ServePlan,
  type ServeSettings,
  type ServeTarget,
  servePlanned,
} from './serve';
import type { Logger } from './types';

/**
 * Options of {@link openDevice}: what is served (`backend`, `handler`: the same {@link ServeTarget}
 * as serveRing's) and how (serveRing's settings plus the configfs and kernel ones below).
 */
export type OpenDeviceOptions = OpenDeviceSettings & ServeTarget;

/** The settings of {@link openDevice} (everything but what it serves). */
export interface OpenDeviceSettings extends SystemRoots, Omit<ServeSettings, 'name' | 'closeRing'> {
  /** Device name in configfs (`core/user_<hba>/<name>`): letters, digits, `.`, `_`, `-`, at most 64. */
  readonly name: string;
  /** LUN on the tcm_loop target (default 0). */
  readonly lun?: number;
  /** HBA number: the device lives in `core/user_<hba>` (default 0). */
  readonly hba?: number;
  /** tcm_loop target WWN (`naa.` + 16 hex digits); default a new random one. */
  readonly wwn?: string;
  /** `hw_max_sectors`: the largest transfer in blocks the kernel sends per command. Default: 8 MiB worth. */
  readonly maxSectors?: number;
  /** `max_data_area_mb`: the shared data area. Default: kernel default. */
  readonly maxDataAreaMb?: number;
  /**
   * `data_pages_per_blk`: 4 KiB pages per block of the data area (Linux 5.13+). Default 16 (64 KiB
   * blocks, chosen by measurement: docs/performance.md, section 9) when the preflight finds the
   * setting, else the kernel's own (1). Set explicitly, a kernel without the setting fails the open
   * (cause TCMU_ERR_KERNEL_FEATURE_MISSING).
   */
  readonly dataPagesPerBlock?: number;
  /** Extra `attrib/*` values written before enable. */
  readonly attributes?: Readonly<Record<string, AttributeValue>>;
  /** Milliseconds to wait for /dev/sdX (default 30000). */
  readonly attachTimeoutMs?: number;
  /** Also create `<linkDirectory>/<name>` → the disk node. */
  readonly linkDirectory?: string;
  /** Flush and close the backend when the device is closed (default true: the device owns it). */
  readonly closeBackend?: boolean;
  /** Skip the preflight checks (root, modules, configfs): for callers that ran `preflight()` themselves. */
  readonly skipPreflight?: boolean;
  /**
   * When a device with this name already exists and the process that served it is gone (killed,
   * crashed), take it over instead of failing: same /dev/sdX, same serial and NAA, commands the dead
   * process took but never completed are failed BUSY by the kernel (`action/block_dev`,
   * `action/reset_ring`) and the SCSI layer re-sends them to this process. Without a device by that name
   * a new one is created as usual. A device whose owner still runs fails with TCMU_ERR_CORE_OPEN (cause
   * TCMU_ERR_DEVICE_IN_USE). Default false: an existing name fails (cause TCMU_ERR_ALREADY_EXISTS).
   */
  readonly takeOver?: boolean;
  /**
   * `attrib/cmd_time_out` in whole seconds (default 30): how long the kernel lets a command wait for a
   * server. A restart that completes within this window is invisible to the initiator; with no server,
   * each command fails after it (04/08 LOGICAL UNIT COMMUNICATION FAILURE → EIO). 0 means never (a
   * disk with no server then hangs). Fixed once the disk is exported: a take-over keeps the old value.
   */
  readonly commandTimeoutSeconds?: number;
  /**
   * `attrib/qfull_time_out` in seconds: how long a command may wait for ring space (default: the same
   * as `commandTimeoutSeconds`; then TASK SET FULL, which the SCSI layer retries).
   */
  readonly queueFullTimeoutSeconds?: number;
  /**
   * The SCSI layer's timeout of the disk (`/sys/block/sdX/device/timeout`) in seconds. Default
   * `commandTimeoutSeconds + 15` (or the kernel's 30 when `commandTimeoutSeconds` is 0): above the TCMU
   * timeout, so an orphaned command fails once instead of being aborted and retried several times.
   */
  readonly scsiTimeoutSeconds?: number;
}

/** How long the kernel waits for a server before failing commands: the window a restart must fit in. */
export interface RestartWindow {
  /** `attrib/cmd_time_out` (0 = never: I/O to a disk with no server hangs until one appears). */
  readonly commandTimeoutSeconds: number;
  /** `attrib/qfull_time_out` (-1: the same as `commandTimeoutSeconds`). */
  readonly queueFullTimeoutSeconds: number;
  /** `/sys/block/sdX/device/timeout`, undefined when it could not be set. */
  readonly scsiTimeoutSeconds: number | undefined;
}

/** Default `cmd_time_out` (seconds): see docs/restart.md for the measurements behind it. */
export const DEFAULT_COMMAND_TIMEOUT_SECONDS = 30;
/** How far the SCSI layer's timeout stays above `cmd_time_out` by default (seconds). */
export const SCSI_TIMEOUT_MARGIN_SECONDS = 15;

/** A disk served from this process. */
export interface TcmuDevice {
  readonly name: string;
  /** The block device node, e.g. `/dev/sdb`. */
  readonly devicePath: string;
  /** The SCSI generic node (`/dev/sgN`), when the sg module is loaded. */
  readonly sgPath: string | undefined;
  /** The SCSI address of the disk. */
  readonly address: ScsiAddress;
  /** tcm_loop target WWN. */
  readonly wwn: string;
  readonly lun: number;
  /** The unit serial number (VPD 0x80). */
  readonly serial: string;
  /** Device state: identity, capacity, mode parameters. */
  readonly device: DeviceContext;
  /** Live counters. */
  readonly stats: DeviceStats;
  /** Current capacity in bytes. */
  readonly size: number;
  readonly closed: boolean;
  /** True when this device was taken over from a process that died, rather than created. */
  readonly takenOver: boolean;
  /** The kernel's timeouts for this disk: a restart within `commandTimeoutSeconds` is invisible. */
  readonly window: RestartWindow;
  /**
   * Grows or shrinks the disk to `bytes` (whole blocks): the backend is resized with no command in
   * flight, configfs `attrib/dev_size` is written (the kernel keeps its own figure when no netlink
   * listener acknowledges it; I/O does not depend on it), and the initiator gets 06/2A 09 CAPACITY
   * DATA HAS CHANGED on its next command (Linux re-reads the capacity on a rescan). Errors: TCMU_ERR_CORE_UNSUPPORTED,
   * TCMU_ERR_CORE_RESIZE, TCMU_ERR_CORE_CLOSED.
   */
  resize(bytes: number): Promise<void>;
  /**
   * Removes the disk: the LUN is detached (the ring is served until the kernel lets go), commands in
   * flight drain, the ring is closed, the configfs device removed, then the backend flushed and
   * closed (unless `closeBackend: false`). Idempotent (every call returns the same promise) and never
   * rejects, so it is safe from signal handlers; problems are logged and the remaining steps still run.
   * Bounded even with a backend whose calls never settle: commands still in flight `drainTimeoutMs`
   * (default 10 s) after the call are abandoned (answered 04/44 00, see ServeOptions.drainTimeoutMs),
   * and the backend gets another `drainTimeoutMs` to flush and close; so it resolves within about
   * 2 × drainTimeoutMs plus the kernel's own removal time (a few seconds).
   */
  close(): Promise<void>;
}

const preflights = new Map<string, Promise<PreflightReport>>();

function roots(options: SystemRoots): SystemRoots {
  const out: SystemRoots = {};
  if (options.configfsRoot !== undefined) out.configfsRoot = options.configfsRoot;
  if (options.sysfsRoot !== undefined) out.sysfsRoot = options.sysfsRoot;
  if (options.devRoot !== undefined) out.devRoot = options.devRoot;
  if (options.procRoot !== undefined) out.procRoot = options.procRoot;
  if (options.system !== undefined) out.system = options.system;
  return out;
}

/** Runs preflight once per configfs root per process. */
function cachedPreflight(options: SystemRoots, hba: number): Promise<PreflightReport> {
  const key = `${options.configfsRoot ?? ''}|${options.sysfsRoot ?? ''}`;
  let report = preflights.get(key);
  if (!report) {
    report = preflight({ ...roots(options), hba });
    report.catch(() => preflights.delete(key));
    preflights.set(key, report);
  }
  return report;
}

/** openDevice's options once checked: nothing has been created yet. */
interface OpenRequest {
  readonly options: OpenDeviceOptions;
  readonly plan: ServePlan;
  readonly system: SystemRoots;
  readonly hba: number;
  readonly serial: string;
  readonly size: number;
  readonly blockSize: number;
  readonly maxSectors: number;
  readonly commandTimeoutSeconds: number;
  readonly queueFullTimeoutSeconds: number;
  readonly scsiTimeoutSeconds: number;
  readonly logger: Logger | undefined;
}

/**
 * Creates a TCMU device in configfs, serves its ring with the handler (or the emulation over the
 * backend), exports it through tcm_loop and resolves once `/dev/sdX` exists. On any failure
 * everything created so far is removed again (the backend is left open: it is still the caller's)
 * and the promise rejects with TCMU_ERR_CORE_OPEN whose `cause` is the underlying error
 * (configfs, ring) — or TCMU_ERR_CORE_INVALID_OPTION for bad options, before anything is created.
 */
export async function openDevice(options: OpenDeviceOptions): Promise<TcmuDevice> {
  const request = checkOpenRequest(options);
  const features = await checkSystem(request);
  if (options.takeOver) {
    const taken = await takeOverIfOrphaned(request);
    if (taken) return taken;
  }
  return createAndServe(request, features);
}

/** The measured default of `data_pages_per_blk` (docs/performance.md, section 9). */
const DEFAULT_DATA_PAGES_PER_BLOCK = 16;

/** `data_pages_per_blk` for createUserDevice: the caller's, or the default where the kernel has it. */
function dataPagesPerBlockOf(
  options: OpenDeviceOptions,
  features: PreflightReport['features'] | undefined,
): { dataPagesPerBlock?: number } {
  if (options.dataPagesPerBlock !== undefined) return { dataPagesPerBlock: options.dataPagesPerBlock };
  return features?.dataPagesPerBlock ? { dataPagesPerBlock: DEFAULT_DATA_PAGES_PER_BLOCK } : {};
}

/** The largest transfer per command, in blocks (`hw_max_sectors`, and the emulation's limit). */
function maxSectorsOf(options: OpenDeviceOptions, blockSize: number): number {
  return options.maxSectors ?? Math.max(8, Math.floor((8 * 1024 * 1024) / blockSize));
}

/** What serveRing gets from openDevice's options, with the unit serial the device will have. */
function serveOptionsOf(options: OpenDeviceOptions, serial: string): ServeOptions {
  const blockSize = options.blockSize ?? options.backend?.blockSize ?? 512;
  return {
    ...options,
    serial,
    // By default the kernel's initial probe (INQUIRY, READ CAPACITY…) sees no power-on unit
    // attention (`powerOnUnitAttention: true` queues one; sd retries on it).
    powerOnUnitAttention: options.powerOnUnitAttention ?? false,
    limits: { maxTransferBlocks: maxSectorsOf(options, blockSize), ...options.limits },
  };
}

/** Step 1, the one validation (serveRing's, plus the timeouts): throws before anything is created. */
function checkOpenRequest(options: OpenDeviceOptions): OpenRequest {
  const serial = options.serial ?? generateSerial(options.name);
  const plan = planServe(serveOptionsOf(options, serial));
  const { blockSize, size } = plan.device;
  const commandTimeoutSeconds = seconds(
    'commandTimeoutSeconds',
    options.commandTimeoutSeconds ?? DEFAULT_COMMAND_TIMEOUT_SECONDS,
    0,
  );
  return {
    options,
    plan,
    system: roots(options),
    hba: options.hba ?? 0,
    serial,
    size,
    blockSize,
    maxSectors: maxSectorsOf(options, blockSize),
    commandTimeoutSeconds,
    queueFullTimeoutSeconds: seconds(
      'queueFullTimeoutSeconds',
      options.queueFullTimeoutSeconds ?? commandTimeoutSeconds,
      -1,
    ),
    scsiTimeoutSeconds: seconds(
      'scsiTimeoutSeconds',
      options.scsiTimeoutSeconds ??
        (commandTimeoutSeconds === 0 ? 30 : commandTimeoutSeconds + SCSI_TIMEOUT_MARGIN_SECONDS),
      1,
    ),
    logger: options.logger,
  };
}

/** Step 2: the preflight checks (root, modules, configfs), once per configfs root per process. */
async function checkSystem(request: OpenRequest): Promise<PreflightReport['features'] | undefined> {
  if (request.options.skipPreflight) return undefined;
  try {
    return (await cachedPreflight(request.system, request.hba)).features;
  } catch (error) {
    throw new CoreError(CoreErrorCode.Open, `cannot serve a TCMU device here: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** Step 3: the configfs device, its ring served, the tcm_loop LUN and the disk's SCSI timeout. */
async function createAndServe(
  request: OpenRequest,
  features: PreflightReport['features'] | undefined,
): Promise<TcmuDevice> {
  const { options, system, logger } = request;
  let userDevice: UserDevice | undefined;
  let served: ServedDevice | undefined;
  try {
    const attributes: Record<string, AttributeValue> = {};
    if (features?.taskManagementNotification) attributes.tmr_notification = true;
    attributes.cmd_time_out = request.commandTimeoutSeconds;
    attributes.qfull_time_out = request.queueFullTimeoutSeconds;
    Object.assign(attributes, options.attributes);
    userDevice = await createUserDevice({
      ...system,
      hba: request.hba,
      name: options.name,
      size: request.size,
      blockSize: request.blockSize,
      serial: request.serial,
      maxSectors: request.maxSectors,
      ...(options.maxDataAreaMb !== undefined ? { maxDataAreaMb: options.maxDataAreaMb } : {}),
      ...dataPagesPerBlockOf(options, features),
      attributes,
    });
    served = await serveUserDevice(userDevice, system, request.plan);
    const attachment = await userDevice.attachLoopback({
      lun: options.lun ?? 0,
      ...(options.wwn !== undefined ? { wwn: options.wwn } : {}),
      ...(options.attachTimeoutMs !== undefined ? { timeoutMs: options.attachTimeoutMs } : {}),
      ...(options.linkDirectory !== undefined
        ? { linkDirectory: options.linkDirectory, linkName: options.name }
        : {}),
    });
    const window: RestartWindow = {
      commandTimeoutSeconds: Number(attributes.cmd_time_out),
      queueFullTimeoutSeconds: Number(attributes.qfull_time_out),
      scsiTimeoutSeconds: await applyDiskTimeout(
        system,
        attachment.blockDevice,
        request.scsiTimeoutSeconds,
        logger,
      ),
    };
    return new OpenedDevice(userDevice, served, attachment, request, false, window);
  } catch (error) {
    await undo(userDevice, served, logger);
    if (error instanceof CoreError) throw error;
    throw new CoreError(
      CoreErrorCode.Open,
      `cannot open device ${options.name}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

/** Maps `userDevice`'s ring and serves the checked request on it. */
async function serveUserDevice(
  userDevice: UserDevice,
  system: SystemRoots,
  plan: ServePlan,
): Promise<ServedDevice> {
  const ring = await openRing({
    uio: userDevice.uio,
    ...(system.sysfsRoot !== undefined ? { sysfsRoot: system.sysfsRoot } : {}),
    ...(system.devRoot !== undefined ? { devRoot: system.devRoot } : {}),
  });
  return servePlanned(ring, plan);
}

/** Runs `work`; true when it settled within `ms` (it is not cancelled otherwise, just not awaited). */
async function settlesWithin(ms: number, work: () => Promise<void>): Promise<boolean> {
  if (!Number.isFinite(ms)) {
    await work();
    return true;
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([work().then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function seconds(name: string, value: number, minimum: number): number {
  if (!Number.isInteger(value) || value < minimum || value > 86_400)
    throw new CoreError(
      CoreErrorCode.InvalidOption,
      `${name} must be an integer ${minimum}..86400 (seconds), got ${value}`,
    );
  return value;
}

/** Sets the SCSI layer's timeout of the disk; a failure is logged, not fatal (the disk still works). */
async function applyDiskTimeout(
  system: SystemRoots,
  blockDevice: string,
  timeoutSeconds: number,
  logger: Logger | undefined,
): Promise<number | undefined> {
  try {
    await setDiskTimeout({ ...system, blockDevice, timeoutSeconds });
    return timeoutSeconds;
  } catch (error) {
    logger?.warn?.(
      { err: error, blockDevice },
      'cannot set the SCSI timeout of the disk; the kernel default applies',
    );
    return undefined;
  }
}

/**
 * The take-over path of openDevice: undefined when no device has this name (the caller creates one).
 * The device keeps its configfs entries on failure, so a later attempt can take it over again.
 */
async function takeOverIfOrphaned(request: OpenRequest): Promise<TcmuDevice | undefined> {
  const { options, system, hba, size, blockSize, logger } = request;
  const fail = (message: string, cause?: unknown) =>
    new CoreError(CoreErrorCode.Open, `cannot take over device ${options.name}: ${message}`, { cause });
  let candidate: Awaited<ReturnType<typeof findTakeOverCandidate>>;
  try {
    candidate = await findTakeOverCandidate({ ...system, name: options.name, hba });
  } catch (error) {
    throw fail((error as Error).message, error);
  }
  if (!candidate) return undefined;
  const { record } = candidate;
  const where = `user_${record.hba}/${record.name}`;
  if (candidate.verdict === 'in-use') {
    const pid = record.ownerAlive ? record.owner?.pid : record.uioHolders.join(', ');
    const cause = new ConfigfsError(
      'TCMU_ERR_DEVICE_IN_USE',
      `device ${where} is served by running process ${pid}`,
      { path: record.configfsPath },
    );
    throw fail(cause.message, cause);
  }
  if (candidate.verdict === 'not-owner') {
    const cause = new ConfigfsError('TCMU_ERR_NOT_OWNER', `device ${where} was not created by this toolkit`, {
      path: record.configfsPath,
    });
    throw fail(cause.message, cause);
  }
  if (candidate.verdict === 'not-enabled') {
    const cause = new ConfigfsError(
      'TCMU_ERR_ALREADY_EXISTS',
      `device ${where} exists but was never enabled (remove it with tcmu rm)`,
      { path: record.configfsPath },
    );
    throw fail(cause.message, cause);
  }
  if (record.size !== undefined && record.size !== size)
    throw new CoreError(
      CoreErrorCode.InvalidOption,
      `device ${where} is ${record.size} bytes; take it over with the same size (not ${size})`,
    );
  if (candidate.blockSize !== undefined && candidate.blockSize !== blockSize)
    throw new CoreError(
      CoreErrorCode.InvalidOption,
      `device ${where} has ${candidate.blockSize}-byte blocks; take it over with the same block size (not ${blockSize})`,
    );
  const serial = candidate.serial;
  if (serial === undefined) throw fail(`cannot read the unit serial of ${where}`);
  if (options.serial !== undefined && options.serial !== serial)
    throw new CoreError(
      CoreErrorCode.InvalidOption,
      `device ${where} has serial ${serial}; a take-over keeps it (serial ${options.serial} was asked)`,
    );

  let served: ServedDevice | undefined;
  let userDevice: UserDevice;
  try {
    // block_dev 1 → reset_ring 1 (in-flight commands complete BUSY, the SCSI layer re-sends them) →
    // block_dev 0, then the ring starts empty at offset 0 for this process.
    userDevice = await reattachUserDevice({ ...system, name: options.name, hba: record.hba });
  } catch (error) {
    throw fail((error as Error).message, error);
  }
  try {
    // The device keeps its serial (and the NAA derived from it); the initiator already knows the
    // disk, so no power-on unit attention. A backend that held acknowledged writes only in the dead
    // process's memory may have lost some: the first SYNCHRONIZE CACHE says so (DeviceContext).
    const backend = options.backend;
    const writeCacheLost = backend?.flush !== undefined && backend.writesSurviveCrash !== true;
    const plan = planServe({
      ...serveOptionsOf(options, serial),
      powerOnUnitAttention: false,
      writeCacheLost,
    });
    if (writeCacheLost)
      logger?.warn?.(
        { device: options.name, previousOwner: record.owner?.pid },
        'writes the dead process acknowledged but had not stored may be lost (its backend kept them in memory until a flush): the first SYNCHRONIZE CACHE will fail with a write error so the initiator knows; a backend whose writes survive a crash (e.g. S3 with cache_file=) avoids this',
      );
    served = await serveUserDevice(userDevice, system, plan);
    const attachment =
      userDevice.attachments[0] ??
      (await userDevice.attachLoopback({
        lun: options.lun ?? 0,
        ...(options.wwn !== undefined ? { wwn: options.wwn } : {}),
        ...(options.attachTimeoutMs !== undefined ? { timeoutMs: options.attachTimeoutMs } : {}),
      }));
    const window: RestartWindow = {
      commandTimeoutSeconds: candidate.commandTimeoutSeconds ?? DEFAULT_COMMAND_TIMEOUT_SECONDS,
      queueFullTimeoutSeconds: candidate.queueFullTimeoutSeconds ?? -1,
      scsiTimeoutSeconds: await applyDiskTimeout(
        system,
        attachment.blockDevice,
        options.scsiTimeoutSeconds ??
          (candidate.commandTimeoutSeconds === 0 || candidate.commandTimeoutSeconds === undefined
            ? request.scsiTimeoutSeconds
            : candidate.commandTimeoutSeconds + SCSI_TIMEOUT_MARGIN_SECONDS),
        logger,
      ),
    };
    logger?.info?.(
      { device: options.name, previousOwner: record.owner?.pid, devicePath: attachment.devicePath },
      'took over the device of a process that is gone',
    );
    return new OpenedDevice(userDevice, served, attachment, { ...request, serial }, true, window);
  } catch (error) {
    // Leave the device in configfs (the initiator's disk): stop serving so another process can retry.
    if (served) await served.close().catch(() => {});
    throw fail((error as Error).message, error);
  }
}

async function undo(userDevice: UserDevice | undefined, served: ServedDevice | undefined, logger?: Logger) {
  const step = async (what: string, work: () => Promise<void>) => {
    try {
      await work();
    } catch (error) {
      logger?.error?.({ err: error }, `cleanup after a failed open: ${what} failed`);
    }
  };
  if (userDevice) await step('detach', () => userDevice.detachLoopback());
  if (served) await step('ring close', () => served.close());
  if (userDevice) await step('remove', () => userDevice.remove());
}

class OpenedDevice implements TcmuDevice {
  readonly name: string;
  readonly devicePath: string;
  readonly sgPath: string | undefined;
  readonly address: ScsiAddress;
  readonly wwn: string;
  readonly lun: number;
  readonly serial: string;
  readonly takenOver: boolean;
  readonly window: RestartWindow;
  #userDevice: UserDevice;
  #served: ServedDevice;
  #backend: Backend | undefined;
  #closeBackend: boolean;
  #logger: Logger | undefined;
  #closing: Promise<void> | undefined;
  #drainTimeoutMs: number;

  constructor(
    userDevice: UserDevice,
    served: ServedDevice,
    attachment: LoopbackAttachment,
    request: Pick<OpenRequest, 'options' | 'plan' | 'serial' | 'logger'>,
    takenOver: boolean,
    window: RestartWindow,
  ) {
    this.takenOver = takenOver;
    this.window = window;
    this.name = userDevice.name;
    this.devicePath = attachment.devicePath;
    this.sgPath = attachment.sgPath;
    this.address = attachment.address;
    this.wwn = attachment.wwn;
    this.lun = attachment.lun;
    this.serial = request.serial;
    this.#userDevice = userDevice;
    this.#served = served;
    this.#backend = request.plan.backend;
    this.#closeBackend = request.options.closeBackend !== false;
    this.#logger = request.logger;
    this.#drainTimeoutMs = request.plan.drainTimeoutMs;
  }

  get device(): DeviceContext {
    return this.#served.device;
  }

  get stats(): DeviceStats {
    return this.#served.stats;
  }

  get size(): number {
    return this.#served.device.size;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  async resize(bytes: number): Promise<void> {
    if (this.#closing) throw new CoreError(CoreErrorCode.Closed, `device ${this.name} is closed`);
    const before = this.size;
    await this.#served.resize(bytes);
    try {
      const result = (await this.#userDevice.resize(bytes)) as { kernelUpdated?: boolean } | undefined;
      if (result?.kernelUpdated === false)
        this.#logger?.info?.(
          { device: this.name, size: bytes },
          'configfs kept its dev_size figure (no netlink listener); the initiator sees the new capacity from the device',
        );
    } catch (error) {
      this.#logger?.error?.({ err: error, device: this.name }, 'configfs dev_size update failed; reverting');
      await this.#served.resize(before).catch(() => {});
      throw new CoreError(
        CoreErrorCode.Resize,
        `cannot resize ${this.name} in configfs: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  }

  close(): Promise<void> {
    if (!this.#closing) this.#closing = this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const step = async (what: string, work: () => Promise<void>) => {
      try {
        await work();
      } catch (error) {
        this.#logger?.error?.({ err: error, device: this.name }, `closing: ${what} failed`);
      }
    };
    // The ring is served while the kernel removes the disk (it may send SYNCHRONIZE CACHE); the drain
    // timeout counts from here, so a hung backend cannot hold the removal up for longer.
    const detached = step('detaching the LUN', () => this.#userDevice.detachLoopback());
    await step('draining and closing the ring', () => this.#served.close({ servingUntil: detached }));
    await detached;
    await step('removing the configfs device', () => this.#userDevice.remove());
    const backend = this.#backend;
    if (this.#closeBackend && backend) {
      // Bounded too: a backend whose calls never settle is left behind with a warning.
      const finished = await settlesWithin(this.#drainTimeoutMs, async () => {
        if (backend.flush) await step('flushing the backend', () => backend.flush!());
        if (backend.close) await step('closing the backend', () => backend.close!());
      });
      if (!finished)
        this.#logger?.warn?.(
          { device: this.name, drainTimeoutMs: this.#drainTimeoutMs },
          `the backend did not flush and close within ${this.#drainTimeoutMs} ms: left behind`,
        );
    }
  }
}
