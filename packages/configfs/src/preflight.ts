import { randomBytes } from 'node:crypto';
import { ConfigfsError } from './errors';
import {
  type Context,
  exists,
  mkdir,
  mkdirInShared,
  readOptional,
  removeDirectory,
  removeDirectoryIfUnused,
  resolveRoots,
  withLock,
  write,
} from './internal';
import { currentOwner, formatDevConfig } from './ownership';
import type { KernelFeatures, PreflightOptions, PreflightReport, SystemRoots } from './types';
import { validateHba } from './validate';

/** Modules the toolkit needs, and the sysfs path that exists once each is loaded (or built in). */
const MODULES: ReadonlyArray<{ module: string; present: (context: Context) => string }> = [
  { module: 'target_core_user', present: (c) => `${c.sysfsRoot}/module/target_core_user` },
  { module: 'tcm_loop', present: (c) => `${c.sysfsRoot}/module/tcm_loop` },
  { module: 'sd_mod', present: (c) => `${c.sysfsRoot}/bus/scsi/drivers/sd` },
  { module: 'sg', present: (c) => `${c.sysfsRoot}/class/scsi_generic` },
];

async function configfsMounted(context: Context): Promise<boolean> {
  const mounts = await readOptional(context, `${context.procRoot}/mounts`);
  if (mounts === undefined) return exists(context, context.targetRoot);
  return mounts.split('\n').some((line) => {
    const [, mountPoint, type] = line.split(' ');
    return type === 'configfs' && mountPoint === context.configfsRoot;
  });
}

/** Mounts configfs at `configfsRoot` (default /sys/kernel/config) if it is not mounted yet. */
export async function mountConfigfs(options: SystemRoots = {}): Promise<void> {
  const context = resolveRoots(options);
  if (await configfsMounted(context)) return;
  const result = await context.system.run('mount', ['-t', 'configfs', 'configfs', context.configfsRoot]);
  if (result.exitCode !== 0) {
    throw new ConfigfsError(
      'TCMU_ERR_CONFIGFS_NOT_MOUNTED',
      `mount -t configfs configfs ${context.configfsRoot} failed: ${result.stderr.trim() || `exit ${result.exitCode}`}`,
      { path: context.configfsRoot, operation: 'mount' },
    );
  }
}

/** Every feature unknown (false): what a preflight without the probe reports. */
function noFeatures(): KernelFeatures {
  return {
    netlinkReplyOptOut: false,
    commandRingSize: false,
    dataPagesPerBlock: false,
    taskManagementNotification: false,
    devConfigAttribute: false,
    loopbackAddress: undefined,
  };
}

/** Detects features by attribute existence on a probe device that is never enabled, then removed. */
async function probeFeatures(context: Context, hba: number): Promise<KernelFeatures> {
  return withLock(context, async () => {
    const hbaDirectory = `${context.targetRoot}/core/user_${hba}`;
    // Other processes may make or remove the HBA and `loopback` at the same moment: made with
    // mkdirInShared, and removed by whoever leaves them empty, like a device's (see the note on shared folders in user-device.ts).
    const probe = `${hbaDirectory}/tcmu-ts-probe-${process.pid}`;
    const features = noFeatures();
    try {
      await mkdirInShared(context, hbaDirectory, probe);
      // Marked as ours, so a crash during the probe leaves something removeStale() cleans up.
      const owner = await currentOwner(context.system, context.procRoot);
      await write(
        context,
        `${probe}/control`,
        `dev_config=${formatDevConfig(`tcmu-ts-probe-${process.pid}`, owner)}`,
      );
      features.netlinkReplyOptOut = await exists(context, `${probe}/attrib/nl_reply_supported`);
      features.commandRingSize = await exists(context, `${probe}/attrib/cmd_ring_size_mb`);
      features.dataPagesPerBlock = await exists(context, `${probe}/attrib/data_pages_per_blk`);
      features.taskManagementNotification = await exists(context, `${probe}/attrib/tmr_notification`);
      features.devConfigAttribute = await exists(context, `${probe}/attrib/dev_config`);
    } finally {
      await removeDirectory(context, probe);
      await removeDirectoryIfUnused(context, hbaDirectory);
    }
    const fabric = `${context.targetRoot}/loopback`;
    const target = `${fabric}/naa.5001405${randomBytes(5).toString('hex').slice(0, 9)}`;
    let madeTarget = false;
    let madeTpgt = false;
    try {
      await mkdirInShared(context, fabric, target);
      madeTarget = true;
      await mkdir(context, `${target}/tpgt_1`);
      madeTpgt = true;
      features.loopbackAddress = await exists(context, `${target}/tpgt_1/address`);
    } finally {
      if (madeTpgt) await removeDirectory(context, `${target}/tpgt_1`);
      if (madeTarget) await removeDirectory(context, target);
      await removeDirectoryIfUnused(context, fabric);
    }
    return features;
  });
}

/**
 * Checks that this machine can run TCMU devices, fixing what it safely can, and reports features.
 * In order: root (TCMU_ERR_NOT_ROOT), modules (modprobe the missing ones; TCMU_ERR_MODULE_MISSING
 * names those that still fail), configfs mounted (TCMU_ERR_CONFIGFS_NOT_MOUNTED: call
 * `mountConfigfs()`), target core present, then features (TCMU_ERR_KERNEL_FEATURE_MISSING when
 * `nl_reply_supported` is absent: without it a running tcmu-runner can hang `enable`).
 */
export async function preflight(options: PreflightOptions = {}): Promise<PreflightReport> {
  const context = resolveRoots(options);
  const hba = validateHba(options.hba ?? 0);
  if ((options.requireRoot ?? true) && typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new ConfigfsError(
      'TCMU_ERR_NOT_ROOT',
      'TCMU needs root (configfs and device nodes): run as root, e.g. with sudo',
    );
  }
  const modulesLoaded: string[] = [];
  const missing: string[] = [];
  const messages: string[] = [];
  for (const { module, present } of MODULES) {
    if (await exists(context, present(context))) continue;
    if (options.loadModules ?? true) {
      const result = await context.system.run('modprobe', [module]);
      if (result.exitCode === 0 && (await exists(context, present(context)))) {
        modulesLoaded.push(module);
        continue;
      }
      messages.push(`${module}: ${result.stderr.trim() || `modprobe exit ${result.exitCode}`}`);
    } else {
      messages.push(`${module}: not loaded`);
    }
    missing.push(module);
  }
  if (missing.length > 0) {
    throw new ConfigfsError(
      'TCMU_ERR_MODULE_MISSING',
      `kernel modules missing: ${missing.join(', ')} (${messages.join('; ')}). Install the kernel's modules ` +
        `package or run \`modprobe ${missing.join(' ')}\`; on a kernel without them use the kernel lab`,
      { modules: missing, operation: 'modprobe' },
    );
  }
  if (!(await configfsMounted(context))) {
    throw new ConfigfsError(
      'TCMU_ERR_CONFIGFS_NOT_MOUNTED',
      `configfs is not mounted at ${context.configfsRoot}: call mountConfigfs() or run \`mount -t configfs configfs ${context.configfsRoot}\``,
      { path: context.configfsRoot },
    );
  }
  if (!(await exists(context, `${context.targetRoot}/core`))) {
    throw new ConfigfsError(
      'TCMU_ERR_MODULE_MISSING',
      `${context.targetRoot}/core does not exist: target_core_mod is not loaded (modprobe target_core_user)`,
      { modules: ['target_core_mod'], path: `${context.targetRoot}/core` },
    );
  }
  if (options.probe === false) {
    return {
      modulesLoaded,
      features: noFeatures(),
    };
  }
  const features = await probeFeatures(context, hba);
  if (!features.netlinkReplyOptOut) {
    throw new ConfigfsError(
      'TCMU_ERR_KERNEL_FEATURE_MISSING',
      'this kernel has no nl_reply_supported (added in 4.15): enable could hang while tcmu-runner runs; use a newer kernel',
      { feature: 'nl_reply_supported' },
    );
  }
  if (features.loopbackAddress === false) {
    throw new ConfigfsError(
      'TCMU_ERR_KERNEL_FEATURE_MISSING',
      'tcm_loop has no tpgt address attribute on this kernel, so /dev/sdX cannot be found; use a newer kernel',
      { feature: 'tcm_loop address' },
    );
  }
  return { modulesLoaded, features };
}
