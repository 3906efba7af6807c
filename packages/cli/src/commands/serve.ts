import { spawn } from 'node:child_process';
import { mkdir, unlink } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '@tcmu/backend';
import type { CommandDoneInfo } from '@tcmu/core';
import { parseServeArguments, type ServeOptions } from '../arguments.js';
import { formatBackendLocation } from '../backend-url.js';
import { findLabRunner, noTcmuHint } from '../environment.js';
import { CliError } from '../errors.js';
import { explainError } from '../explain-error.js';
import { SERVE_HELP } from '../help.js';
import type { CommandIo } from '../io.js';
import {
  checkIscsiRequest,
  extractIscsiArguments,
  type StartedIscsiExport,
  startIscsiExport,
} from '../iscsi.js';
import { formatListenAddress } from '../listen-address.js';
import { createLogger, type Logger } from '../logger.js';
import { checkBackendRequest, type OpenedBackend, openBackend } from '../open-backend.js';
import { inspectLink, notifyServiceManager, removeFile, writePidFile } from '../service.js';
import { formatSize } from '../size.js';
import { removeServerState, runDirectory, writeServerState } from '../state.js';

/** The device `serve` keeps alive: what @tcmu/core's openDevice returns, as far as serve needs it. */
export interface ServedDevice {
  /** The disk, e.g. /dev/sdb. */
  readonly devicePath: string;
  /** The SCSI generic node (/dev/sgN), when the sg module is loaded. */
  readonly sgPath?: string | undefined;
  /** Live command counters, when the library keeps them. */
  readonly stats?: {
    readonly received: number;
    readonly completed: number;
    readonly maxInFlight: number;
    readonly inFlight?: number;
    readonly queued?: number;
    readonly aborted?: number;
    readonly busy?: number;
    readonly taskManagement?: number;
    readonly backendErrors?: number;
    readonly handlerFailures?: number;
  };
  /** True when the device was taken over from a server that died (see docs/restart.md). */
  readonly takenOver?: boolean;
  /** The kernel's timeouts: a restart within `commandTimeoutSeconds` is invisible to the initiator. */
  readonly window?: {
    readonly commandTimeoutSeconds: number;
    readonly queueFullTimeoutSeconds: number;
    readonly scsiTimeoutSeconds: number | undefined;
  };
  /** Drains in-flight commands and removes everything the device created in configfs. Idempotent. */
  close(): Promise<void>;
}

/** What serve asks of the device library (injected so tests can run serve without a kernel). */
export interface DeviceOpenRequest {
  readonly name: string;
  readonly size: number;
  readonly blockSize: number;
  readonly backend: Backend;
  readonly lun: number;
  readonly hba: number | undefined;
  readonly readOnly: boolean;
  readonly queueDepth: number | undefined;
  readonly idleSpinMicroseconds?: number | undefined;
  readonly commandTimeoutSeconds?: number | undefined;
  readonly scsiTimeoutSeconds?: number | undefined;
  /** Take over the device of a server that died (file and s3 backends: their data outlives the server). */
  readonly takeOver?: boolean;
  readonly logger: Logger;
  /** Make `<linkDirectory>/<name>` → the disk (the folder is created when missing). */
  readonly linkDirectory?: string | undefined;
  /** Called after every command (metrics, tracing); undefined when nothing observes. */
  readonly onCommandDone?: ((info: CommandDoneInfo) => void) | undefined;
}

/** Everything `tcmu serve` touches outside itself. */
export interface ServeDependencies {
  /** Validates the backend request without creating anything (e.g. a `file:` image's folder). */
  checkBackend(options: ServeOptions): Promise<void>;
  /** Fails with a coded error when the process cannot serve (not root, no TCMU in the kernel). */
  preflight(logger: Logger): Promise<void>;
  /** `signal` fires on SIGINT/SIGTERM during setup: opening stops at once (retries, lease waits). */
  openBackend(options: ServeOptions, logger: Logger, signal?: AbortSignal): Promise<OpenedBackend>;
  openDevice(request: DeviceOpenRequest): Promise<ServedDevice>;
  /** Calls `handler` on SIGINT/SIGTERM (every time); returns a function that removes the handlers. */
  onStopSignal(handler: (signal: NodeJS.Signals) => void): () => void;
  /**
   * Calls `handler` with an error nothing else caught (uncaught exception, unhandled rejection) while
   * serving; returns a function that removes the handler. serve then tears down and fails with it.
   */
  onFatalError(handler: (error: unknown) => void): () => void;
  /** Where the kernel lab runner is (for the "no TCMU" advice), if any. */
  labRunner(): Promise<string | undefined>;
  /** Exports the served disk over iSCSI (`--iscsi`); default: {@link startIscsiExport}. */
  startIscsi?: typeof startIscsiExport;
  /** Sends a state (`READY=1`, `STOPPING=1`) to systemd when `NOTIFY_SOCKET` is set in `env`. */
  notify(state: string, env: Readonly<Record<string, string | undefined>>): Promise<boolean>;
  /** Starts `/bin/sh -c command` with `env` (`--run`); stdio is the server's own. */
  runCommand(command: string, env: Readonly<Record<string, string | undefined>>): RunningCommand;
}

/** A `--run` command while it runs. */
export interface RunningCommand {
  /** The exit status: its own, or 128 + the signal number when a signal ended it. Rejects when it could not start. */
  readonly exited: Promise<number>;
  kill(signal: NodeJS.Signals): void;
}

/** The real dependencies: @tcmu/configfs's preflight and @tcmu/core's openDevice, loaded on first use. */
export const processServeDependencies: ServeDependencies = {
  async checkBackend(options) {
    await checkBackendRequest(options);
  },
  async preflight() {
    const configfs = await import('@tcmu/configfs');
    // Quick checks only (root, modules, configfs mounted): fail before a backend or image is created.
    await configfs.preflight({ probe: false });
  },
  openBackend: (options, logger, signal) => openBackend(options, logger, signal),
  async openDevice(request) {
    const core = await import('@tcmu/core');
    if (request.linkDirectory !== undefined)
      await prepareLink(request.linkDirectory, request.name, request.logger);
    return core.openDevice({
      name: request.name,
      size: request.size,
      blockSize: request.blockSize,
      backend: request.backend,
      lun: request.lun,
      ...(request.hba === undefined ? {} : { hba: request.hba }),
      readOnly: request.readOnly,
      ...(request.queueDepth === undefined ? {} : { queueDepth: request.queueDepth }),
      ...(request.idleSpinMicroseconds === undefined
        ? {}
        : { idleSpinMicroseconds: request.idleSpinMicroseconds }),
      ...(request.commandTimeoutSeconds === undefined
        ? {}
        : { commandTimeoutSeconds: request.commandTimeoutSeconds }),
      ...(request.scsiTimeoutSeconds === undefined ? {} : { scsiTimeoutSeconds: request.scsiTimeoutSeconds }),
      // A device of this name whose server died is taken over; a live server still refuses.
      takeOver: request.takeOver ?? false,
      logger: request.logger,
      ...(request.linkDirectory === undefined ? {} : { linkDirectory: request.linkDirectory }),
      ...(request.onCommandDone === undefined ? {} : { onCommandDone: request.onCommandDone }),
    });
  },
  onStopSignal(handler) {
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
    for (const signal of signals) process.on(signal, handler);
    return () => {
      for (const signal of signals) process.off(signal, handler);
    };
  },
  onFatalError(handler) {
    process.on('uncaughtException', handler);
    process.on('unhandledRejection', handler);
    return () => {
      process.off('uncaughtException', handler);
      process.off('unhandledRejection', handler);
    };
  },
  labRunner: () => findLabRunner(),
  notify: (state, env) => notifyServiceManager(state, env),
  runCommand(command, env) {
    const child = spawn('/bin/sh', ['-c', command], { env: { ...env }, stdio: 'inherit' });
    const exited = new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) =>
        resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)),
      );
    });
    return {
      exited,
      kill: (signal) => {
        child.kill(signal);
      },
    };
  },
};

/**
 * Makes the link folder and clears the way for `<directory>/<name>`: a link left dangling by a server
 * that died is removed; anything else there is left alone (openDevice then fails, saying so).
 */
async function prepareLink(directory: string, name: string, logger: Logger): Promise<void> {
  await mkdir(directory, { recursive: true, mode: 0o755 });
  const path = join(directory, name);
  const link = await inspectLink(path);
  if (link?.dangling) {
    logger.info({ link: path, target: link.target }, 'removing a dangling link left by an earlier server');
    await unlink(path).catch(() => {});
  }
}
/**
 * `tcmu serve`: see SERVE_HELP. Returns 0 after a clean stop on SIGINT/SIGTERM (with `--run`: the
 * command's status). Steps: open the backend, start the observers (metrics, trace), open the device,
 * export it over iSCSI when asked, then serve until stopped; each step records what it made in
 * {@link Setup}, which {@link tearDown} undoes (in the fixed order it documents) on a stop or a failure.
 */
export async function serveCommand(
  argv: readonly string[],
  io: CommandIo,
  dependencies: ServeDependencies = processServeDependencies,
): Promise<number> {
  const { rest, request: iscsiRequest } = extractIscsiArguments(argv);
  const parsed = parseServeArguments(rest, { cwd: io.cwd, pid: io.pid, env: io.env });
  if (parsed.help) {
    io.stdout(SERVE_HELP);
    return 0;
  }
  const options = parsed.options;
  if (iscsiRequest) await checkIscsiRequest(iscsiRequest, io.env, options.name);
  const logger = createLogger(options.logLevel, { device: options.name }, { format: options.logFormat });
  const emit = (event: Record<string, unknown>, text: string) =>
    io.stdout(options.json ? `${JSON.stringify(event)}\n` : `${text}\n`);
  const stop = watchForStop(dependencies, logger);
  const setup: Setup = {};
  try {
    const opened = await openServedBackend(options, dependencies, logger, stop.setupSignal, setup);
    const observers = await startObservers(options, opened.backend, () => setup.device?.stats, logger);
    setup.observers = observers;
    const device = await dependencies.openDevice(deviceRequest(options, opened.backend, logger, observers));
    setup.device = device;
    if (iscsiRequest && !stop.requested) {
      const backstore = { name: options.name, hba: options.hba ?? 0, readOnly: options.readOnly };
      setup.iscsi = await (dependencies.startIscsi ?? startIscsiExport)(
        iscsiRequest,
        backstore,
        io.env,
        logger,
      );
    }
    const linkPath =
      options.linkDirectory === undefined ? undefined : join(options.linkDirectory, options.name);
    const size = opened.backend.size;
    logger.info({ devicePath: device.devicePath, link: linkPath, size: formatSize(size) }, 'ready');
    // From here on the disk may hold the user's data: no failure may discard what this start created.
    setup.served = true;
    const status = stop.requested
      ? 0
      : await serveUntilStopped(options, io, dependencies, logger, stop, setup, emit, linkPath);
    const stats = device.stats;
    await tearDown(setup, logger, { failed: false });
    logger.info({ signal: stop.signal, stats: stats === undefined ? undefined : { ...stats } }, 'stopped');
    if (stop.fatal) throw stop.fatal.error;
    emit({ event: 'stopped', name: options.name, signal: stop.signal, status }, `stopped ${options.name}`);
    return status;
  } catch (error) {
    await tearDown(setup, logger, { failed: true });
    logger.debug({ err: error }, 'serve failed');
    throw explainError(error, {
      name: options.name,
      noTcmuHint: noTcmuHint(await dependencies.labRunner()),
    });
  } finally {
    stop.dispose();
  }
}

/** What serve has set up so far (each step records what it made here, for {@link tearDown}). */
interface Setup {
  backend?: OpenedBackend;
  observers?: Observers;
  device?: ServedDevice;
  iscsi?: StartedIscsiExport;
  announced?: Announced;
  /** The disk was ready: initiators may have written to it, so a created image or volume is kept. */
  served?: boolean;
}

/**
 * Undoes the setup in the order the outside world needs: the iSCSI export and the disk first
 * (initiators go, in-flight commands drain), then the backend, then the pid file and state record
 * (`tcmu ls` shows the server until its disk is gone), the metrics endpoint last. A stop (`failed:
 * false`) throws the first failure, leaving the rest for the failure path; after a failure every
 * step runs, failures are logged, and a backend this start created is discarded unless the disk was
 * ready (from then on it may hold data).
 */
async function tearDown(setup: Setup, logger: Logger, { failed }: { failed: boolean }): Promise<void> {
  const steps: Array<[keyof Setup, string, (() => Promise<void>) | undefined]> = [
    ['iscsi', 'iSCSI teardown failed', setup.iscsi && (() => setup.iscsi!.remove())],
    ['device', 'teardown failed', setup.device && (() => setup.device!.close())],
    [
      'backend',
      'closing the backend failed',
      setup.backend && closeBackend(setup.backend, logger, failed && !setup.served),
    ],
    ['announced', 'withdrawing the pid file failed', setup.announced && (() => setup.announced!.withdraw())],
    ['observers', 'closing the metrics endpoint failed', setup.observers && (() => setup.observers!.close())],
  ];
  for (const [key, failure, undo] of steps) {
    if (undo === undefined) continue;
    if (failed) await undo().catch((error: unknown) => logger.error({ err: error }, failure));
    else await undo();
    setup[key] = undefined;
  }
}

/** Closes the backend; after a failed start also discards what this start created (an image, a volume). */
function closeBackend(opened: OpenedBackend, logger: Logger, discard: boolean): () => Promise<void> {
  if (!discard) return () => opened.close();
  return async () => {
    await opened.close().catch((error) => logger.error({ err: error }, 'closing the backend failed'));
    await opened.discard().catch((error) => logger.warn({ err: error }, 'removing the image failed'));
  };
}

/** SIGINT/SIGTERM and uncaught errors while serve runs. */
interface StopWatch {
  /** The first stop signal, once one arrived. */
  readonly signal: NodeJS.Signals | undefined;
  /** The first error nothing else caught, once one arrived. */
  readonly fatal: { error: unknown } | undefined;
  /** A stop signal or a fatal error arrived. */
  readonly requested: boolean;
  /** Aborted on the first stop signal: opening the backend stops at once (retries, lease waits). */
  readonly setupSignal: AbortSignal;
  /** Resolves on the first stop signal or fatal error. */
  readonly stopped: Promise<void>;
  /** Removes the handlers. */
  dispose(): void;
}

/**
 * Installs the stop handlers. Signals that arrive while setting up are remembered: setup finishes (it
 * cannot be cut in half without leaving configfs entries behind), then everything is torn down at
 * once. A bug anywhere (an uncaught exception) must not leave the device behind: it stops serve the
 * same way, and serve then fails with it.
 */
function watchForStop(dependencies: ServeDependencies, logger: Logger): StopWatch {
  let signal: NodeJS.Signals | undefined;
  let fatal: { error: unknown } | undefined;
  const setupAbort = new AbortController();
  let wake: (() => void) | undefined;
  const stopped = new Promise<void>((resolve) => {
    wake = resolve;
  });
  const removeHandlers = dependencies.onStopSignal((received) => {
    if (signal !== undefined) {
      logger.warn({ signal: received }, 'already stopping: draining in-flight commands, then tearing down');
      return;
    }
    signal = received;
    setupAbort.abort(new Error(`stopped by ${received}`));
    logger.info({ signal: received }, 'stopping');
    wake?.();
  });
  const removeFatalHandler = dependencies.onFatalError((error) => {
    logger.error({ err: error }, 'unexpected error: tearing down');
    fatal ??= { error };
    wake?.();
  });
  return {
    get signal() {
      return signal;
    },
    get fatal() {
      return fatal;
    },
    get requested() {
      return signal !== undefined || fatal !== undefined;
    },
    setupSignal: setupAbort.signal,
    stopped,
    dispose() {
      removeHandlers();
      removeFatalHandler();
    },
  };
}

/**
 * Checks the request, the kernel (preflight) and opens the backend, recorded in `setup` at once; then
 * refuses a backend whose size is not a whole number of blocks.
 */
async function openServedBackend(
  options: ServeOptions,
  dependencies: ServeDependencies,
  logger: Logger,
  signal: AbortSignal,
  setup: Setup,
): Promise<OpenedBackend> {
  await dependencies.checkBackend(options);
  await dependencies.preflight(logger);
  const opened = await dependencies.openBackend(options, logger, signal);
  setup.backend = opened;
  const size = opened.backend.size;
  if (size % options.blockSize !== 0) {
    throw new CliError(
      'TCMU_ERR_CLI_BLOCK_SIZE',
      `the backend's size, ${size} bytes, is not a whole number of ${options.blockSize}-byte blocks`,
    );
  }
  logger.info(
    { backend: formatBackendLocation(options.backend), size, blockSize: options.blockSize },
    `opened ${opened.description}`,
  );
  return opened;
}

/** What serve asks of the device library for these options. */
function deviceRequest(
  options: ServeOptions,
  backend: Backend,
  logger: Logger,
  observers: Observers,
): DeviceOpenRequest {
  return {
    name: options.name,
    size: backend.size,
    blockSize: options.blockSize,
    backend,
    lun: options.lun,
    hba: options.hba,
    readOnly: options.readOnly,
    queueDepth: options.queueDepth,
    idleSpinMicroseconds: options.idleSpinMicroseconds,
    commandTimeoutSeconds: options.commandTimeoutSeconds,
    scsiTimeoutSeconds: options.scsiTimeoutSeconds,
    // A memory: disk's data died with its server: serving zeros under its identity would corrupt
    // the filesystem on it, so its name stays refused (tcmu rm --stale removes it).
    takeOver: options.backend.kind !== 'memory',
    logger,
    linkDirectory: options.linkDirectory,
    onCommandDone: observers.onCommandDone,
  };
}

/**
 * Announces the server (pid file, state record: recorded in `setup`), prints the ready line, tells
 * the service manager, then serves until a stop (or, with `--run`, until the command exits).
 * Returns the exit status.
 */
async function serveUntilStopped(
  options: ServeOptions,
  io: CommandIo,
  dependencies: ServeDependencies,
  logger: Logger,
  stop: StopWatch,
  setup: Setup,
  emit: (event: Record<string, unknown>, text: string) => void,
  linkPath: string | undefined,
): Promise<number> {
  const device = setup.device!;
  const size = setup.backend!.backend.size;
  const metrics = setup.observers?.address;
  setup.announced = await announceReady(options, io, logger, { device, linkPath, size, metrics });
  const iscsi = setup.iscsi;
  emit(
    {
      event: 'ready',
      name: options.name,
      device: device.devicePath,
      link: linkPath,
      genericDevice: device.sgPath,
      size,
      blockSize: options.blockSize,
      backend: formatBackendLocation(options.backend),
      readOnly: options.readOnly,
      ...(iscsi ? { iscsi: iscsi.url } : {}),
      metrics,
      pid: io.pid,
      ...(device.window === undefined ? {} : { window: device.window }),
      ...(device.takenOver ? { takenOver: true } : {}),
    },
    `ready ${options.name} ${device.devicePath}${linkPath === undefined ? '' : ` ${linkPath}`}${
      iscsi ? ` ${iscsi.url}` : ''
    }${device.window === undefined ? '' : ` window ${device.window.commandTimeoutSeconds}s`}${
      device.takenOver ? ' (taken over)' : ''
    }`,
  );
  await dependencies
    .notify(`READY=1\nSTATUS=serving ${options.name} on ${device.devicePath}\nMAINPID=${io.pid}`, io.env)
    .catch((error) => logger.warn({ err: error }, 'telling the service manager READY=1 failed'));
  let status = 0;
  if (options.run !== undefined) {
    status = await runUntilExit(options.run, io, dependencies, logger, {
      device,
      linkPath,
      stopped: stop.stopped,
    });
  } else await stop.stopped;
  await dependencies.notify('STOPPING=1', io.env).catch(() => false);
  return status;
}

/** What watches the commands: the metrics endpoint (`--metrics`) and the `trace` log. */
interface Observers {
  readonly onCommandDone: ((info: CommandDoneInfo) => void) | undefined;
  /** `host:port` the metrics endpoint listens on. */
  readonly address: string | undefined;
  close(): Promise<void>;
}

async function startObservers(
  options: ServeOptions,
  backend: Backend,
  counters: () => ServedDevice['stats'],
  logger: Logger,
): Promise<Observers> {
  const observe: ((info: CommandDoneInfo) => void)[] = [];
  let server: import('../metrics.js').MetricsServer | undefined;
  if (options.metrics !== undefined) {
    const { ServeMetrics, listenMetrics } = await import('../metrics.js');
    const stats = (backend as { stats?: unknown }).stats;
    const metrics = new ServeMetrics({
      name: options.name,
      counters: () => {
        const current = counters();
        return current === undefined
          ? undefined
          : {
              inFlight: current.inFlight ?? 0,
              queued: current.queued ?? 0,
              aborted: current.aborted ?? 0,
              busy: current.busy ?? 0,
              taskManagement: current.taskManagement ?? 0,
              backendErrors: current.backendErrors ?? 0,
              handlerFailures: current.handlerFailures ?? 0,
            };
      },
      ...(typeof stats === 'function' ? { backendStats: () => stats.call(backend) } : {}),
    });
    server = await listenMetrics(metrics, options.metrics);
    observe.push(metrics.observe);
    logger.info({ metrics: formatListenAddress(server.address) }, 'serving metrics');
  }
  if (logger.isLevelEnabled('trace')) {
    const { createCommandTracer } = await import('../trace.js');
    observe.push(createCommandTracer(logger));
  }
  const [first, second] = observe;
  return {
    onCommandDone:
      first === undefined
        ? undefined
        : second === undefined
          ? first
          : (info) => {
              first(info);
              second(info);
            },
    address: server === undefined ? undefined : formatListenAddress(server.address),
    close: async () => {
      await server?.close();
      server = undefined;
    },
  };
}

/** What announceReady left behind (pid file, state record), to take back at teardown. */
interface Announced {
  withdraw(): Promise<void>;
}

/** Writes the pid file (`--pidfile`) and the state record `tcmu ls` and `tcmu stats` read. */
async function announceReady(
  options: ServeOptions,
  io: CommandIo,
  logger: Logger,
  ready: { device: ServedDevice; linkPath: string | undefined; size: number; metrics: string | undefined },
): Promise<Announced> {
  const directory = runDirectory(io.env);
  let stateWritten = false;
  try {
    await writeServerState(directory, {
      name: options.name,
      pid: io.pid,
      backend: formatBackendLocation(options.backend),
      size: ready.size,
      blockSize: options.blockSize,
      readOnly: options.readOnly,
      started: new Date().toISOString(),
      device: ready.device.devicePath,
      link: ready.linkPath,
      metrics: ready.metrics,
    });
    stateWritten = true;
  } catch (error) {
    // Only ls/stats lose detail: serving goes on.
    logger.warn({ err: error, directory }, 'cannot record the server state (tcmu ls shows less)');
  }
  const withdraw = async () => {
    if (stateWritten) await removeServerState(directory, options.name, io.pid).catch(() => {});
    stateWritten = false;
    if (options.pidFile !== undefined) {
      const failure = await removeFile(options.pidFile);
      if (failure) logger.warn({ err: failure }, 'removing the pid file failed');
    }
  };
  if (options.pidFile !== undefined) {
    try {
      await writePidFile(options.pidFile, io.pid);
    } catch (error) {
      await withdraw();
      throw error;
    }
  }
  return { withdraw };
}

/**
 * `--run`: runs the command with the disk in its environment until it exits; a stop signal is passed
 * on (SIGTERM) and its exit awaited. Returns its exit status.
 */
async function runUntilExit(
  command: string,
  io: CommandIo,
  dependencies: ServeDependencies,
  logger: Logger,
  context: { device: ServedDevice; linkPath: string | undefined; stopped: Promise<void> },
): Promise<number> {
  const env = {
    ...io.env,
    TCMU_DEVICE: context.device.devicePath,
    ...(context.linkPath === undefined ? {} : { TCMU_LINK: context.linkPath }),
    ...(context.device.sgPath === undefined ? {} : { TCMU_SG_DEVICE: context.device.sgPath }),
  };
  let running: RunningCommand;
  try {
    running = dependencies.runCommand(command, env);
  } catch (error) {
    throw new CliError('TCMU_ERR_CLI_RUN', `cannot run "${command}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  logger.info({ command }, 'running the --run command');
  let finished = false;
  void context.stopped.then(() => {
    if (!finished) {
      logger.info({ command }, 'stopping the --run command (SIGTERM)');
      running.kill('SIGTERM');
    }
  });
  try {
    const status = await running.exited;
    logger.info({ command, status }, 'the --run command exited');
    return status;
  } catch (error) {
    throw new CliError('TCMU_ERR_CLI_RUN', `cannot run "${command}": ${(error as Error).message}`, {
      cause: error,
    });
  } finally {
    finished = true;
  }
}
