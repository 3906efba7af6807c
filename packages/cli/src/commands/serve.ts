import type { Backend } from '@tcmu/backend';
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
import { createLogger, type Logger } from '../logger.js';
import { checkBackendRequest, type OpenedBackend, openBackend } from '../open-backend.js';
import { formatSize } from '../size.js';

/** The device `serve` keeps alive: what @tcmu/core's openDevice returns, as far as serve needs it. */
export interface ServedDevice {
  /** The disk, e.g. /dev/sdb. */
  readonly devicePath: string;
  /** The SCSI generic node (/dev/sgN), when the sg module is loaded. */
  readonly sgPath?: string | undefined;
  /** Live command counters, when the library keeps them. */
  readonly stats?: { readonly received: number; readonly completed: number; readonly maxInFlight: number };
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
  readonly logger: Logger;
}

/** Everything `tcmu serve` touches outside itself. */
export interface ServeDependencies {
  /** Validates the backend request without creating anything (e.g. a `file:` image's folder). */
  checkBackend(options: ServeOptions): Promise<void>;
  /** Fails with a coded error when the process cannot serve (not root, no TCMU in the kernel). */
  preflight(logger: Logger): Promise<void>;
  openBackend(options: ServeOptions, logger: Logger): Promise<OpenedBackend>;
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
  openBackend: (options, logger) => openBackend(options, logger),
  async openDevice(request) {
    const core = await import('@tcmu/core');
    return core.openDevice({
      name: request.name,
      size: request.size,
      blockSize: request.blockSize,
      backend: request.backend,
      lun: request.lun,
      ...(request.hba === undefined ? {} : { hba: request.hba }),
      readOnly: request.readOnly,
      ...(request.queueDepth === undefined ? {} : { queueDepth: request.queueDepth }),
      logger: request.logger,
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
};

/** `tcmu serve`: see SERVE_HELP. Returns 0 after a clean stop on SIGINT/SIGTERM. */
export async function serveCommand(
  argv: readonly string[],
  io: CommandIo,
  dependencies: ServeDependencies = processServeDependencies,
): Promise<number> {
  const { rest, request: iscsiRequest } = extractIscsiArguments(argv);
  const parsed = parseServeArguments(rest, { cwd: io.cwd, pid: io.pid });
  if (parsed.help) {
    io.stdout(SERVE_HELP);
    return 0;
  }
  const options = parsed.options;
  if (iscsiRequest) await checkIscsiRequest(iscsiRequest, io.env, options.name);
  const logger = createLogger(options.logLevel, { device: options.name });
  const emit = (event: Record<string, unknown>, text: string) =>
    io.stdout(options.json ? `${JSON.stringify(event)}\n` : `${text}\n`);

  // Signals that arrive while setting up are remembered: setup finishes (it cannot be cut in half
  // without leaving configfs entries behind), then everything is torn down at once.
  let stopSignal: NodeJS.Signals | undefined;
  let wake: (() => void) | undefined;
  const stopped = new Promise<void>((resolve) => {
    wake = resolve;
  });
  const removeHandlers = dependencies.onStopSignal((signal) => {
    if (stopSignal !== undefined) {
      logger.warn({ signal }, 'already stopping: draining in-flight commands, then tearing down');
      return;
    }
    stopSignal = signal;
    logger.info({ signal }, 'stopping');
    wake?.();
  });
  // A bug anywhere (an uncaught exception) must not leave the device behind: stop the same way, then fail.
  let fatal: { error: unknown } | undefined;
  const removeFatalHandler = dependencies.onFatalError((error) => {
    logger.error({ err: error }, 'unexpected error: tearing down');
    fatal ??= { error };
    wake?.();
  });

  let opened: OpenedBackend | undefined;
  let device: ServedDevice | undefined;
  let iscsi: StartedIscsiExport | undefined;
  try {
    await dependencies.checkBackend(options);
    await dependencies.preflight(logger);
    opened = await dependencies.openBackend(options, logger);
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
    device = await dependencies.openDevice({
      name: options.name,
      size,
      blockSize: options.blockSize,
      backend: opened.backend,
      lun: options.lun,
      hba: options.hba,
      readOnly: options.readOnly,
      queueDepth: options.queueDepth,
      logger,
    });
    if (iscsiRequest && stopSignal === undefined && fatal === undefined) {
      const backstore = { name: options.name, hba: options.hba ?? 0, readOnly: options.readOnly };
      iscsi = await (dependencies.startIscsi ?? startIscsiExport)(iscsiRequest, backstore, io.env, logger);
    }
    logger.info({ devicePath: device.devicePath, size: formatSize(size) }, 'ready');
    if (stopSignal === undefined && fatal === undefined)
      emit(
        {
          event: 'ready',
          name: options.name,
          device: device.devicePath,
          genericDevice: device.sgPath,
          size,
          blockSize: options.blockSize,
          backend: formatBackendLocation(options.backend),
          readOnly: options.readOnly,
          ...(iscsi ? { iscsi: iscsi.url } : {}),
          pid: io.pid,
        },
        `ready ${options.name} ${device.devicePath}${iscsi ? ` ${iscsi.url}` : ''}`,
      );
    if (stopSignal === undefined && fatal === undefined) await stopped;
    const stats = device.stats;
    await iscsi?.remove();
    iscsi = undefined;
    await device.close();
    device = undefined;
    await opened.close();
    opened = undefined;
    logger.info({ signal: stopSignal, stats: stats === undefined ? undefined : { ...stats } }, 'stopped');
    if (fatal) throw fatal.error;
    emit({ event: 'stopped', name: options.name, signal: stopSignal }, `stopped ${options.name}`);
    return 0;
  } catch (error) {
    // Undo whatever was set up, in reverse order; report the first failure, log the others.
    if (iscsi)
      await iscsi
        .remove()
        .catch((removeError) => logger.error({ err: removeError }, 'iSCSI teardown failed'));
    if (device)
      await device.close().catch((closeError) => logger.error({ err: closeError }, 'teardown failed'));
    if (opened) {
      await opened
        .close()
        .catch((closeError) => logger.error({ err: closeError }, 'closing the backend failed'));
      await opened
        .discard()
        .catch((discardError) => logger.warn({ err: discardError }, 'removing the image failed'));
    }
    logger.debug({ err: error }, 'serve failed');
    throw explainError(error, {
      name: options.name,
      noTcmuHint: noTcmuHint(await dependencies.labRunner()),
    });
  } finally {
    removeHandlers();
    removeFatalHandler();
  }
}
