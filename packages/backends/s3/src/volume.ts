import type { S3Client } from '@aws-sdk/client-s3';
import { BackendError, BackendErrorCode } from '@tcmu/backend';
import {
  checkChunkSize,
  checkVolumeSize,
  defaultChunkSize,
  formatName,
  formatVersion,
  type VolumeMetadata,
} from './layout.ts';
import { type ObjectStore, S3ObjectStore } from './object-store.ts';
import { defaultRetryPolicy, type RetryNotice, type RetryPolicy } from './retry.ts';
import { normalizeLocation, type S3Location } from './url.ts';
import { type LeaseInfo, toBackendError, VolumeStore } from './volume-store.ts';

/** Options shared by the volume admin functions. */
export interface S3VolumeAdminOptions extends S3Location {
  /** An S3 client to use (its credentials, region and endpoint then win). */
  readonly client?: S3Client;
  /** Retry policy (defaults as for the backend). */
  readonly retry?: Partial<RetryPolicy>;
  /** The object store to use instead of S3 (see `S3BackendOptions.store`). */
  readonly store?: ObjectStore;
  /** Cancels the operation (retries included): it rejects at once. */
  readonly signal?: AbortSignal;
  /** Called before each retried request (never with credentials). */
  readonly onRetry?: (retry: RetryNotice) => void;
}

/** What {@link inspectS3Volume} reports. Sizes in bytes. */
export interface S3VolumeInfo {
  readonly bucket: string;
  readonly prefix: string;
  readonly size: number;
  readonly chunkSize: number;
  readonly blockSize: number;
  readonly formatVersion: number;
  /** ISO time of creation. */
  readonly created: string;
  /** Chunk objects stored (chunks never written, unmapped or all zeros have none). */
  readonly chunksStored: number;
  /** Bytes in chunk objects. */
  readonly bytesStored: number;
  /** The current writer, or null when nobody has the volume open read-write. */
  readonly lease: LeaseInfo | null;
}

function openVolumeStore(options: S3VolumeAdminOptions): VolumeStore {
  const location = normalizeLocation({
    bucket: options.bucket,
    prefix: options.prefix,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.region ? { region: options.region } : {}),
  });
  const store =
    options.store ??
    new S3ObjectStore(location, { maxSockets: 20, ...(options.client ? { client: options.client } : {}) });
  const volume = new VolumeStore(
    store,
    location,
    { ...defaultRetryPolicy, ...options.retry },
    options.onRetry ? { onRetry: options.onRetry } : {},
  );
  // Administration is all setup: an unreachable server fails at once, the signal cancels.
  volume.setup = options.signal ? { signal: options.signal } : {};
  return volume;
}

async function withVolume<T>(
  options: S3VolumeAdminOptions,
  body: (volume: VolumeStore) => Promise<T>,
): Promise<T> {
  const volume = openVolumeStore(options);
  try {
    return await body(volume);
  } catch (error) {
    throw toBackendError(error, BackendErrorCode.Open, volume.where);
  } finally {
    volume.close();
  }
}

async function describe(volume: VolumeStore, metadata: VolumeMetadata): Promise<S3VolumeInfo> {
  const [chunks, lease] = await Promise.all([volume.listChunks(), volume.readLease()]);
  const count = Math.ceil(metadata.size / metadata.chunkSize);
  let chunksStored = 0;
  let bytesStored = 0;
  for (const [index, size] of chunks) {
    if (index >= count) continue;
    chunksStored++;
    bytesStored += size;
  }
  return {
    bucket: volume.location.bucket,
    prefix: volume.location.prefix,
    size: metadata.size,
    chunkSize: metadata.chunkSize,
    blockSize: metadata.blockSize,
    formatVersion: metadata.version,
    created: metadata.created,
    chunksStored,
    bytesStored,
    lease,
  };
}

/**
 * Creates an empty volume (writes only its description; no chunk is stored until written).
 * Fails with `TCMU_ERR_BACKEND_OPEN` when a volume already exists at that prefix.
 */
export function createS3Volume(
  options: S3VolumeAdminOptions & { size: number; chunkSize?: number; blockSize?: number },
): Promise<S3VolumeInfo> {
  const blockSize = options.blockSize ?? 512;
  const chunkSize = options.chunkSize ?? defaultChunkSize;
  try {
    if (blockSize !== 512 && blockSize !== 4096) {
      throw new BackendError(BackendErrorCode.InvalidArgument, `block size ${blockSize} must be 512 or 4096`);
    }
    checkChunkSize(chunkSize);
    checkVolumeSize(options.size, blockSize);
  } catch (error) {
    return Promise.reject(error);
  }
  return withVolume(options, async (volume) => {
    const metadata: VolumeMetadata = {
      format: formatName,
      version: formatVersion,
      size: options.size,
      chunkSize,
      blockSize,
      created: new Date().toISOString(),
    };
    await volume.checkNotNested();
    await volume.writeMetadata(metadata, true);
    return describe(volume, metadata);
  });
}

/** Size, geometry, chunks and bytes stored, and the current writer of a volume. `TCMU_ERR_BACKEND_NOT_FOUND` when there is none. */
export function inspectS3Volume(options: S3VolumeAdminOptions): Promise<S3VolumeInfo> {
  return withVolume(options, async (volume) => {
    const metadata = await volume.readMetadata();
    if (!metadata) throw new BackendError(BackendErrorCode.NotFound, `${volume.where}: no volume there`);
    return describe(volume, metadata);
  });
}

/**
 * Deletes a volume: its own objects (description, lease, chunks), nothing else under its prefix (in
 * particular never another volume below it). Refuses (`TCMU_ERR_BACKEND_LOCKED`) while a
 * writer holds the lease, and (`TCMU_ERR_BACKEND_NOT_FOUND`) when the prefix holds no volume
 * description, unless `force`. Returns the number of objects deleted.
 */
export function deleteS3Volume(
  options: S3VolumeAdminOptions & { force?: boolean },
): Promise<{ objectsDeleted: number }> {
  return withVolume(options, async (volume) => {
    if (!options.force) {
      const [metadata, lease] = await Promise.all([volume.readMetadata(), volume.readLease()]);
      if (!metadata) {
        throw new BackendError(
          BackendErrorCode.NotFound,
          `${volume.where}: no volume there (nothing deleted; force deletes a half-deleted volume's remaining objects)`,
        );
      }
      if (lease) {
        throw new BackendError(
          BackendErrorCode.Locked,
          `${volume.where} is open read-write by process ${lease.pid} on ${lease.host} since ${lease.since}; close it first, or force`,
        );
      }
    }
    return { objectsDeleted: await volume.deleteVolumeObjects() };
  });
}
