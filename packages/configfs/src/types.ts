import type { DeviceOwner } from './ownership';
import type { SystemAccess } from './system';
import type { AttributeValue } from './validate';

/**
 * Where the kernel's trees are. Every function takes these, so tests can point them at a temporary
 * folder (see `@tcmu/configfs/testing`). Defaults are the real locations.
 */
export interface SystemRoots {
  /** Mount point of configfs; the target tree is `<configfsRoot>/target`. Default `/sys/kernel/config`. */
  configfsRoot?: string;
  /** Default `/sys`. */
  sysfsRoot?: string;
  /** Where device nodes live (`uioN`, `sdX`, `sgN`). Default `/dev`. */
  devRoot?: string;
  /** Default `/proc` (mounts, and process start times for ownership). */
  procRoot?: string;
  /** The operations used on those trees. Default: the real system (node:fs, node:child_process). */
  system?: SystemAccess;
}

/** What the running kernel supports, detected from which configfs attributes exist. */
export interface KernelFeatures {
  /** `nl_reply_supported` (4.15+): lets a device opt out of netlink replies. Required. */
  netlinkReplyOptOut: boolean;
  /** `cmd_ring_size_mb` (≈5.18+): the command ring size can be chosen before enable. */
  commandRingSize: boolean;
  /** `data_pages_per_blk` (5.13+). */
  dataPagesPerBlock: boolean;
  /** `attrib/tmr_notification` (≈5.9+): task management entries on the ring. */
  taskManagementNotification: boolean;
  /** `attrib/dev_config` is readable (lets `listDevices()` and reattach read ownership). */
  devConfigAttribute: boolean;
  /** tcm_loop's `tpgt_N/address` (after 4.4): needed to find /dev/sdX. Undefined when not probed. */
  loopbackAddress: boolean | undefined;
}

export interface PreflightOptions extends SystemRoots {
  /** Fail with TCMU_ERR_NOT_ROOT unless running as root. Default true. */
  requireRoot?: boolean;
  /** Run `modprobe` for missing modules. Default true. */
  loadModules?: boolean;
  /**
   * Detect features by creating a short-lived probe device (never enabled) under `core/user_<hba>`,
   * and a probe tcm_loop target, then removing both. Default true.
   */
  probe?: boolean;
  /** HBA used by the probe device. Default 0. */
  hba?: number;
}

export interface PreflightReport {
  /** Modules this call loaded with modprobe. */
  modulesLoaded: string[];
  /** Detected features (all false/undefined when `probe` was false). */
  features: KernelFeatures;
}

export interface CreateUserDeviceOptions extends SystemRoots {
  /** HBA number: the device lives in `core/user_<hba>`. Integer 0..65535. Default 0. */
  hba?: number;
  /** Device name, unique within the HBA: letters, digits, `.`, `_`, `-`; at most 64 characters. */
  name: string;
  /** Size in bytes, a whole number of blocks. */
  size: number | bigint;
  /** Logical block size in bytes (`hw_block_size`): a power of two 512..65536. */
  blockSize: number;
  /** `wwn/vpd_unit_serial` (always written: persistent reservations need it). Safe characters, ≤ 64. */
  serial: string;
  /** `hw_max_sectors`: largest transfer in blocks the kernel sends per command. Kernel default 128. */
  maxSectors?: number;
  /** `max_data_area_mb`: size of the shared data area in MiB. */
  maxDataAreaMb?: number;
  /** `data_pages_per_blk` (only if the kernel has it, else TCMU_ERR_KERNEL_FEATURE_MISSING). */
  dataPagesPerBlock?: number;
  /** `cmd_ring_size_mb` (only if the kernel has it, else TCMU_ERR_KERNEL_FEATURE_MISSING). */
  commandRingSizeMb?: number;
  /**
   * `attrib/<name>` values written before enable, e.g. `{ cmd_time_out: 30, qfull_time_out: 5,
   * tmr_notification: true, emulate_write_cache: true }`. An attribute the kernel lacks fails with
   * TCMU_ERR_KERNEL_FEATURE_MISSING before enable.
   */
  attributes?: Readonly<Record<string, AttributeValue>>;
  /** How long to wait for the uio device after enable, in ms. Default 10000. */
  uioTimeoutMs?: number;
}

export interface AttachLoopbackOptions {
  /** LUN number on the target, 0..255. Default 0. */
  lun?: number;
  /**
   * tcm_loop target WWN (`naa.` + 16 hex digits). Default: a new random one. Pass the WWN of a target
   * this process already created (`attachment.wwn`) to add another LUN to it.
   */
  wwn?: string;
  /** How long to wait for /dev/sdX after the LUN is linked, in ms. Default 30000. */
  timeoutMs?: number;
  /** If set, a symlink `<linkDirectory>/<linkName>` → the disk node is created (and removed on detach). */
  linkDirectory?: string;
  /** Name of that symlink. Default: `<device name>` for LUN 0, else `<device name>-lun<L>`. */
  linkName?: string;
}

/** SCSI address `host:channel:target:lun` of the disk the kernel made. */
export interface ScsiAddress {
  host: number;
  channel: number;
  target: number;
  lun: number;
}

/** A LUN of a tcm_loop target that exports a user device. */
export interface LoopbackAttachment {
  readonly wwn: string;
  readonly lun: number;
  readonly address: ScsiAddress;
  /** Kernel name of the disk, e.g. `sdb`. */
  readonly blockDevice: string;
  /** Its node, e.g. `/dev/sdb` (created with mknod when nothing else made it). */
  readonly devicePath: string;
  /** The SCSI generic node (`/dev/sgN`) when the sg module is loaded. */
  readonly sgPath: string | undefined;
  /** The stable symlink, when `linkDirectory` was given. */
  readonly linkPath: string | undefined;
  /**
   * Removes this LUN (and the target when it was the last LUN this process put there). The kernel
   * may send commands while the disk goes away: keep serving the ring until this resolves.
   * Idempotent.
   */
  detach(): Promise<void>;
}

/**
 * A TCMU user backstore created (or reattached) by this process. Methods that change configfs are
 * serialised per configfs root within the process; they may be called concurrently.
 */
export interface UserDevice {
  readonly hba: number;
  readonly name: string;
  /** `<configfsRoot>/target/core/user_<hba>/<name>`. */
  readonly configfsPath: string;
  /** The dev_config string (ownership mark). */
  readonly devConfig: string;
  /** The uio device name, e.g. `uio0`. */
  readonly uio: string;
  /** Path of its node, e.g. `/dev/uio0`: what the ring opens. */
  readonly uioPath: string;
  /** Bytes to mmap: `/sys/class/uio/<uio>/maps/map0/size`. */
  readonly mapSize: number;
  /** Current size in bytes. */
  readonly size: number;
  readonly blockSize: number;
  /** LUNs attached by this object and not yet detached. */
  readonly attachments: readonly LoopbackAttachment[];
  /**
   * Exports the device through tcm_loop and waits for its disk. The kernel probes the LUN (INQUIRY,
   * READ CAPACITY, …) while this runs: the ring must already be served. On failure nothing of the
   * attachment is left behind.
   */
  attachLoopback(options?: AttachLoopbackOptions): Promise<LoopbackAttachment>;
  /** Detaches every attachment (serve the ring until it resolves). Idempotent. */
  detachLoopback(): Promise<void>;
  /**
   * Live resize (bytes, whole blocks): records the new size and writes `attrib/dev_size`. On a live
   * device the kernel accepts that write only when some process listens to the TCM-USER netlink group
   * (tcmu-runner does), so resize joins TCM-USER/config itself for the write (`system.joinNetlinkGroup`)
   * and leaves it after. If it cannot join and nobody else listens, the kernel refuses with ESRCH and
   * keeps its old figure, which only `info`
   * and `listDevices()` show: the capacity an initiator sees comes from the READ CAPACITY answer of
   * the device's handler. `kernelUpdated` says which happened. The initiator must rescan either way.
   */
  resize(size: number | bigint): Promise<ResizeResult>;
  /** `action/block_dev`: while blocked the kernel queues new commands instead of sending them. */
  setBlocked(blocked: boolean): Promise<void>;
  /** `action/reset_ring`: fails commands in flight with BUSY (`busy`) or CHECK CONDITION, empties the ring. */
  resetRing(mode?: 'busy' | 'check-condition'): Promise<void>;
  /**
   * Detaches every LUN, then removes the device and the HBA if this process created it and it is
   * empty. Close the ring between `detachLoopback()` and `remove()`. Idempotent.
   */
  remove(): Promise<void>;
}

export interface ResizeResult {
  /** The new size in bytes. */
  size: number;
  /** The kernel's `attrib/dev_size` now holds it (false: no netlink listener, see `resize`). */
  kernelUpdated: boolean;
}

/** A LUN that exports a device, as found in configfs and sysfs. */
export interface LunRecord {
  wwn: string;
  tpgt: number;
  lun: number;
  address: ScsiAddress | undefined;
  blockDevice: string | undefined;
  devicePath: string | undefined;
  sgPath: string | undefined;
}

/** A user backstore as found in configfs. */
export interface DeviceRecord {
  hba: number;
  name: string;
  configfsPath: string;
  /** dev_config as the kernel reports it (undefined if unreadable). */
  devConfig: string | undefined;
  /** Created by this toolkit (dev_config starts with `tcmu-ts/`). */
  owned: boolean;
  owner: DeviceOwner | undefined;
  /** The owner process still runs. */
  ownerAlive: boolean;
  /** Processes that hold the uio device open (they serve its ring), from /proc/<pid>/fd. */
  uioHolders: number[];
  /** Owned by this toolkit, its owner is gone and no process holds its uio device: `removeStale()` removes it. */
  stale: boolean;
  enabled: boolean;
  uio: string | undefined;
  size: number | undefined;
  luns: LunRecord[];
  /** The iSCSI targets exporting it; present only when there is at least one. */
  iscsi?: IscsiExportRecord[];
}

export interface ListDevicesOptions extends SystemRoots {
  /** Include devices not created by this toolkit (tcmu-runner's, targetcli's). Default false. */
  all?: boolean;
}

export interface RemoveDeviceOptions extends SystemRoots {
  name: string;
  /** Default: any HBA (an error if the name exists on several). */
  hba?: number;
  /** Remove even if the owner process is alive. Never removes devices this toolkit did not create. */
  force?: boolean;
}

export interface ReattachUserDeviceOptions extends SystemRoots {
  name: string;
  hba?: number;
  /** Take over even if the recorded owner process is alive. */
  force?: boolean;
  /** Reset mode used to empty the ring left by the previous owner. Default `busy`. */
  resetMode?: 'busy' | 'check-condition';
  uioTimeoutMs?: number;
}

/** An iSCSI target that exports a backstore, as found in configfs. */
export interface IscsiExportRecord {
  iqn: string;
  tpgt: number;
  lun: number;
  portals: string[];
  /** Initiator IQNs with an ACL. */
  acls: string[];
  /** `generate_node_acls=1`: any initiator may log in. */
  open: boolean;
  enabled: boolean;
  /** CHAP is enforced (`attrib/authentication=1`). */
  chap: boolean;
  /** Made by this toolkit (TargetAlias `tcmu-ts/…`): `removeStale()` removes it with its device. */
  owned: boolean;
}
