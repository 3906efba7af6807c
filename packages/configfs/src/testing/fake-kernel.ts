import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommandResult, NetlinkMembership, PathKind, SystemAccess } from '../system';

/** One mutating operation the fake kernel saw, with its path relative to the fake root. */
export interface FakeOperation {
  operation: 'mkdir' | 'rmdir' | 'write' | 'symlink' | 'unlink' | 'mknod' | 'run';
  /** Relative to the fake root, e.g. `config/target/core/user_1/disk/control`; for `run`, the command. */
  path: string;
  /** Text written, link target, or program arguments. */
  data?: string;
}

export interface FakeKernelOptions {
  /** Which optional kernel features exist (attributes present). All true by default. */
  features?: {
    netlinkReplyOptOut?: boolean;
    commandRingSize?: boolean;
    dataPagesPerBlock?: boolean;
    taskManagementNotification?: boolean;
    loopbackAddress?: boolean;
  };
  /** Kernel modules already loaded. Default: all. */
  loadedModules?: readonly string[];
  /** Modules `modprobe` can load. Default: all. */
  loadableModules?: readonly string[];
  /** configfs mounted at start. Default true. */
  configfsMounted?: boolean;
  /** devtmpfs: device nodes appear in `/dev` by themselves. Default true. */
  devtmpfs?: boolean;
  /** `enable` makes a uio device. Default true (false simulates a missing uio module). */
  createsUio?: boolean;
  /** A LUN link makes a SCSI disk. Default true (false simulates a ring nobody serves / no sd_mod). */
  createsDisk?: boolean;
  /**
   * A netlink daemon (tcmu-runner) has sent SET_FEATURES: `enable` of a device without
   * `nl_reply_supported=-1` would hang in the real kernel; the fake fails it with ETIMEDOUT instead.
   */
  netlinkDaemon?: boolean;
  /**
   * Some process listens to the TCM-USER netlink group (a daemon implies one). Without a listener the
   * real kernel refuses `attrib/dev_size` and `attrib/dev_config` on an enabled device with ESRCH,
   * and so does the fake. Default false.
   */
  netlinkListener?: boolean;
  /**
   * `system.joinNetlinkGroup('TCM-USER', 'config')` succeeds (the family is registered, as when
   * target_core_user is loaded) and counts as a listener until closed. Default true; false makes it
   * resolve undefined, like a kernel or process that cannot join.
   */
  netlinkJoinable?: boolean;
  /** iSCSI portals (`address:port`) some other program listens on: mkdir of that `np/` entry fails with EADDRINUSE. */
  portalsInUse?: readonly string[];
  /** Return an errno code (e.g. `EIO`) to make that operation fail before it happens. */
  fail?: (operation: FakeOperation) => string | undefined;
}

export interface FakeKernel {
  /** The temporary folder holding everything. */
  readonly root: string;
  readonly configfsRoot: string;
  readonly sysfsRoot: string;
  readonly devRoot: string;
  readonly procRoot: string;
  /** Pass as `system` (or spread `kernel.roots`) to every @tcmu/configfs call. */
  readonly system: SystemAccess;
  /** `{ configfsRoot, sysfsRoot, devRoot, procRoot, system }`. */
  readonly roots: {
    configfsRoot: string;
    sysfsRoot: string;
    devRoot: string;
    procRoot: string;
    system: SystemAccess;
  };
  /** Every mutating operation in order. */
  readonly operations: FakeOperation[];
  /** Control tokens written per device folder (relative path), in order. */
  readonly controlWrites: Map<string, string[]>;
  /** Sorted list of every path under configfs, sysfs' uio/scsi folders and /dev (symlinks with targets). */
  snapshot(): Promise<string[]>;
  /** Removes the temporary folder. */
  dispose(): Promise<void>;
}

const MODULE_PATHS: Record<string, string> = {
  target_core_user: 'sys/module/target_core_user',
  tcm_loop: 'sys/module/tcm_loop',
  sd_mod: 'sys/bus/scsi/drivers/sd',
  sg: 'sys/class/scsi_generic',
  iscsi_target_mod: 'sys/module/iscsi_target_mod',
};

const READ_ONLY = new Set([
  'info',
  'address',
  'hba_info',
  'hw_block_size',
  'hw_max_sectors',
  'hw_queue_depth',
]);
const BEFORE_ENABLE_ONLY = new Set(['max_data_area_mb', 'data_pages_per_blk', 'cmd_ring_size_mb']);

function systemError(code: string, operation: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${operation} '${path}'`), { code });
}

interface DeviceModel {
  enabled: boolean;
  control: Map<string, string>;
  uio?: string;
}

interface DiskModel {
  scsiDirectory: string;
  nodes: string[];
}

/**
 * A temporary folder laid out like configfs, sysfs, /dev and /proc, and a {@link SystemAccess} that
 * acts on it the way the kernel would: mkdir of a device makes its attribute files, `enable` makes a
 * uio device, a LUN link makes a SCSI disk (sysfs entry + device nodes), configfs refuses to rmdir a
 * folder holding user-made entries or a device still linked from a LUN, and every write to `control`
 * must be one token. Reads under `<procRoot>` (except `mounts`) go to the real /proc: process liveness
 * and open file descriptors are real.
 */
export async function createFakeKernel(options: FakeKernelOptions = {}): Promise<FakeKernel> {
  const root = await fs.mkdtemp(join(tmpdir(), 'tcmu-fake-kernel-'));
  const features = {
    netlinkReplyOptOut: true,
    commandRingSize: true,
    dataPagesPerBlock: true,
    taskManagementNotification: true,
    loopbackAddress: true,
    ...options.features,
  };
  const configfsRoot = join(root, 'config');
  const sysfsRoot = join(root, 'sys');
  const devRoot = join(root, 'dev');
  const procRoot = join(root, 'proc');
  const target = join(configfsRoot, 'target');
  const loaded = new Set(options.loadedModules ?? Object.keys(MODULE_PATHS));
  const loadable = new Set(options.loadableModules ?? Object.keys(MODULE_PATHS));
  const devtmpfs = options.devtmpfs ?? true;

  for (const dir of [configfsRoot, 'sys/class/uio', 'sys/bus/scsi/devices', 'sys/module', 'dev', 'proc']) {
    await fs.mkdir(dir.startsWith('/') ? dir : join(root, dir), { recursive: true });
  }
  for (const module of loaded)
    await fs.mkdir(join(root, MODULE_PATHS[module] ?? `sys/module/${module}`), { recursive: true });
  const mountLine = `configfs ${configfsRoot} configfs rw,nosuid,nodev,noexec,relatime 0 0\n`;
  await fs.writeFile(
    join(procRoot, 'mounts'),
    `proc /proc proc rw 0 0\n${options.configfsMounted === false ? '' : mountLine}`,
  );
  if (options.configfsMounted !== false) {
    await fs.mkdir(join(target, 'core'), { recursive: true });
    await fs.writeFile(join(target, 'version'), 'Target Engine Core ConfigFS Infrastructure v5.0 (fake)\n');
  }

  const operations: FakeOperation[] = [];
  const controlWrites = new Map<string, string[]>();
  const kernelMade = new Set<string>();
  const devices = new Map<string, DeviceModel>();
  const disks = new Map<string, DiskModel>(); // by LUN link path
  const hosts = new Map<string, number>(); // target folder → SCSI host
  const iscsiLunLinks = new Map<string, string>(); // iSCSI TPG LUN link → backstore folder
  const mappedLunLinks = new Map<string, string>(); // ACL mapped LUN link → TPG LUN folder
  let nextUio = 0;
  let joinedListeners = 0; // open joinNetlinkGroup memberships
  let nextHost = 2;
  let nextDisk = 1;
  let nextGeneric = 1;

  const relative = (path: string) => (path.startsWith(`${root}/`) ? path.slice(root.length + 1) : path);
  const inConfigfs = (path: string) => path === target || path.startsWith(`${target}/`);
  const underTarget = (path: string) => path.slice(target.length + 1).split('/');

  function record(operation: FakeOperation): void {
    const code = options.fail?.(operation);
    if (code !== undefined) throw systemError(code, operation.operation, operation.path);
    operations.push(operation);
  }

  async function makeFile(path: string, text = ''): Promise<void> {
    await fs.writeFile(path, text);
    kernelMade.add(path);
  }
  async function makeDirectory(path: string): Promise<void> {
    await fs.mkdir(path);
    kernelMade.add(path);
  }
  async function isDirectory(path: string): Promise<boolean> {
    return (await fs.lstat(path).catch(() => undefined))?.isDirectory() ?? false;
  }
  async function exists(path: string): Promise<boolean> {
    return (await fs.lstat(path).catch(() => undefined)) !== undefined;
  }

  function diskName(n: number): string {
    let name = '';
    let value = n;
    do {
      name = String.fromCharCode(97 + (value % 26)) + name;
      value = Math.floor(value / 26) - 1;
    } while (value >= 0);
    return `sd${name}`;
  }

  async function populateDevice(path: string): Promise<void> {
    for (const file of ['control', 'enable', 'info', 'udev_path', 'alias']) {
      await makeFile(
        join(path, file),
        file === 'enable' ? '0\n' : file === 'info' ? 'Status: DEACTIVATED\n' : '',
      );
    }
    for (const dir of ['attrib', 'wwn', 'pr', 'alua', 'statistics', 'action'])
      await makeDirectory(join(path, dir));
    const attributes: Record<string, string> = {
      dev_config: '',
      dev_size: '0',
      hw_block_size: '512',
      hw_max_sectors: '128',
      hw_queue_depth: '128',
      max_data_area_mb: '1024',
      cmd_time_out: '30',
      qfull_time_out: '-1',
      emulate_write_cache: '0',
      pgr_support: '1',
      alua_support: '1',
    };
    if (features.netlinkReplyOptOut) attributes.nl_reply_supported = '0';
    if (features.commandRingSize) attributes.cmd_ring_size_mb = '8';
    if (features.dataPagesPerBlock) attributes.data_pages_per_blk = '1';
    if (features.taskManagementNotification) attributes.tmr_notification = '0';
    for (const [name, value] of Object.entries(attributes))
      await makeFile(join(path, 'attrib', name), `${value}\n`);
    await makeFile(join(path, 'wwn', 'vpd_unit_serial'), '');
    await makeFile(join(path, 'action', 'block_dev'), '0\n');
    await makeFile(join(path, 'action', 'reset_ring'), '');
    devices.set(path, { enabled: false, control: new Map() });
  }

  async function onMkdir(path: string): Promise<void> {
    const parts = underTarget(path);
    const parentExists = await isDirectory(join(path, '..'));
    if (!parentExists) throw systemError('ENOENT', 'mkdir', path);
    if (await exists(path)) throw systemError('EEXIST', 'mkdir', path);
    if (parts[0] === 'core' && parts.length === 2) {
      if (!/^user_\d+$/.test(parts[1]!)) throw systemError('EINVAL', 'mkdir', path);
      await fs.mkdir(path);
      await makeFile(join(path, 'hba_info'), 'HBA Index: 1 plugin: user\n');
      await makeFile(join(path, 'hba_mode'), '0\n');
      return;
    }
    if (parts[0] === 'core' && parts.length === 3) {
      await fs.mkdir(path);
      await populateDevice(path);
      return;
    }
    if (parts[0] === 'loopback' && parts.length === 1) {
      if (!loaded.has('tcm_loop') && !loadable.has('tcm_loop')) throw systemError('ENODEV', 'mkdir', path);
      await fs.mkdir(path);
      await makeFile(join(path, 'version'), 'TCM Loopback Fabric module (fake)\n');
      await makeDirectory(join(path, 'discovery_auth'));
      return;
    }
    if (parts[0] === 'loopback' && parts.length === 2) {
      if (!/^naa\.[0-9a-f]{16}$/.test(parts[1]!)) throw systemError('EINVAL', 'mkdir', path);
      await fs.mkdir(path);
      await makeDirectory(join(path, 'fabric_statistics'));
      hosts.set(path, nextHost++);
      return;
    }
    if (parts[0] === 'loopback' && parts.length === 3 && /^tpgt_\d+$/.test(parts[2]!)) {
      await fs.mkdir(path);
      for (const dir of ['lun', 'acls', 'attrib', 'param', 'auth', 'np'])
        await makeDirectory(join(path, dir));
      await makeFile(join(path, 'nexus'), '');
      await makeFile(join(path, 'transport_status'), 'ONLINE\n');
      if (features.loopbackAddress) {
        const host = hosts.get(join(path, '..'));
        await makeFile(join(path, 'address'), `${host}:0:${parts[2]!.slice(5)}\n`);
      }
      return;
    }
    if (parts[0] === 'loopback' && parts.length === 5 && parts[3] === 'lun' && /^lun_\d+$/.test(parts[4]!)) {
      await fs.mkdir(path);
      await makeDirectory(join(path, 'statistics'));
      await makeFile(join(path, 'alua_tg_pt_offline'), '0\n');
      return;
    }
    if (parts[0] === 'iscsi') {
      await onIscsiMkdir(path, parts);
      return;
    }
    throw systemError('EPERM', 'mkdir', path);
  }

  /** LIO's iSCSI fabric: iscsi/<iqn>/tpgt_N/{lun/lun_M,np/<addr:port>,acls/<iqn>/lun_M}. */
  async function onIscsiMkdir(path: string, parts: string[]): Promise<void> {
    const files = async (folder: string, entries: Record<string, string>) => {
      for (const [name, value] of Object.entries(entries)) await makeFile(join(folder, name), `${value}\n`);
    };
    if (parts.length === 1) {
      if (!loaded.has('iscsi_target_mod') && !loadable.has('iscsi_target_mod'))
        throw systemError('ENODEV', 'mkdir', path);
      await fs.mkdir(path);
      await makeFile(join(path, 'lio_version'), 'Datera Inc. iSCSI Target (fake)\n');
      await makeDirectory(join(path, 'discovery_auth'));
      return;
    }
    if (parts.length === 2) {
      if (!/^(iqn\.|eui\.|naa\.)[a-z0-9.:-]+$/.test(parts[1]!)) throw systemError('EINVAL', 'mkdir', path);
      await fs.mkdir(path);
      await makeDirectory(join(path, 'fabric_statistics'));
      return;
    }
    if (parts.length === 3 && /^tpgt_\d+$/.test(parts[2]!)) {
      await fs.mkdir(path);
      for (const dir of ['lun', 'acls', 'attrib', 'param', 'auth', 'np', 'fabric_statistics'])
        await makeDirectory(join(path, dir));
      await files(path, { enable: '0', dynamic_sessions: '' });
      await files(join(path, 'attrib'), {
        authentication: '1',
        generate_node_acls: '0',
        cache_dynamic_acls: '0',
        demo_mode_write_protect: '1',
        prod_mode_write_protect: '0',
        login_timeout: '15',
        default_cmdsn_depth: '64',
      });
      await files(join(path, 'auth'), { userid: '', password: '', userid_mutual: '', password_mutual: '' });
      await files(join(path, 'param'), { TargetAlias: '', AuthMethod: 'CHAP,None', MaxConnections: '1' });
      return;
    }
    const inTpgt = parts.length >= 5 && /^tpgt_\d+$/.test(parts[2]!);
    if (inTpgt && parts.length === 5 && parts[3] === 'lun' && /^lun_\d+$/.test(parts[4]!)) {
      await fs.mkdir(path);
      await makeDirectory(join(path, 'statistics'));
      await files(path, { alua_tg_pt_offline: '0' });
      return;
    }
    if (inTpgt && parts.length === 5 && parts[3] === 'np') {
      if (!/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:.]+\]):\d{1,5}$/.test(parts[4]!))
        throw systemError('EINVAL', 'mkdir', path);
      if (options.portalsInUse?.includes(parts[4]!)) throw systemError('EADDRINUSE', 'mkdir', path);
      await fs.mkdir(path);
      await files(path, { iser: '0' });
      return;
    }
    if (inTpgt && parts.length === 5 && parts[3] === 'acls') {
      if (!/^(iqn\.|eui\.|naa\.)[a-z0-9.:-]+$/.test(parts[4]!)) throw systemError('EINVAL', 'mkdir', path);
      await fs.mkdir(path);
      for (const dir of ['attrib', 'auth', 'param', 'fabric_statistics'])
        await makeDirectory(join(path, dir));
      await files(path, { info: '', cmdsn_depth: '64', tag: '' });
      await files(join(path, 'attrib'), { authentication: '-1' });
      await files(join(path, 'auth'), { userid: '', password: '', userid_mutual: '', password_mutual: '' });
      return;
    }
    if (inTpgt && parts.length === 6 && parts[3] === 'acls' && /^lun_\d+$/.test(parts[5]!)) {
      await fs.mkdir(path);
      await makeDirectory(join(path, 'statistics'));
      await files(path, { write_protect: '0' });
      return;
    }
    throw systemError('EPERM', 'mkdir', path);
  }

  async function onRmdir(path: string): Promise<void> {
    if (!(await exists(path))) throw systemError('ENOENT', 'rmdir', path);
    if (!(await isDirectory(path))) throw systemError('ENOTDIR', 'rmdir', path);
    if (kernelMade.has(path) || path === target || path === join(target, 'core')) {
      throw systemError('EPERM', 'rmdir', path);
    }
    for (const child of await fs.readdir(path)) {
      if (!kernelMade.has(join(path, child))) throw systemError('ENOTEMPTY', 'rmdir', path);
    }
    const device = devices.get(path);
    if (device) {
      for (const link of disks.keys()) {
        if ((await fs.readlink(link).catch(() => '')) === path) throw systemError('EBUSY', 'rmdir', path);
      }
      if ([...iscsiLunLinks.values()].includes(path)) throw systemError('EBUSY', 'rmdir', path);
      if (device.uio) {
        await fs.rm(join(sysfsRoot, 'class/uio', device.uio), { recursive: true, force: true });
        await fs.rm(join(devRoot, device.uio), { force: true });
      }
      devices.delete(path);
    }
    if ([...mappedLunLinks.values()].includes(path)) throw systemError('EBUSY', 'rmdir', path);
    hosts.delete(path);
    for (const made of [...kernelMade]) if (made.startsWith(`${path}/`)) kernelMade.delete(made);
    await fs.rm(path, { recursive: true });
  }

  async function onWrite(path: string, text: string): Promise<void> {
    const stat = await fs.lstat(path).catch(() => undefined);
    if (!stat) throw systemError('ENOENT', 'open', path);
    if (stat.isDirectory()) throw systemError('EISDIR', 'open', path);
    const name = path.slice(path.lastIndexOf('/') + 1);
    const folder = path.slice(0, path.lastIndexOf('/'));
    if (READ_ONLY.has(name) && kernelMade.has(path)) throw systemError('EACCES', 'open', path);
    const device = devices.get(folder) ?? devices.get(join(folder, '..'));
    if (device && name === 'control' && devices.has(folder)) {
      if (/[,\n]/.test(text.trim()) || !/^[a-z_]+=/.test(text)) throw systemError('EINVAL', 'write', path);
      const [key, value] = [text.slice(0, text.indexOf('=')), text.slice(text.indexOf('=') + 1).trim()];
      const writes = controlWrites.get(relative(folder)) ?? [];
      writes.push(text);
      controlWrites.set(relative(folder), writes);
      if (BEFORE_ENABLE_ONLY.has(key) && device.enabled) throw systemError('EINVAL', 'write', path);
      if (key === 'cmd_ring_size_mb' && !features.commandRingSize) return; // unknown tokens are ignored
      if (key === 'data_pages_per_blk' && !features.dataPagesPerBlock) return;
      if (key === 'nl_reply_supported' && !features.netlinkReplyOptOut) return;
      if (key === 'dev_config' && value.length > 255) throw systemError('EINVAL', 'write', path);
      device.control.set(key, value);
      const attribute = join(folder, 'attrib', key);
      if (await exists(attribute)) await fs.writeFile(attribute, `${value}\n`);
      return;
    }
    if (device && name === 'enable' && devices.has(folder)) {
      if (text.trim() !== '1') throw systemError('EINVAL', 'write', path);
      if (device.enabled) throw systemError('EEXIST', 'write', path);
      if (options.netlinkDaemon && device.control.get('nl_reply_supported') !== '-1') {
        throw systemError('ETIMEDOUT', 'write (the real kernel would hang in D state here)', path);
      }
      device.enabled = true;
      await fs.writeFile(path, '1\n');
      const parts = underTarget(folder);
      await fs.writeFile(
        join(folder, 'info'),
        `Status: ACTIVATED  Max Queue Depth: 128  SectorSize: 512  HwMaxSectors: 128\n` +
          `        Config: ${device.control.get('dev_config') ?? ''} Size: ${device.control.get('dev_size') ?? 0}\n`,
      );
      if (options.createsUio ?? true) {
        const uio = `uio${nextUio++}`;
        const base = join(sysfsRoot, 'class/uio', uio);
        await fs.mkdir(join(base, 'maps/map0'), { recursive: true });
        const hba = parts[1]!.slice(5);
        await fs.writeFile(
          join(base, 'name'),
          `tcm-user/${hba}/${parts[2]}/${device.control.get('dev_config') ?? ''}\n`,
        );
        await fs.writeFile(join(base, 'maps/map0/size'), '0x40800000\n');
        await fs.writeFile(join(base, 'maps/map0/offset'), '0x0\n');
        await fs.writeFile(join(base, 'dev'), `247:${uio.slice(3)}\n`);
        if (devtmpfs) await fs.writeFile(join(devRoot, uio), `character 247:${uio.slice(3)}`);
        device.uio = uio;
      }
      return;
    }
    if (device && folder.endsWith('/action')) {
      if (!device.enabled) throw systemError('EINVAL', 'write', path);
      if (name === 'reset_ring' && !['1', '2'].includes(text.trim()))
        throw systemError('EINVAL', 'write', path);
      if (name === 'block_dev' && !['0', '1'].includes(text.trim()))
        throw systemError('EINVAL', 'write', path);
      await fs.writeFile(path, text);
      return;
    }
    if (device && folder.endsWith('/attrib')) {
      if (name !== 'dev_config' && !/^-?\d+$/.test(text.trim())) throw systemError('EINVAL', 'write', path);
      const listener = (options.netlinkListener ?? options.netlinkDaemon ?? false) || joinedListeners > 0;
      if ((name === 'dev_size' || name === 'dev_config') && device.enabled && !listener) {
        throw systemError('ESRCH', 'write', path);
      }
      await fs.writeFile(path, `${text.trim()}\n`);
      return;
    }
    if (inConfigfs(path) && underTarget(path)[0] === 'iscsi') {
      const parts = underTarget(path);
      const flag =
        ['enable', 'write_protect'].includes(name) || (parts[3] === 'attrib' && name !== 'authentication');
      if (flag && !['0', '1'].includes(text.trim())) throw systemError('EINVAL', 'write', path);
      if (name === 'authentication' && !['0', '1', '-1'].includes(text.trim()))
        throw systemError('EINVAL', 'write', path);
      if (
        name === 'enable' &&
        parts.length === 4 &&
        text.trim() === '1' &&
        (await fs.readFile(path, 'utf8')).trim() === '1'
      )
        throw systemError('EEXIST', 'write', path);
      if ((name === 'userid' || name === 'password') && text.length > 255)
        throw systemError('EINVAL', 'write', path);
      await fs.writeFile(path, `${text.trim()}\n`);
      return;
    }
    if (name === 'nexus' && inConfigfs(path)) {
      const current = (await fs.readFile(path, 'utf8')).trim();
      if (text.trim() === 'NULL') {
        if (current === '') throw systemError('ENODEV', 'write', path);
        await fs.writeFile(path, '');
        return;
      }
      if (!/^naa\.[0-9a-f]{16}$/.test(text.trim())) throw systemError('EINVAL', 'write', path);
      if (current !== '') throw systemError('EEXIST', 'write', path);
      await fs.writeFile(path, `${text.trim()}\n`);
      return;
    }
    await fs.writeFile(path, text);
  }

  async function onSymlink(linkTarget: string, path: string): Promise<void> {
    if (!inConfigfs(path)) {
      await fs.symlink(linkTarget, path);
      return;
    }
    const lunFolder = path.slice(0, path.lastIndexOf('/'));
    const parts = underTarget(lunFolder);
    if (parts[0] === 'iscsi') {
      await onIscsiSymlink(linkTarget, path, lunFolder, parts);
      return;
    }
    if (!(parts[0] === 'loopback' && parts.length === 5 && /^lun_\d+$/.test(parts[4]!))) {
      throw systemError('EPERM', 'symlink', path);
    }
    if (!(await isDirectory(lunFolder))) throw systemError('ENOENT', 'symlink', path);
    for (const child of await fs.readdir(lunFolder)) {
      if (!kernelMade.has(join(lunFolder, child))) throw systemError('EEXIST', 'symlink', path);
    }
    const device = devices.get(linkTarget);
    if (!device) throw systemError('EINVAL', 'symlink', path);
    if (!device.enabled) throw systemError('ENODEV', 'symlink', path);
    await fs.symlink(linkTarget, path);
    const tpgt = join(lunFolder, '../..');
    const nexus = (await fs.readFile(join(tpgt, 'nexus'), 'utf8')).trim();
    if (!(options.createsDisk ?? true) || nexus === '') return;
    const host = hosts.get(join(tpgt, '..'));
    const address = `${host}:0:${parts[2]!.slice(5)}:${parts[4]!.slice(4)}`;
    const scsiDirectory = join(sysfsRoot, 'bus/scsi/devices', address);
    const disk = diskName(nextDisk++);
    const generic = `sg${nextGeneric++}`;
    const diskMinor = (nextDisk - 1) * 16;
    await fs.mkdir(join(scsiDirectory, 'block', disk), { recursive: true });
    await fs.writeFile(join(scsiDirectory, 'block', disk, 'dev'), `8:${diskMinor}\n`);
    await fs.mkdir(join(scsiDirectory, 'scsi_generic', generic), { recursive: true });
    await fs.writeFile(join(scsiDirectory, 'scsi_generic', generic, 'dev'), `21:${generic.slice(2)}\n`);
    const nodes: string[] = [];
    if (devtmpfs) {
      for (const [node, text] of [
        [disk, `block 8:${diskMinor}`],
        [generic, `character 21:${generic.slice(2)}`],
      ] as const) {
        await fs.writeFile(join(devRoot, node), text);
        nodes.push(join(devRoot, node));
      }
    }
    disks.set(path, { scsiDirectory, nodes });
  }

  async function onIscsiSymlink(linkTarget: string, path: string, folder: string, parts: string[]) {
    if (!(await isDirectory(folder))) throw systemError('ENOENT', 'symlink', path);
    for (const child of await fs.readdir(folder)) {
      if (!kernelMade.has(join(folder, child))) throw systemError('EEXIST', 'symlink', path);
    }
    if (parts.length === 5 && parts[3] === 'lun' && /^lun_\d+$/.test(parts[4]!)) {
      const device = devices.get(linkTarget);
      if (!device) throw systemError('EINVAL', 'symlink', path);
      if (!device.enabled) throw systemError('ENODEV', 'symlink', path);
      await fs.symlink(linkTarget, path);
      iscsiLunLinks.set(path, linkTarget);
      return;
    }
    if (parts.length === 6 && parts[3] === 'acls' && /^lun_\d+$/.test(parts[5]!)) {
      // A mapped LUN points at a LUN of the same TPG that exports a backstore.
      const tpgt = join(folder, '../../..');
      if (
        !linkTarget.startsWith(`${tpgt}/lun/`) ||
        ![...iscsiLunLinks.keys()].some((l) => l.startsWith(`${linkTarget}/`))
      )
        throw systemError('EINVAL', 'symlink', path);
      await fs.symlink(linkTarget, path);
      mappedLunLinks.set(path, linkTarget);
      return;
    }
    throw systemError('EPERM', 'symlink', path);
  }

  async function onUnlink(path: string): Promise<void> {
    if (inConfigfs(path) && (await fs.lstat(path).catch(() => undefined))?.isSymbolicLink() !== true) {
      throw systemError((await exists(path)) ? 'EPERM' : 'ENOENT', 'unlink', path);
    }
    await fs.unlink(path);
    iscsiLunLinks.delete(path);
    mappedLunLinks.delete(path);
    const disk = disks.get(path);
    if (disk) {
      await fs.rm(disk.scsiDirectory, { recursive: true, force: true });
      for (const node of disk.nodes) await fs.rm(node, { force: true });
      disks.delete(path);
    }
  }

  async function joinNetlinkGroup(family: string, group: string): Promise<NetlinkMembership | undefined> {
    if (!(options.netlinkJoinable ?? true) || !loaded.has('target_core_user')) return undefined;
    if (family !== 'TCM-USER' || group !== 'config') return undefined;
    joinedListeners += 1;
    let open = true;
    return {
      close() {
        if (!open) return;
        open = false;
        joinedListeners -= 1;
      },
    };
  }

  const system: SystemAccess = {
    joinNetlinkGroup,
    async mkdir(path) {
      record({ operation: 'mkdir', path: relative(path) });
      if (inConfigfs(path)) await onMkdir(path);
      else await fs.mkdir(path);
    },
    async rmdir(path) {
      record({ operation: 'rmdir', path: relative(path) });
      if (inConfigfs(path)) await onRmdir(path);
      else await fs.rmdir(path);
    },
    async writeFile(path, text) {
      record({ operation: 'write', path: relative(path), data: text });
      await onWrite(path, text);
    },
    async readFile(path) {
      if (path.startsWith(`${procRoot}/`) && path !== join(procRoot, 'mounts')) {
        return fs.readFile(`/proc/${path.slice(procRoot.length + 1)}`, 'utf8');
      }
      const name = path.slice(path.lastIndexOf('/') + 1);
      if (name === 'control' && kernelMade.has(path)) throw systemError('EACCES', 'open', path);
      return fs.readFile(path, 'utf8');
    },
    async readdir(path) {
      if (path === procRoot) return [...(await fs.readdir('/proc')), 'mounts'];
      if (path.startsWith(`${procRoot}/`)) return fs.readdir(`/proc/${path.slice(procRoot.length + 1)}`);
      return fs.readdir(path);
    },
    async readlink(path) {
      if (path.startsWith(`${procRoot}/`)) return fs.readlink(`/proc/${path.slice(procRoot.length + 1)}`);
      return fs.readlink(path);
    },
    async symlink(linkTarget, path) {
      record({ operation: 'symlink', path: relative(path), data: relative(linkTarget) });
      await onSymlink(linkTarget, path);
    },
    async unlink(path) {
      record({ operation: 'unlink', path: relative(path) });
      await onUnlink(path);
    },
    async kind(path): Promise<PathKind | undefined> {
      const stat = await fs.lstat(path).catch(() => undefined);
      if (!stat) return undefined;
      if (stat.isSymbolicLink()) return 'symlink';
      if (stat.isDirectory()) return 'directory';
      return stat.isFile() ? 'file' : 'other';
    },
    async makeDeviceNode(path, type, major, minor) {
      record({ operation: 'mknod', path: relative(path), data: `${type} ${major}:${minor}` });
      await fs.writeFile(path, `${type} ${major}:${minor}`, { flag: 'wx' });
    },
    async run(command, args): Promise<CommandResult> {
      record({ operation: 'run', path: command, data: args.join(' ') });
      if (command === 'modprobe') {
        const module = args[args.length - 1] ?? '';
        if (!loadable.has(module)) {
          return {
            exitCode: 1,
            stdout: '',
            stderr: `modprobe: FATAL: Module ${module} not found in directory /lib/modules/fake\n`,
          };
        }
        loaded.add(module);
        await fs.mkdir(join(root, MODULE_PATHS[module] ?? `sys/module/${module}`), { recursive: true });
        return { exitCode: 0, stdout: '', stderr: '' };
      }
      if (command === 'mount' && args.includes('configfs')) {
        await fs.appendFile(join(procRoot, 'mounts'), mountLine);
        await fs.mkdir(join(target, 'core'), { recursive: true });
        return { exitCode: 0, stdout: '', stderr: '' };
      }
      return { exitCode: 127, stdout: '', stderr: `${command}: not simulated by the fake kernel\n` };
    },
  };

  async function walk(path: string, out: string[]): Promise<void> {
    for (const entry of (await fs.readdir(path).catch(() => [])).sort()) {
      const full = join(path, entry);
      const stat = await fs.lstat(full);
      if (stat.isSymbolicLink()) out.push(`${relative(full)} -> ${relative(await fs.readlink(full))}`);
      else {
        out.push(relative(full));
        if (stat.isDirectory()) await walk(full, out);
      }
    }
  }

  return {
    root,
    configfsRoot,
    sysfsRoot,
    devRoot,
    procRoot,
    system,
    roots: { configfsRoot, sysfsRoot, devRoot, procRoot, system },
    operations,
    controlWrites,
    async snapshot() {
      const out: string[] = [];
      for (const dir of [
        configfsRoot,
        join(sysfsRoot, 'class/uio'),
        join(sysfsRoot, 'bus/scsi/devices'),
        devRoot,
      ]) {
        await walk(dir, out);
      }
      return out.sort();
    },
    async dispose() {
      await fs.rm(root, { recursive: true, force: true });
    },
  };
}
