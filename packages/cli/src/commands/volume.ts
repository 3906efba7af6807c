import { redactUrl } from '@tcmu/backend';
import type { S3VolumeInfo, SnapshotInfo } from '@tcmu/backend-s3';
import { parseBlockSize, parseCommandLine } from '../arguments.js';
import { formatBackendLocation, parseBackendLocation } from '../backend-url.js';
import { CliError, hasCode } from '../errors.js';
import { rootCause } from '../explain-error.js';
import {
  VOLUME_CLONE_HELP,
  VOLUME_CREATE_HELP,
  VOLUME_DELETE_HELP,
  VOLUME_HELP,
  VOLUME_INSPECT_HELP,
  VOLUME_SNAPSHOT_HELP,
} from '../help.js';
import type { CommandIo } from '../io.js';
import { importBackendPackage } from '../open-backend.js';
import { formatSize, parseSize } from '../size.js';

/** An S3 volume as named on the command line: `s3://bucket/prefix?endpoint=…&region=…`. */
export interface VolumeTarget {
  /** The URL as given (read by `@tcmu/backend-s3`'s parseS3Url; it never carries credentials). */
  readonly url: string;
  /** `s3://bucket/prefix`, for messages. */
  readonly display: string;
}

/** `tcmu volume create`, validated. Sizes in bytes. */
export interface VolumeCreateOptions {
  readonly action: 'create';
  readonly volume: VolumeTarget;
  /** From `--size`; undefined when the URL's `size=` gives it (one of them is required). */
  readonly size: number | undefined;
  /** From `--chunk-size`; undefined: the URL's `chunk=`, else the library default (1 MiB). */
  readonly chunkSize: number | undefined;
  readonly blockSize: 512 | 4096;
  /** From `--compress` (deflate or none). */
  readonly compression?: 'deflate' | 'none';
  /** From `--key-file` / `--key-env`: where the encryption key is (never the key). */
  readonly keyFile?: string;
  readonly keyEnv?: string;
  readonly json: boolean;
}

/** `tcmu volume snapshot <url> NAME [--delete --yes]`. */
export interface VolumeSnapshotOptions {
  readonly action: 'snapshot';
  readonly volume: VolumeTarget;
  readonly name: string;
  /** `--delete`: delete the snapshot instead (needs `--yes`). */
  readonly delete: boolean;
  readonly yes: boolean;
  /** Seconds to wait for a serving process to take it. */
  readonly timeout: number;
  readonly json: boolean;
}

/** `tcmu volume clone <url@NAME> <new-url>`. */
export interface VolumeCloneOptions {
  readonly action: 'clone';
  readonly volume: VolumeTarget;
  readonly target: VolumeTarget;
  readonly json: boolean;
}

export interface VolumeInspectOptions {
  readonly action: 'inspect';
  readonly volume: VolumeTarget;
  readonly json: boolean;
}

export interface VolumeDeleteOptions {
  readonly action: 'delete';
  readonly volume: VolumeTarget;
  /** `--yes`: the user confirmed; without it nothing is deleted. */
  readonly yes: boolean;
  /** `--force`: delete even while a writer lease is held (a dead writer), or when no volume description is there. */
  readonly force: boolean;
  readonly json: boolean;
}

export type VolumeOptions =
  | VolumeCreateOptions
  | VolumeInspectOptions
  | VolumeDeleteOptions
  | VolumeSnapshotOptions
  | VolumeCloneOptions;

const ACTIONS = ['create', 'inspect', 'delete', 'snapshot', 'clone'] as const;
const ACTION_HELPS = {
  create: VOLUME_CREATE_HELP,
  inspect: VOLUME_INSPECT_HELP,
  delete: VOLUME_DELETE_HELP,
  snapshot: VOLUME_SNAPSHOT_HELP,
  clone: VOLUME_CLONE_HELP,
};

/** What `tcmu volume` asked for: help text (of `volume` or of one action) or validated options. */
export type ParsedVolume =
  | { readonly help: string }
  | { readonly help: undefined; readonly options: VolumeOptions };

function usage(message: string, command: string): CliError {
  return new CliError('TCMU_ERR_CLI_USAGE', message, { hint: `see tcmu ${command} --help` });
}

/** The one positional argument: an s3:// URL (memory: and file: are refused). */
function parseVolumeTarget(positionals: readonly string[], command: string): VolumeTarget {
  if (positionals.length === 0) {
    throw usage('missing volume URL (s3://bucket/prefix?endpoint=http://host:port)', command);
  }
  if (positionals.length > 1) {
    throw usage(`unexpected argument "${redactUrl(positionals[1]!)}": give one volume URL`, command);
  }
  const text = positionals[0]!;
  const location = parseBackendLocation(text);
  if (location.kind !== 's3') {
    throw new CliError(
      'TCMU_ERR_CLI_BACKEND_URL',
      `invalid volume "${text}": volumes are s3:// URLs (s3://bucket/prefix?endpoint=http://host:port)`,
    );
  }
  return { url: text, display: formatBackendLocation(location) };
}

/**
 * Parses `tcmu volume <create|inspect|delete> …` (everything after `volume`). Pure: touches no server.
 * Validates sizes here; the chunk size's range and power-of-two rule are checked by `@tcmu/backend-s3`.
 */
export function parseVolumeArguments(argv: readonly string[]): ParsedVolume {
  const [action, ...rest] = argv;
  if (action === undefined)
    throw usage('missing action (create, inspect, delete, snapshot or clone)', 'volume');
  if (action === '-h' || action === '--help' || action === 'help') return { help: VOLUME_HELP };
  if (!(ACTIONS as readonly string[]).includes(action)) {
    throw usage(`unknown action "${action}" (use create, inspect, delete, snapshot or clone)`, 'volume');
  }
  const command = `volume ${action}`;
  switch (action as (typeof ACTIONS)[number]) {
    case 'create': {
      const { values, positionals } = parseCommandLine(command, rest, {
        size: { type: 'string', short: 's' },
        'chunk-size': { type: 'string' },
        'block-size': { type: 'string', short: 'b' },
        compress: { type: 'string' },
        'key-file': { type: 'string' },
        'key-env': { type: 'string' },
        json: { type: 'boolean' },
      });
      if (values.help) return { help: ACTION_HELPS.create };
      const compress = values.compress;
      if (compress !== undefined && compress !== 'deflate' && compress !== 'none') {
        throw usage(`invalid --compress "${compress}" (deflate or none; zstd is not available)`, command);
      }
      if (values['key-file'] !== undefined && values['key-env'] !== undefined) {
        throw usage('give --key-file or --key-env, not both', command);
      }
      const volume = parseVolumeTarget(positionals, command);
      const blockSize = values['block-size'] === undefined ? 512 : parseBlockSize(values['block-size']);
      const size = values.size === undefined ? undefined : parseSize(values.size);
      if (size !== undefined && size % blockSize !== 0) {
        throw new CliError(
          'TCMU_ERR_CLI_BLOCK_SIZE',
          `invalid --size "${values.size}": ${size} bytes is not a whole number of ${blockSize}-byte blocks`,
        );
      }
      const chunkSize = values['chunk-size'] === undefined ? undefined : parseSize(values['chunk-size']);
      return {
        help: undefined,
        options: {
          action: 'create',
          volume,
          size,
          chunkSize,
          blockSize,
          ...(compress === undefined ? {} : { compression: compress }),
          ...(values['key-file'] === undefined ? {} : { keyFile: values['key-file'] }),
          ...(values['key-env'] === undefined ? {} : { keyEnv: values['key-env'] }),
          json: values.json ?? false,
        },
      };
    }
    case 'snapshot': {
      const { values, positionals } = parseCommandLine(command, rest, {
        delete: { type: 'boolean' },
        yes: { type: 'boolean', short: 'y' },
        timeout: { type: 'string' },
        json: { type: 'boolean' },
      });
      if (values.help) return { help: ACTION_HELPS.snapshot };
      if (positionals.length !== 2) {
        throw usage(
          'give the volume URL and the snapshot name: tcmu volume snapshot s3://b/vol NAME',
          command,
        );
      }
      const volume = parseVolumeTarget(positionals.slice(0, 1), command);
      const timeout = values.timeout === undefined ? 30 : Number(values.timeout);
      if (!Number.isFinite(timeout) || timeout <= 0) {
        throw usage(`invalid --timeout "${values.timeout}" (seconds, e.g. 30)`, command);
      }
      return {
        help: undefined,
        options: {
          action: 'snapshot',
          volume,
          name: positionals[1]!,
          delete: values.delete ?? false,
          yes: values.yes ?? false,
          timeout,
          json: values.json ?? false,
        },
      };
    }
    case 'clone': {
      const { values, positionals } = parseCommandLine(command, rest, { json: { type: 'boolean' } });
      if (values.help) return { help: ACTION_HELPS.clone };
      if (positionals.length !== 2) {
        throw usage(
          'give the snapshot and the new volume: tcmu volume clone s3://b/vol@NAME s3://b/new',
          command,
        );
      }
      const volume = parseVolumeTarget(positionals.slice(0, 1), command);
      const target = parseVolumeTarget(positionals.slice(1), command);
      if (!/@[^/]+\/?$/.test(volume.display)) {
        throw usage(`"${volume.display}" names no snapshot: clone from s3://bucket/volume@SNAPSHOT`, command);
      }
      return { help: undefined, options: { action: 'clone', volume, target, json: values.json ?? false } };
    }
    case 'inspect': {
      const { values, positionals } = parseCommandLine(command, rest, { json: { type: 'boolean' } });
      if (values.help) return { help: ACTION_HELPS.inspect };
      const volume = parseVolumeTarget(positionals, command);
      return { help: undefined, options: { action: 'inspect', volume, json: values.json ?? false } };
    }
    case 'delete': {
      const { values, positionals } = parseCommandLine(command, rest, {
        yes: { type: 'boolean', short: 'y' },
        force: { type: 'boolean' },
        json: { type: 'boolean' },
      });
      if (values.help) return { help: ACTION_HELPS.delete };
      const volume = parseVolumeTarget(positionals, command);
      return {
        help: undefined,
        options: {
          action: 'delete',
          volume,
          yes: values.yes ?? false,
          force: values.force ?? false,
          json: values.json ?? false,
        },
      };
    }
  }
}

/** The volume administration `tcmu volume` needs: @tcmu/backend-s3's functions (injected in tests). */
export interface VolumeDependencies {
  create(
    url: string,
    geometry: {
      size?: number;
      chunkSize?: number;
      blockSize: number;
      compression?: 'deflate' | 'none';
      keyFile?: string;
      keyEnv?: string;
    },
  ): Promise<S3VolumeInfo>;
  inspect(url: string): Promise<S3VolumeInfo>;
  delete(url: string, force: boolean): Promise<{ objectsDeleted: number }>;
  snapshot(url: string, name: string, timeoutMs: number): Promise<SnapshotInfo>;
  deleteSnapshot(url: string, name: string): Promise<{ objectsDeleted: number }>;
  clone(url: string, targetUrl: string): Promise<S3VolumeInfo>;
}

async function loadS3() {
  return importBackendPackage(() => import('@tcmu/backend-s3'), '@tcmu/backend-s3', 's3:');
}

/** Every retry is said on stderr (a slow or flaky server shows, instead of a silent wait). */
function reportRetry(retry: { retry: number; delay: number; error: string }): void {
  process.stderr.write(`tcmu volume: ${retry.error}; retry ${retry.retry} in ${retry.delay} ms\n`);
}

/**
 * The real dependencies: @tcmu/backend-s3, loaded on first use. Credentials come only from the AWS
 * chain (environment, profile, instance role), never from the URL (parseS3Url refuses them).
 */
export const processVolumeDependencies: VolumeDependencies = {
  async create(url, geometry) {
    const s3 = await loadS3();
    const parsed = s3.parseS3Url(url);
    if (geometry.size !== undefined && parsed.size !== undefined && geometry.size !== parsed.size) {
      throw new CliError(
        'TCMU_ERR_CLI_SIZE',
        `--size ${geometry.size} disagrees with size=${parsed.size} in the URL (give one of them)`,
      );
    }
    if (
      geometry.chunkSize !== undefined &&
      parsed.chunkSize !== undefined &&
      geometry.chunkSize !== parsed.chunkSize
    ) {
      throw new CliError(
        'TCMU_ERR_CLI_SIZE',
        `--chunk-size ${geometry.chunkSize} disagrees with chunk=${parsed.chunkSize} in the URL (give one of them)`,
      );
    }
    const size = geometry.size ?? parsed.size;
    if (size === undefined) {
      throw new CliError('TCMU_ERR_CLI_USAGE', 'missing --size (e.g. --size 10G) for the new volume', {
        hint: 'see tcmu volume create --help',
      });
    }
    const chunkSize = geometry.chunkSize ?? parsed.chunkSize;
    return s3.createS3Volume({
      bucket: parsed.bucket,
      prefix: parsed.prefix,
      ...(parsed.endpoint === undefined ? {} : { endpoint: parsed.endpoint }),
      ...(parsed.region === undefined ? {} : { region: parsed.region }),
      size,
      ...(chunkSize === undefined ? {} : { chunkSize }),
      blockSize: geometry.blockSize,
      onRetry: reportRetry,
      ...(geometry.compression === undefined ? {} : { compression: geometry.compression }),
      ...(geometry.keyFile === undefined ? {} : { keyFile: geometry.keyFile }),
      ...(geometry.keyEnv === undefined ? {} : { keyEnv: geometry.keyEnv }),
    });
  },
  async snapshot(url, name, timeoutMs) {
    const s3 = await loadS3();
    return s3.snapshotS3Volume({
      ...locationOf(s3.parseS3Url(url)),
      name,
      timeout: timeoutMs,
      onRetry: reportRetry,
    });
  },
  async deleteSnapshot(url, name) {
    const s3 = await loadS3();
    return s3.deleteS3Snapshot({ ...locationOf(s3.parseS3Url(url)), name, onRetry: reportRetry });
  },
  async clone(url, targetUrl) {
    const s3 = await loadS3();
    const source = s3.parseS3Url(url);
    const target = s3.parseS3Url(targetUrl);
    if (target.bucket !== source.bucket || (target.endpoint ?? '') !== (source.endpoint ?? '')) {
      throw new CliError(
        'TCMU_ERR_CLI_USAGE',
        `a clone lives in its origin's bucket on the same server: ${targetUrl} is elsewhere`,
      );
    }
    return s3.cloneS3Volume({ ...locationOf(source), target: target.prefix, onRetry: reportRetry });
  },
  async inspect(url) {
    const s3 = await loadS3();
    return s3.inspectS3Volume({ ...locationOf(s3.parseS3Url(url)), onRetry: reportRetry });
  },
  async delete(url, force) {
    const s3 = await loadS3();
    return s3.deleteS3Volume({ ...locationOf(s3.parseS3Url(url)), force, onRetry: reportRetry });
  },
};

function locationOf(parsed: { bucket: string; prefix: string; endpoint?: string; region?: string }) {
  return {
    bucket: parsed.bucket,
    prefix: parsed.prefix,
    ...(parsed.endpoint === undefined ? {} : { endpoint: parsed.endpoint }),
    ...(parsed.region === undefined ? {} : { region: parsed.region }),
  };
}

function writerOf(info: S3VolumeInfo): string {
  return info.lease === null
    ? 'none'
    : `process ${info.lease.pid} on ${info.lease.host} since ${info.lease.since} (lease ${info.lease.id})`;
}

/** The human-readable description of a volume (`inspect`, and `create` without --json). */
export function formatVolumeInfo(display: string, info: S3VolumeInfo): string {
  const rows: [string, string][] = [
    ['volume', display],
    ['size', `${formatSize(info.size)} (${info.size} bytes)`],
    ['chunk size', formatSize(info.chunkSize)],
    ['block size', `${info.blockSize}`],
    ['chunks stored', `${info.chunksStored} of ${Math.ceil(info.size / info.chunkSize)}`],
    ['bytes stored', `${formatSize(info.bytesStored)} (${info.bytesStored} bytes)`],
    ['writer', writerOf(info)],
    ['created', info.created],
    ['format', `${info.formatVersion}`],
    ['compression', info.compression],
    ['encryption', info.encryption],
    ['origin', info.origin ?? 'none'],
    [
      'snapshots',
      info.snapshots.length === 0
        ? 'none'
        : info.snapshots
            .map(
              (s) => `${s.name} (${s.created}${s.clones.length ? `; clones: ${s.clones.join(', ')}` : ''})`,
            )
            .join('\n               '),
    ],
  ];
  return rows.map(([key, value]) => `${`${key}:`.padEnd(15)}${value}\n`).join('');
}

/** The code of an error from the library (its innermost coded cause), or undefined. */
function codeOf(error: unknown): string | undefined {
  const root = rootCause(error);
  return hasCode(root) ? root.code : undefined;
}

/** `tcmu volume create|inspect|delete`: S3 volume administration. Returns the exit status. */
export async function volumeCommand(
  argv: readonly string[],
  io: CommandIo,
  dependencies: VolumeDependencies = processVolumeDependencies,
): Promise<number> {
  const parsed = parseVolumeArguments(argv);
  if (parsed.help !== undefined) {
    io.stdout(parsed.help);
    return 0;
  }
  const options = parsed.options;
  const { url, display } = options.volume;
  switch (options.action) {
    case 'create': {
      const info = await dependencies.create(url, {
        ...(options.size === undefined ? {} : { size: options.size }),
        ...(options.chunkSize === undefined ? {} : { chunkSize: options.chunkSize }),
        blockSize: options.blockSize,
        ...(options.compression === undefined ? {} : { compression: options.compression }),
        ...(options.keyFile === undefined ? {} : { keyFile: options.keyFile }),
        ...(options.keyEnv === undefined ? {} : { keyEnv: options.keyEnv }),
      });
      if (options.json) io.stdout(`${JSON.stringify({ event: 'created', volume: display, ...info })}\n`);
      else
        io.stdout(
          `created ${display}: ${formatSize(info.size)}, chunk size ${formatSize(info.chunkSize)}, block size ${info.blockSize}\n`,
        );
      return 0;
    }
    case 'inspect': {
      const info = await dependencies.inspect(url);
      io.stdout(
        options.json ? `${JSON.stringify({ volume: display, ...info })}\n` : formatVolumeInfo(display, info),
      );
      return 0;
    }
    case 'delete': {
      // Look first: a clear refusal while a writer holds the volume, and how much is about to go.
      let info: S3VolumeInfo | undefined;
      try {
        info = await dependencies.inspect(url);
      } catch (error) {
        if (!(options.force && codeOf(error) === 'TCMU_ERR_BACKEND_NOT_FOUND')) throw error;
      }
      if (info?.lease && !options.force) {
        throw new CliError(
          'TCMU_ERR_CLI_VOLUME_IN_USE',
          `${display} is open read-write by ${writerOf(info)}; nothing deleted`,
          { hint: 'stop that server first; if it is dead (killed, crashed), add --force' },
        );
      }
      const what =
        info === undefined
          ? 'every object under the prefix (no volume description there)'
          : `${info.chunksStored} chunks, ${formatSize(info.bytesStored)} stored, plus the volume description${info.lease ? ' and the lease' : ''}`;
      if (!options.yes) {
        throw new CliError('TCMU_ERR_CLI_NOT_CONFIRMED', `not deleting ${display} (${what}) without --yes`, {
          hint: `tcmu volume delete '${redactUrl(url)}' --yes`,
        });
      }
      io.stderr(`tcmu volume delete: deleting ${display}: ${what}\n`);
      const { objectsDeleted } = await dependencies.delete(url, options.force);
      if (options.json)
        io.stdout(`${JSON.stringify({ event: 'deleted', volume: display, objectsDeleted })}\n`);
      else io.stdout(`deleted ${display}: ${objectsDeleted} object${objectsDeleted === 1 ? '' : 's'}\n`);
      return 0;
    }
    case 'snapshot': {
      if (options.delete) {
        if (!options.yes) {
          throw new CliError(
            'TCMU_ERR_CLI_NOT_CONFIRMED',
            `not deleting snapshot ${options.name} of ${display} without --yes`,
            {
              hint: `tcmu volume snapshot '${url}' ${options.name} --delete --yes`,
            },
          );
        }
        const { objectsDeleted } = await dependencies.deleteSnapshot(url, options.name);
        if (options.json)
          io.stdout(
            `${JSON.stringify({ event: 'snapshot-deleted', volume: display, snapshot: options.name, objectsDeleted })}\n`,
          );
        else
          io.stdout(
            `deleted snapshot ${display}@${options.name}: ${objectsDeleted} object${objectsDeleted === 1 ? '' : 's'} no longer needed\n`,
          );
        return 0;
      }
      const snapshot = await dependencies.snapshot(url, options.name, options.timeout * 1000);
      if (options.json) io.stdout(`${JSON.stringify({ event: 'snapshot', volume: display, ...snapshot })}\n`);
      else
        io.stdout(`snapshot ${display.replace(/\/$/, '')}@${snapshot.name} taken at ${snapshot.created}\n`);
      return 0;
    }
    case 'clone': {
      const info = await dependencies.clone(url, options.target.url);
      if (options.json)
        io.stdout(`${JSON.stringify({ event: 'cloned', volume: options.target.display, ...info })}\n`);
      else io.stdout(`cloned ${display} to ${options.target.display} (copy-on-write: nothing copied)\n`);
      return 0;
    }
  }
}
