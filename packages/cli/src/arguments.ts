import { basename, extname, resolve } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { redactUrl } from '@tcmu/backend';
import { type BackendLocation, parseBackendLocation } from './backend-url.js';
import { CliError } from './errors.js';
import { parseListenAddress } from './listen-address.js';
import { parseSize } from './size.js';

/** pino's levels plus `silent`. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `auto`: coloured human-readable lines on a terminal, JSON lines otherwise. */
export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Block sizes a served disk can have, in bytes. */
export const BLOCK_SIZES = [512, 4096] as const;

/** Everything `tcmu serve` needs, validated. */
export interface ServeOptions {
  readonly backend: BackendLocation;
  /** Disk size in bytes, a whole number of blocks; undefined for an existing image or S3 volume (its size is used). */
  readonly size: number | undefined;
  /** Device name in configfs (`core/user_<hba>/<name>`): 1-64 of [A-Za-z0-9._-], starting with a letter or digit. */
  readonly name: string;
  /** True when `name` was derived from the backend rather than given with `--name`. */
  readonly nameIsDefault: boolean;
  /** Logical block size in bytes: 512 or 4096. */
  readonly blockSize: 512 | 4096;
  /** tcm_loop LUN number (0-255). */
  readonly lun: number;
  /** The `user_<hba>` number in configfs; undefined lets the library choose. */
  readonly hba: number | undefined;
  readonly readOnly: boolean;
  /**
   * `--force-lease` (s3: only): take over the volume's writer lease even though another writer holds
   * it. Only for a lease left by a writer known to be dead (the lease has no expiry).
   */
  readonly forceLease: boolean;
  /** Commands in flight at most; undefined lets the library choose. */
  readonly queueDepth: number | undefined;
  /** `--idle-spin-us`: µs the server watches for the next command before it sleeps; undefined: library default. */
  readonly idleSpinMicroseconds?: number | undefined;
  /** `--command-timeout`: the kernel's cmd_time_out in seconds (the restart window); undefined: library default. */
  readonly commandTimeoutSeconds?: number | undefined;
  /** `--scsi-timeout`: the disk's SCSI layer timeout in seconds; undefined: library default. */
  readonly scsiTimeoutSeconds?: number | undefined;
  /** Print events as JSON lines on stdout. */
  readonly json: boolean;
  readonly logLevel: LogLevel;
  /** `--log-format` (or TCMU_LOG_FORMAT): auto (pretty on a terminal, else JSON), pretty or json. */
  readonly logFormat: LogFormat;
  /** Folder of the stable link `<linkDirectory>/<name>` → the disk (default /dev/tcmu); undefined with `--no-link`. */
  readonly linkDirectory: string | undefined;
  /** `--run CMD`: a shell command run once the disk is ready; serve stops when it exits, with its status. */
  readonly run: string | undefined;
  /** `--pidfile PATH`: written when the disk is ready, removed at teardown. */
  readonly pidFile: string | undefined;
  /** `--metrics HOST:PORT`: where to serve Prometheus metrics and /stats.json. */
  readonly metrics: { readonly host: string; readonly port: number } | undefined;
}

export interface ParseContext {
  /** For relative `file:` paths. */
  readonly cwd: string;
  /** Used to derive a default device name for `memory:`. */
  readonly pid: number;
  /** For TCMU_LOG_LEVEL and TCMU_LOG_FORMAT (used when the options are not given). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** A command's arguments: either a request for its help text, or its options. */
export type Parsed<T> = { readonly help: true } | { readonly help: false; readonly options: T };

/** Runs node:util parseArgs and turns its errors (unknown option, missing value) into one-line usage errors. */
type CommandLineConfig<T> = {
  args: string[];
  options: T & { help: { type: 'boolean'; short: 'h' } };
  allowPositionals: true;
  strict: true;
};

export function parseCommandLine<T extends NonNullable<ParseArgsConfig['options']>>(
  command: string,
  argv: readonly string[],
  options: T,
): ReturnType<typeof parseArgs<CommandLineConfig<T>>> {
  try {
    return parseArgs({
      args: [...argv],
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new CliError('TCMU_ERR_CLI_USAGE', describeParseError(error, Object.keys(options)), {
      hint: `see tcmu ${command} --help`,
    });
  }
}

/** Edit distance, for "did you mean" on an unknown option (short strings only). */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * Says in our own words what node:util parseArgs rejected (its messages talk about its internals:
 * "argument is ambiguous", "place it at the end of the command after '--'"). `known` lists the
 * command's long options, for a "did you mean" suggestion.
 */
export function describeParseError(error: unknown, known: readonly string[]): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const option = /'([^']+)'/.exec(message)?.[1] ?? 'option';
    const bare = option.replace(/^-+/, '').split('=')[0]!;
    const close = [...known, 'help']
      .map((name) => ({ name, score: name.startsWith(bare) && bare.length >= 2 ? 0 : distance(bare, name) }))
      .filter((candidate) => candidate.score <= 2)
      .sort((a, b) => a.score - b.score)[0];
    return `unknown option ${option}${option.startsWith('--') && close ? ` (did you mean --${close.name}?)` : ''}`;
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const option = /--[A-Za-z0-9-]+/.exec(message)?.[0] ?? 'an option';
    if (/does not take an argument/.test(message)) return `${option} takes no value`;
    return `${option} needs a value (for a value that starts with "-", write ${option}=VALUE)`;
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return 'unexpected argument';
  return 'cannot read the arguments';
}

/** An option's path made absolute against `cwd`; empty paths and `..` components are refused. */
function absolutePath(option: string, text: string, cwd: string): string {
  if (text === '' || text.split('/').includes('..') || /[\0\n]/.test(text)) {
    throw new CliError('TCMU_ERR_CLI_USAGE', `invalid ${option} "${text}": give a path without ".."`);
  }
  return resolve(cwd, text);
}

/** Parses a non-negative decimal integer option within [min, max]. */
export function parseInteger(option: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text.trim())) {
    throw new CliError(
      'TCMU_ERR_CLI_USAGE',
      `invalid ${option} "${text}": expected a whole number from ${min} to ${max}`,
    );
  }
  const value = Number(text.trim());
  if (value < min || value > max) {
    throw new CliError('TCMU_ERR_CLI_USAGE', `invalid ${option} "${text}": must be from ${min} to ${max}`);
  }
  return value;
}

/** Device names: what configfs, tcm_loop and dev_config all accept. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Checks a device name; returns it unchanged. */
export function validateName(name: string): string {
  if (!NAME.test(name)) {
    throw new CliError(
      'TCMU_ERR_CLI_USAGE',
      `invalid name "${name}": use 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit`,
    );
  }
  return name;
}

/** The name `tcmu serve` uses without `--name`: the image's base name, the S3 prefix, else `<kind>-<pid>`. */
export function defaultName(backend: BackendLocation, pid: number): string {
  const sanitize = (text: string) =>
    text
      .replace(/[^A-Za-z0-9._-]+/g, '-')
      .replace(/^[^A-Za-z0-9]+/, '')
      .slice(0, 64);
  let candidate = '';
  if (backend.kind === 'file') candidate = sanitize(basename(backend.path, extname(backend.path)));
  if (backend.kind === 's3') {
    const last = backend.prefix.split('/').filter(Boolean).at(-1);
    candidate = sanitize(last ?? backend.bucket);
  }
  return candidate || `${backend.kind}-${pid}`;
}

export function parseLogLevel(text: string, source = '--log-level'): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(text)) {
    throw new CliError(
      'TCMU_ERR_CLI_USAGE',
      `invalid ${source} "${text}": use one of ${LOG_LEVELS.join(', ')}`,
    );
  }
  return text as LogLevel;
}

export function parseLogFormat(text: string, source = '--log-format'): LogFormat {
  if (!(LOG_FORMATS as readonly string[]).includes(text)) {
    throw new CliError(
      'TCMU_ERR_CLI_USAGE',
      `invalid ${source} "${text}": use one of ${LOG_FORMATS.join(', ')}`,
    );
  }
  return text as LogFormat;
}

/**
 * The log level and format from `--log-level`/`--log-format`, else TCMU_LOG_LEVEL/TCMU_LOG_FORMAT, else
 * the defaults (`fallbackLevel`, auto).
 */
export function resolveLogSettings(
  values: { readonly 'log-level'?: string | undefined; readonly 'log-format'?: string | undefined },
  env: Readonly<Record<string, string | undefined>> = {},
  fallbackLevel: LogLevel = 'info',
): { logLevel: LogLevel; logFormat: LogFormat } {
  const level = values['log-level'];
  const format = values['log-format'];
  const envLevel = env.TCMU_LOG_LEVEL || undefined;
  const envFormat = env.TCMU_LOG_FORMAT || undefined;
  return {
    logLevel:
      level !== undefined
        ? parseLogLevel(level)
        : envLevel !== undefined
          ? parseLogLevel(envLevel, 'TCMU_LOG_LEVEL')
          : fallbackLevel,
    logFormat:
      format !== undefined
        ? parseLogFormat(format)
        : envFormat !== undefined
          ? parseLogFormat(envFormat, 'TCMU_LOG_FORMAT')
          : 'auto',
  };
}

export function parseBlockSize(text: string): 512 | 4096 {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !(BLOCK_SIZES as readonly number[]).includes(value)) {
    throw new CliError('TCMU_ERR_CLI_BLOCK_SIZE', `invalid --block-size "${text}": use 512 or 4096`);
  }
  return value as 512 | 4096;
}

/** Parses and validates `tcmu serve` arguments (everything after `serve`). Pure: touches no file. */
export function parseServeArguments(argv: readonly string[], context: ParseContext): Parsed<ServeOptions> {
  const { values, positionals } = parseCommandLine('serve', argv, {
    size: { type: 'string', short: 's' },
    name: { type: 'string', short: 'n' },
    'block-size': { type: 'string', short: 'b' },
    lun: { type: 'string' },
    hba: { type: 'string' },
    'read-only': { type: 'boolean' },
    'force-lease': { type: 'boolean' },
    'queue-depth': { type: 'string' },
    'idle-spin-us': { type: 'string' },
    'command-timeout': { type: 'string' },
    'scsi-timeout': { type: 'string' },
    json: { type: 'boolean' },
    'log-level': { type: 'string' },
    'log-format': { type: 'string' },
    'link-dir': { type: 'string' },
    'no-link': { type: 'boolean' },
    run: { type: 'string' },
    pidfile: { type: 'string' },
    metrics: { type: 'string' },
  });
  if (values.help) return { help: true };
  if (positionals.length === 0) {
    throw new CliError(
      'TCMU_ERR_CLI_USAGE',
      'missing backend (memory:, file:/path/to/image or s3://bucket/prefix)',
      {
        hint: 'see tcmu serve --help',
      },
    );
  }
  if (positionals.length > 1) {
    throw new CliError(
      'TCMU_ERR_CLI_USAGE',
      `unexpected argument "${redactUrl(positionals[1]!)}": serve takes one backend`,
      {
        hint: 'see tcmu serve --help',
      },
    );
  }
  const backend = parseBackendLocation(positionals[0]!, context.cwd);
  const blockSize = values['block-size'] === undefined ? 512 : parseBlockSize(values['block-size']);
  let size: number | undefined;
  if (values.size !== undefined) {
    size = parseSize(values.size);
    if (size % blockSize !== 0) {
      throw new CliError(
        'TCMU_ERR_CLI_BLOCK_SIZE',
        `invalid --size "${values.size}": ${size} bytes is not a whole number of ${blockSize}-byte blocks`,
      );
    }
  } else if (backend.kind === 'memory') {
    throw new CliError(
      'TCMU_ERR_CLI_USAGE',
      `missing --size (e.g. --size 256M) for a ${backend.kind}: backend`,
      {
        hint: 'see tcmu serve --help',
      },
    );
  }
  const forceLease = values['force-lease'] ?? false;
  if (forceLease && backend.kind !== 's3') {
    throw new CliError(
      'TCMU_ERR_CLI_USAGE',
      `--force-lease applies only to s3:// volumes (not ${backend.kind}:)`,
      {
        hint: 'see tcmu serve --help',
      },
    );
  }
  if (forceLease && (values['read-only'] ?? false)) {
    throw new CliError(
      'TCMU_ERR_CLI_USAGE',
      '--force-lease makes no sense with --read-only (a reader takes no lease)',
      {
        hint: 'see tcmu serve --help',
      },
    );
  }
  const name = values.name === undefined ? defaultName(backend, context.pid) : validateName(values.name);
  if (values['no-link'] && values['link-dir'] !== undefined) {
    throw new CliError('TCMU_ERR_CLI_USAGE', 'give --link-dir or --no-link, not both', {
      hint: 'see tcmu serve --help',
    });
  }
  const linkDirectory = values['no-link']
    ? undefined
    : absolutePath('--link-dir', values['link-dir'] ?? '/dev/tcmu', context.cwd);
  if (values.run !== undefined && values.run.trim() === '') {
    throw new CliError('TCMU_ERR_CLI_USAGE', '--run needs a command', { hint: 'see tcmu serve --help' });
  }
  return {
    help: false,
    options: {
      backend,
      size,
      name,
      nameIsDefault: values.name === undefined,
      blockSize,
      lun: values.lun === undefined ? 0 : parseInteger('--lun', values.lun, 0, 255),
      hba: values.hba === undefined ? undefined : parseInteger('--hba', values.hba, 0, 1_000_000),
      readOnly: values['read-only'] ?? false,
      forceLease,
      queueDepth:
        values['queue-depth'] === undefined
          ? undefined
          : parseInteger('--queue-depth', values['queue-depth'], 1, 1024),
      idleSpinMicroseconds:
        values['idle-spin-us'] === undefined
          ? undefined
          : parseInteger('--idle-spin-us', values['idle-spin-us'], 0, 10_000),
      commandTimeoutSeconds:
        values['command-timeout'] === undefined
          ? undefined
          : parseInteger('--command-timeout', values['command-timeout'], 0, 86_400),
      scsiTimeoutSeconds:
        values['scsi-timeout'] === undefined
          ? undefined
          : parseInteger('--scsi-timeout', values['scsi-timeout'], 1, 86_400),
      json: values.json ?? false,
      ...resolveLogSettings(values, context.env),
      linkDirectory,
      run: values.run,
      pidFile:
        values.pidfile === undefined ? undefined : absolutePath('--pidfile', values.pidfile, context.cwd),
      metrics: values.metrics === undefined ? undefined : parseListenAddress(values.metrics),
    },
  };
}
