import { stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type Backend, readOnly as readOnlyFilter } from '@tcmu/backend';
import { type BackendLocation, formatBackendLocation } from './backend-url.js';
import { CliError, hasCode } from './errors.js';
import type { Logger } from './logger.js';
import { formatSize } from './size.js';

/** A backend opened for `serve` or the demo, with what it takes to undo the opening. */
export interface OpenedBackend {
  readonly backend: Backend;
  /** For logs: e.g. `a 64 MiB memory disk`, `file /x.img (created, sparse)`. */
  readonly description: string;
  /** Closes the backend (flushing a persistent one). Idempotent. */
  close(): Promise<void>;
  /** Removes what opening created (a new image file, a new S3 volume) after a failed start; does nothing otherwise. */
  discard(): Promise<void>;
}

/** What to open: the location and the disk's geometry. */
export interface BackendRequest {
  readonly backend: BackendLocation;
  /** Bytes; undefined for an existing `file:` image (its size is used). */
  readonly size: number | undefined;
  readonly blockSize: number;
  readonly readOnly: boolean;
  /** s3: only: break a stale writer lease (`force` of openS3Backend). Default false. */
  readonly forceLease?: boolean;
}

/**
 * Loads a backend package; a missing optional package becomes a clear error. `load` must be a literal
 * `import('…')` so the bundler sees it.
 */
export async function importBackendPackage<T>(
  load: () => Promise<T>,
  specifier: string,
  scheme: string,
): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if (hasCode(error) && error.code === 'ERR_MODULE_NOT_FOUND' && error.message.includes(specifier)) {
      throw new CliError(
        'TCMU_ERR_CLI_BACKEND_UNAVAILABLE',
        `the ${scheme} backend needs the package ${specifier}`,
        {
          hint: `install it next to @tcmu/cli: npm install ${specifier}`,
          cause: error,
        },
      );
    }
    throw error;
  }
}

/**
 * Opens the backend a location names, with the checks a user needs before anything is created:
 * a `file:` image's folder must exist, a missing image needs a size (it is created sparse), an existing
 * image keeps its size (a different `--size` is refused, never silently truncated or grown).
 * With `readOnly`, writes are refused by a filter whatever the backend can do.
 */
export async function openBackend(
  request: BackendRequest,
  logger: Logger,
  signal?: AbortSignal,
): Promise<OpenedBackend> {
  const location = request.backend;
  let backend: Backend;
  let description: string;
  let discard = async () => {};
  switch (location.kind) {
    case 'memory': {
      const size = request.size!;
      const memory = await importBackendPackage(
        () => import('@tcmu/backend-memory'),
        '@tcmu/backend-memory',
        'memory:',
      );
      backend = await memory.openMemoryBackend({ size, blockSize: request.blockSize });
      description = `a ${formatSize(size)} memory disk`;
      break;
    }
    case 'file': {
      const existing = await checkBackendRequest(request);
      const file = await importBackendPackage(
        () => import('@tcmu/backend-file'),
        '@tcmu/backend-file',
        'file:',
      );
      backend = await file.openFileBackend({
        path: location.path,
        ...(existing === undefined ? { size: request.size!, create: true } : {}),
        readOnly: request.readOnly,
      });
      if (existing === undefined) {
        description = `file ${location.path} (created, sparse, ${formatSize(backend.size)})`;
        discard = async () => {
          await unlink(location.path).catch(() => {});
        };
      } else {
        description = `file ${location.path} (${formatSize(backend.size)})`;
      }
      break;
    }
    case 's3': {
      const s3 = await importBackendPackage(() => import('@tcmu/backend-s3'), '@tcmu/backend-s3', 's3:');
      const parsed = s3.parseS3Url(location.url);
      if (request.size !== undefined && parsed.size !== undefined && request.size !== parsed.size) {
        throw new CliError(
          'TCMU_ERR_CLI_SIZE',
          `--size ${request.size} disagrees with size=${parsed.size} in the URL (give one of them)`,
        );
      }
      const size = request.size ?? parsed.size;
      const volume = formatBackendLocation(location);
      const s3Backend = await s3.openS3Backend({
        ...parsed,
        ...(size === undefined ? {} : { size }),
        blockSize: request.blockSize,
        readOnly: request.readOnly,
        ...(request.forceLease ? { force: true } : {}),
        ...(signal ? { signal } : {}),
        onRetry: (retry) => logger.warn({ volume, ...retry }, 'S3 request failed; retrying'),
        onLeaseEvent: (event) =>
          (event.kind === 'lost' || event.kind === 'lapsed' ? logger.error : logger.warn).call(
            logger,
            { volume, lease: event.kind },
            event.message,
          ),
      });
      backend = s3Backend;
      if (request.forceLease) logger.warn({ volume }, 'took over the writer lease (--force-lease)');
      if (s3Backend.created) {
        description = `S3 volume ${volume} (created, ${formatSize(backend.size)})`;
        // Serving failed after the volume was created: delete it again (only if nobody opened it since).
        const { bucket, prefix, endpoint, region } = parsed;
        discard = async () => {
          await s3.deleteS3Volume({
            bucket,
            prefix,
            ...(endpoint === undefined ? {} : { endpoint }),
            ...(region === undefined ? {} : { region }),
          });
          logger.info({ volume }, 'removed the volume this failed start created');
        };
      } else {
        description = `S3 volume ${volume} (${formatSize(backend.size)})`;
      }
      break;
    }
  }
  const served = request.readOnly && !backend.readOnly ? readOnlyFilter(backend) : backend;
  logger.debug({ description }, 'backend open');
  let closing: Promise<void> | undefined;
  return {
    backend: served,
    description,
    close: () => {
      closing ??= backend.close ? backend.close() : Promise.resolve();
      return closing;
    },
    discard,
  };
}

/**
 * Checks a request without creating anything: for `file:`, that the image is a regular file whose
 * size agrees with `size`, or that its folder exists and a size was given to create it. Returns the
 * existing image's size (undefined for memory:, s3: and a missing image). `serve` calls it before
 * touching the kernel, so input errors come first.
 */
export async function checkBackendRequest(request: BackendRequest): Promise<number | undefined> {
  const location = request.backend;
  if (location.kind !== 'file') return undefined;
  const existing = await inspectImage(location.path);
  if (existing === undefined && request.size === undefined) {
    throw new CliError('TCMU_ERR_CLI_FILE', `${location.path} does not exist; give --size to create it`);
  }
  if (existing !== undefined && request.size !== undefined && existing !== request.size) {
    throw new CliError(
      'TCMU_ERR_CLI_FILE',
      `${location.path} holds ${existing} bytes (${formatSize(existing)}) but --size asks for ${request.size}`,
      { hint: 'leave out --size to serve the image at its size' },
    );
  }
  if (existing === undefined && request.readOnly) {
    throw new CliError(
      'TCMU_ERR_CLI_FILE',
      `${location.path} does not exist; --read-only needs an existing image`,
    );
  }
  return existing;
}

/** The size of an existing image file, undefined when missing; clear errors for everything else. */
async function inspectImage(path: string): Promise<number | undefined> {
  try {
    const info = await stat(path);
    if (!info.isFile()) {
      throw new CliError('TCMU_ERR_CLI_FILE', `${path} is not a regular file`);
    }
    return info.size;
  } catch (error) {
    if (error instanceof CliError) throw error;
    if (!hasCode(error) || error.code !== 'ENOENT') {
      throw new CliError('TCMU_ERR_CLI_FILE', `cannot use ${path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
  const folder = dirname(path);
  try {
    const info = await stat(folder);
    if (!info.isDirectory()) throw new CliError('TCMU_ERR_CLI_FILE', `${folder} is not a folder`);
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(
      'TCMU_ERR_CLI_FILE',
      `the folder ${folder} does not exist (the image is created in it)`,
      {
        cause: error,
      },
    );
  }
  return undefined;
}
