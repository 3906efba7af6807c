import type { S3Client } from '@aws-sdk/client-s3';
import { BackendError, BackendErrorCode } from '@tcmu/backend';
import { type KeySource, loadKey } from './chunk-codec.ts';
import { listChunkObjects } from './chunk-space.ts';
import { openObjectStore } from './http-object-store.ts';
import { checkChunkSize, checkVolumeSize, defaultChunkSize, type VolumeMetadata } from './layout.ts';
import type { ObjectStore } from './object-store.ts';
import { defaultRetryPolicy, type RetryNotice, type RetryPolicy } from './retry.ts';
import { newVolumeMetadata } from './s3-backend.ts';
import { beforeVolumeDelete, cloneSnapshot, deleteSnapshot, liveClones, takeSnapshot } from './snapshot.ts';
import { normalizeLocation, normalizePrefix, type S3Location } from './url.ts';
import {
  type CompressionName,
  checkCompression,
  checkSnapshotName,
  type SnapshotInfo,
  splitSnapshotPrefix,
} from './volume-features.ts';
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
  /** Chunk compression: `none` or `deflate`. */
  readonly compression: CompressionName;
  /** Chunk encryption: `none` or `aes-256-gcm`. */
  readonly encryption: 'none' | 'aes-256-gcm';
  /** The generation new writes go to (one more per snapshot taken). */
  readonly generation: number;
  /** Snapshots, oldest first, with the clones made from each. */
  readonly snapshots: readonly (SnapshotInfo & { readonly clones: readonly string[] })[];
  /** For a clone: `s3://bucket/origin-prefix@snapshot`; else null. */
  readonly origin: string | null;
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
    openObjectStore(location, { maxSockets: 20, ...(options.client ? { client: options.client } : {}) });
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
  const [chunks, lease, clones] = await Promise.all([
    listChunkObjects(volume, volume.location.prefix),
    volume.readLease(),
    liveClones(volume),
  ]);
  const count = Math.ceil(metadata.size / metadata.chunkSize);
  let chunksStored = 0;
  let bytesStored = 0;
  // Every generation's objects count (a snapshot's chunks are stored too); tombstones do not.
  for (const [index, generations] of chunks) {
    if (index >= count) continue;
    for (const size of generations.values()) {
      if (size === 0) continue;
      chunksStored++;
      bytesStored += size;
    }
  }
  const bucket = volume.location.bucket;
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
    compression: metadata.compression ?? 'none',
    encryption: metadata.encryption ? metadata.encryption.algorithm : 'none',
    generation: metadata.generation ?? 0,
    snapshots: (metadata.snapshots ?? []).map((s) => ({
      ...s,
      clones: clones.filter((c) => c.snapshot === s.name).map((c) => `s3://${bucket}/${c.prefix}`),
    })),
    origin: metadata.origin
      ? `s3://${bucket}/${metadata.origin.prefix.replace(/\/$/, '')}@${metadata.origin.snapshot}`
      : null,
  };
}

/**
 * Creates an empty volume (writes only its description; no chunk is stored until written).
 * Fails with `TCMU_ERR_BACKEND_OPEN` when a volume already exists at that prefix.
 */
export function createS3Volume(
  options: S3VolumeAdminOptions &
    KeySource & {
      size: number;
      chunkSize?: number;
      blockSize?: number;
      /** `deflate` compresses each chunk (skipped when it does not shrink it). Default none. */
      compression?: CompressionName;
      /** Encrypt with this 32-byte key (prefer keyFile / keyEnv). */
      encryptionKey?: Uint8Array;
    },
): Promise<S3VolumeInfo> {
  const blockSize = options.blockSize ?? 512;
  const chunkSize = options.chunkSize ?? defaultChunkSize;
  let key: Uint8Array | undefined;
  try {
    key = options.encryptionKey ?? loadKey(options);
    checkCompression(options.compression);
    if (blockSize !== 512 && blockSize !== 4096) {
      throw new BackendError(BackendErrorCode.InvalidArgument, `block size ${blockSize} must be 512 or 4096`);
    }
    checkChunkSize(chunkSize);
    checkVolumeSize(options.size, blockSize);
  } catch (error) {
    return Promise.reject(error);
  }
  return withVolume(options, async (volume) => {
    const metadata = newVolumeMetadata({
      size: options.size,
      chunkSize,
      blockSize,
      ...(options.compression === undefined ? {} : { compression: options.compression }),
      ...(key === undefined ? {} : { key }),
    });
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
    const metadata = await volume.readMetadata().catch(() => null);
    const after = await beforeVolumeDelete(volume, metadata);
    const result = { objectsDeleted: await volume.deleteVolumeObjects() };
    await after();
    return result;
  });
}

/** A volume URL's location with `vol@snap` split off (admin functions name snapshots that way). */
function snapshotTarget(options: S3VolumeAdminOptions): { options: S3VolumeAdminOptions; snapshot?: string } {
  const { prefix, snapshot } = splitSnapshotPrefix(options.prefix);
  return { options: { ...options, prefix }, ...(snapshot === undefined ? {} : { snapshot }) };
}

/**
 * Takes snapshot `name` (no data copied). A volume served read-write is asked through its server,
 * which flushes and freezes first; `TCMU_ERR_BACKEND_LOCKED` when that server does not answer.
 */
export function snapshotS3Volume(
  options: S3VolumeAdminOptions & { name: string; timeout?: number },
): Promise<SnapshotInfo> {
  try {
    checkSnapshotName(options.name);
  } catch (error) {
    return Promise.reject(error);
  }
  return withVolume(options, (volume) => takeSnapshot(volume, options.name, options.timeout));
}

/**
 * Clones `options.prefix@snapshot` (given as `vol@snap` in the prefix, or `snapshot`) to `target`,
 * a prefix in the same bucket: instant, copy-on-write. Returns the clone's description.
 */
export function cloneS3Volume(
  options: S3VolumeAdminOptions & { snapshot?: string; target: string },
): Promise<S3VolumeInfo> {
  let split: ReturnType<typeof snapshotTarget>;
  try {
    split = snapshotTarget(options);
    if ((options.snapshot ?? split.snapshot) === undefined) {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        'a clone is made from a snapshot: name it (s3://bucket/volume@snapshot)',
      );
    }
  } catch (error) {
    return Promise.reject(error);
  }
  const snapshot = (options.snapshot ?? split.snapshot)!;
  return withVolume(split.options, async (volume) => {
    const metadata = await cloneSnapshot(volume, snapshot, options.target);
    return describe(volume.sibling(normalizePrefix(options.target)), metadata);
  });
}

/** Deletes a snapshot (given as `vol@snap` in the prefix, or `name`); refused while a clone reads it or a writer holds the volume. */
export function deleteS3Snapshot(
  options: S3VolumeAdminOptions & { name?: string },
): Promise<{ objectsDeleted: number }> {
  let split: ReturnType<typeof snapshotTarget>;
  try {
    split = snapshotTarget(options);
    const name = options.name ?? split.snapshot;
    if (name === undefined) {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        'name the snapshot to delete (s3://bucket/volume@snapshot)',
      );
    }
    checkSnapshotName(name);
  } catch (error) {
    return Promise.reject(error);
  }
  const name = (options.name ?? split.snapshot)!;
  return withVolume(split.options, (volume) => deleteSnapshot(volume, name));
}
