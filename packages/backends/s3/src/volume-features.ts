import { BackendError, BackendErrorCode } from '@tcmu/backend';

/**
 * Format version 2 of the on-bucket layout: everything of version 1, plus generations (snapshots),
 * an origin (clones) and a chunk codec (compression, encryption). A volume is written as version 2
 * only when it uses one of these; a version-1 volume is read as generation 0 with no snapshots and
 * becomes version 2 at its first snapshot (its chunk keys stay valid: an unsuffixed key is generation 0).
 *
 *   P data/HHHH/IIIIIIIIIIII            chunk I written in generation 0 (format 1's key)
 *   P data/HHHH/IIIIIIIIIIII.GGGGGGGG   chunk I written in generation G (8 hex digits), G > 0
 *   P tcmu-clones/SNAP/ENCODED-PREFIX   marker: the volume at ENCODED-PREFIX is a clone of P@SNAP
 *   P tcmu-request.json                 a request to the serving process (snapshot), see snapshot.ts
 *   P tcmu-reply-ID.json                its answer
 *
 * A 0-byte chunk object is a tombstone: the chunk reads as zeros in that generation and later,
 * hiding an older generation's object (kept for a snapshot) or the origin's chunk (clones).
 */
export const featuresFormatVersion = 2;
export const clonesFolder = 'tcmu-clones/';
export const requestName = 'tcmu-request.json';
export const replyName = (id: string) => `tcmu-reply-${id}.json`;

/** One snapshot: the volume as it was when `generation` was the current generation. */
export interface SnapshotInfo {
  readonly name: string;
  /** Chunks of this generation and earlier (the newest of each) make up the snapshot. */
  readonly generation: number;
  /** ISO time it was taken. */
  readonly created: string;
  /** The volume's size then (bytes); absent: the volume's current size. */
  readonly size?: number;
}

/** Where a clone's unchanged chunks come from: a snapshot of another volume in the same bucket. */
export interface OriginInfo {
  /** Prefix of the origin volume (normalised, ends with `/`). */
  readonly prefix: string;
  readonly snapshot: string;
  /** The snapshot's generation: the origin's chunks of this generation and earlier are visible. */
  readonly generation: number;
  /** The origin's volume id (part of its chunks' authenticated data). */
  readonly volumeId: string;
}

export interface EncryptionInfo {
  readonly algorithm: 'aes-256-gcm';
  /** base64(nonce ‖ ciphertext ‖ tag) of a fixed text: opening with another key fails this check. */
  readonly keyCheck: string;
}

export type CompressionName = 'none' | 'deflate';

/** Refuses (`TCMU_ERR_BACKEND_INVALID_ARGUMENT`) a compression other than `none` or `deflate` (undefined: the default). */
export function checkCompression(value: unknown): void {
  if (value !== undefined && value !== 'none' && value !== 'deflate') {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `compression "${String(value)}" is not supported (none or deflate)`,
    );
  }
}

/** The version-2 fields of `tcmu-volume.json` (all optional: absent in version 1). */
export interface VolumeFeatures {
  /** Random id; bound into every encrypted chunk. Absent in version 1 (then the prefix stands in). */
  readonly volumeId?: string;
  /** The generation new chunk writes go to. Default 0. */
  readonly generation?: number;
  readonly snapshots?: readonly SnapshotInfo[];
  readonly origin?: OriginInfo;
  readonly compression?: CompressionName;
  readonly encryption?: EncryptionInfo;
}

/** A snapshot or volume name part: letters, digits, `.`, `_`, `-`, at most 64 characters. */
export const snapshotNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkSnapshotName(name: string): void {
  if (!snapshotNamePattern.test(name)) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `snapshot name "${name}" must be 1-64 letters, digits, ".", "_" or "-" (starting with a letter or digit)`,
    );
  }
}

/** Validates the version-2 fields of a parsed description (clear Open errors). */
export function parseFeatures(value: Record<string, unknown>, where: string): VolumeFeatures {
  const fail = (what: string) =>
    new BackendError(BackendErrorCode.Open, `${where}: tcmu-volume.json has an invalid ${what}`);
  const out: {
    volumeId?: string;
    generation?: number;
    snapshots?: SnapshotInfo[];
    origin?: OriginInfo;
    compression?: CompressionName;
    encryption?: EncryptionInfo;
  } = {};
  if (value.volumeId !== undefined) {
    if (typeof value.volumeId !== 'string') throw fail('volumeId');
    out.volumeId = value.volumeId;
  }
  if (value.generation !== undefined) {
    if (!Number.isSafeInteger(value.generation) || (value.generation as number) < 0) throw fail('generation');
    out.generation = value.generation as number;
  }
  if (value.snapshots !== undefined) {
    if (!Array.isArray(value.snapshots)) throw fail('snapshot list');
    out.snapshots = value.snapshots.map((s: Partial<SnapshotInfo>) => {
      if (typeof s?.name !== 'string' || !Number.isSafeInteger(s.generation)) throw fail('snapshot');
      return {
        name: s.name,
        generation: s.generation as number,
        created: String(s.created ?? ''),
        ...(Number.isSafeInteger(s.size) ? { size: s.size as number } : {}),
      };
    });
  }
  if (value.origin !== undefined) {
    const o = value.origin as Partial<OriginInfo>;
    if (
      typeof o?.prefix !== 'string' ||
      typeof o.snapshot !== 'string' ||
      typeof o.volumeId !== 'string' ||
      !Number.isSafeInteger(o.generation)
    )
      throw fail('origin');
    out.origin = { prefix: o.prefix, snapshot: o.snapshot, generation: o.generation!, volumeId: o.volumeId };
  }
  if (value.compression !== undefined) {
    if (value.compression !== 'none' && value.compression !== 'deflate') {
      throw new BackendError(
        BackendErrorCode.Open,
        `${where}: compression "${String(value.compression)}" is not supported (this package reads none and deflate)`,
      );
    }
    out.compression = value.compression;
  }
  if (value.encryption !== undefined) {
    const e = value.encryption as Partial<EncryptionInfo>;
    if (e?.algorithm !== 'aes-256-gcm' || typeof e.keyCheck !== 'string') {
      throw new BackendError(
        BackendErrorCode.Open,
        `${where}: encryption ${JSON.stringify(e?.algorithm)} is not supported (this package reads aes-256-gcm)`,
      );
    }
    out.encryption = { algorithm: e.algorithm, keyCheck: e.keyCheck };
  }
  return out;
}

/** The volume id bound into chunk authentication: the stored id, or for version 1 the prefix. */
export function volumeIdOf(features: VolumeFeatures, prefix: string): string {
  return features.volumeId ?? `prefix:${prefix}`;
}

/** True when a description needs format version 2 to be read correctly. */
export function needsVersion2(features: VolumeFeatures): boolean {
  return (
    (features.generation ?? 0) > 0 ||
    (features.snapshots?.length ?? 0) > 0 ||
    features.origin !== undefined ||
    (features.compression ?? 'none') !== 'none' ||
    features.encryption !== undefined
  );
}

/** Splits `vol@snap/` (as a prefix parsed from `s3://b/vol@snap`) into the volume prefix and the snapshot name. */
export function splitSnapshotPrefix(prefix: string): { prefix: string; snapshot?: string } {
  const trimmed = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  const at = trimmed.lastIndexOf('@');
  const slash = trimmed.lastIndexOf('/');
  // No `@` in the last segment, or one that starts it (a folder literally named `@x`): no snapshot.
  if (at <= slash + 1) return { prefix };
  const volume = trimmed.slice(slash + 1, at);
  if (volume === '.' || volume === '..') {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `"${trimmed}" names no volume before its @snapshot (a "${volume}" segment is refused)`,
    );
  }
  const snapshot = trimmed.slice(at + 1);
  checkSnapshotName(snapshot);
  return { prefix: `${trimmed.slice(0, at)}/`, snapshot };
}

/** Options a volume URL may carry besides its location and geometry (never a key itself). */
export interface UrlFeatureOptions {
  /** `?compress=deflate|none`: compression of a new volume. */
  readonly compression?: CompressionName;
  /** `?key_file=PATH`: file holding the encryption key. */
  readonly keyFile?: string;
  /** `?key_env=NAME`: environment variable holding the encryption key. */
  readonly keyEnv?: string;
  /** `?stats_file=PATH`: write the backend's stats there every second. */
  readonly statsFile?: string;
  /** `?cache_file=PATH`: crash-safe journal of acknowledged writes (see write-journal.ts). */
  readonly cacheFile?: string;
}

/** The URL parameters of {@link UrlFeatureOptions}, for parseS3Url's error message. */
export const urlFeatureParameters = ['compress', 'key_file', 'key_env', 'stats_file', 'cache_file'];

/** Applies one URL query parameter to `out`; false when `key` is not one of these features. */
export function applyUrlFeature(
  out: { -readonly [K in keyof UrlFeatureOptions]?: UrlFeatureOptions[K] },
  key: string,
  value: string,
): boolean {
  switch (key) {
    case 'compress':
      if (value !== 'deflate' && value !== 'none') {
        throw new BackendError(
          BackendErrorCode.InvalidArgument,
          `compress=${value} is not supported (deflate or none; zstd is not available in this Node.js)`,
        );
      }
      out.compression = value;
      return true;
    case 'key_file':
      out.keyFile = value;
      return true;
    case 'key_env':
      out.keyEnv = value;
      return true;
    case 'stats_file':
      out.statsFile = value;
      return true;
    case 'cache_file':
      out.cacheFile = value;
      return true;
    default:
      return false;
  }
}
