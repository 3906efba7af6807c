import { createHash } from 'node:crypto';
import { BackendError, BackendErrorCode } from '@tcmu/backend';
import {
  clonesFolder,
  featuresFormatVersion,
  parseFeatures,
  type VolumeFeatures,
} from './volume-features.ts';

/**
 * The on-bucket layout of a volume under its prefix `P` (format version 1):
 *
 *   P tcmu-volume.json          geometry: { format, version, size, chunkSize, blockSize, created }
 *   P tcmu-lease.json           the writer's lease (present while a process has it open read-write)
 *   P data/HHHH/IIIIIIIIIIII    chunk number I (12 hex digits), HHHH = 16-bit hash of I (spreads keys)
 *
 * A chunk object holds exactly `chunkSize` bytes; a chunk with no object reads as zeros (never
 * written, unmapped, or all zeros). Each chunk object carries `x-amz-meta-tcmu-md5` (hex MD5 of its
 * body), checked on every read. Format version 2 (generations, snapshots, clones, compression,
 * encryption) adds generation-suffixed chunk keys, tombstones and clone markers: see volume-features.ts.
 */
export const formatName = 'tcmu-s3-volume';
export const formatVersion = 1;
export const metadataName = 'tcmu-volume.json';
export const leaseName = 'tcmu-lease.json';
export const dataFolder = 'data/';
export const md5MetadataKey = 'tcmu-md5';
/**
 * On a plain chunk (no compression, no encryption): `SIZE:` then the hex MD5 of each SIZE-byte
 * segment of the body, so a ranged GET of whole segments can be checked as the whole-body MD5 is.
 * Older objects lack it; a reader then reads the whole chunk.
 */
export const segmentMd5MetadataKey = 'tcmu-segment-md5';

/** The segment size of {@link segmentMd5MetadataKey}: 64 KiB, or a 32nd of chunks over 2 MiB (S3 allows 2 KB of metadata). */
export function segmentSize(chunkSize: number): number {
  return Math.max(64 * 1024, chunkSize / 32);
}

/** Smallest and largest chunk sizes accepted (powers of two). */
export const minimumChunkSize = 4096;
export const maximumChunkSize = 64 * 1024 * 1024;
/** Default chunk size: 1 MiB, measured against RGW (see the README's Limits and docs/s3.md). */
export const defaultChunkSize = 1024 * 1024;

/** The geometry stored in `tcmu-volume.json`, plus the format-2 features (volume-features.ts). */
export interface VolumeMetadata extends VolumeFeatures {
  readonly format: typeof formatName;
  readonly version: number;
  /** Capacity in bytes, a multiple of blockSize. */
  readonly size: number;
  /** Bytes per chunk object, a power of two. */
  readonly chunkSize: number;
  /** Logical block size the volume was created with (512 or 4096). */
  readonly blockSize: number;
  /** ISO time of creation. */
  readonly created: string;
}

/** 16-bit FNV-1a of the chunk number, as 4 hex digits. */
export function chunkHash(index: number): string {
  let hash = 0x811c9dc5;
  let value = index;
  for (let i = 0; i < 7; i++) {
    hash ^= value & 0xff;
    hash = Math.imul(hash, 0x01000193) >>> 0;
    value = Math.floor(value / 256);
  }
  return ((hash >>> 16) ^ (hash & 0xffff)).toString(16).padStart(4, '0');
}

/** Key of chunk `index` under `prefix`. */
export function chunkKey(prefix: string, index: number): string {
  return `${prefix}${dataFolder}${chunkHash(index)}/${index.toString(16).padStart(12, '0')}`;
}

/** The chunk number a key names, or undefined when the key is not a well-formed chunk key of this prefix. */
export function parseChunkKey(prefix: string, key: string): number | undefined {
  const start = prefix.length + dataFolder.length;
  if (!key.startsWith(prefix) || key.slice(prefix.length, start) !== dataFolder) return undefined;
  const rest = key.slice(start);
  const match = /^([0-9a-f]{4})\/([0-9a-f]{12})$/.exec(rest);
  if (!match) return undefined;
  const index = Number.parseInt(match[2]!, 16);
  return chunkHash(index) === match[1] ? index : undefined;
}

/**
 * Whether `key` is one of the volume's own objects: its description, its lease, a chunk of any
 * generation (a well-formed chunk key, `…/IIIIIIIIIIII` or `…/IIIIIIIIIIII.GGGGGGGG`, tombstones
 * included), a clone marker (`tcmu-clones/SNAP/ENCODED-PREFIX`), or another `tcmu-*` object directly
 * under the prefix (snapshot requests and replies). Anything else under the prefix (a foreign object,
 * another volume created inside it by an older version) is not the volume's and is never deleted with it.
 */
export function isVolumeObjectKey(prefix: string, key: string): boolean {
  if (!key.startsWith(prefix)) return false;
  const rest = key.slice(prefix.length);
  if (parseChunkKeyAt(prefix, key) !== undefined) return true;
  if (rest.startsWith(clonesFolder)) return /^[^/]+\/[^/]+$/.test(rest.slice(clonesFolder.length));
  return rest.startsWith('tcmu-') && !rest.includes('/');
}

/** The prefixes that enclose `prefix` at a `/` boundary, outermost first (`a/b/c/` → ``, `a/`, `a/b/`). */
export function enclosingPrefixes(prefix: string): string[] {
  const out = [''];
  for (let i = prefix.indexOf('/'); i !== -1 && i < prefix.length - 1; i = prefix.indexOf('/', i + 1)) {
    out.push(prefix.slice(0, i + 1));
  }
  return out;
}

/** The 16 listing prefixes that together cover every chunk key (listed in parallel). */
export function chunkListPrefixes(prefix: string): string[] {
  return Array.from({ length: 16 }, (_, i) => `${prefix}${dataFolder}${i.toString(16)}`);
}

export function md5(data: Uint8Array): Buffer {
  return createHash('md5').update(data).digest();
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Validates a chunk size, throwing an InvalidArgument error with the allowed range. */
export function checkChunkSize(chunkSize: number): void {
  if (!isPowerOfTwo(chunkSize) || chunkSize < minimumChunkSize || chunkSize > maximumChunkSize) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `chunk size ${chunkSize} must be a power of two between ${minimumChunkSize} (4K) and ${maximumChunkSize} (64M)`,
    );
  }
}

/** Validates a volume size against its block size. */
export function checkVolumeSize(size: number, blockSize: number): void {
  if (!Number.isSafeInteger(size) || size <= 0 || size % blockSize !== 0) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `volume size ${size} must be a positive multiple of the ${blockSize}-byte block size`,
    );
  }
}

/** Parses and validates the metadata object's body; a clear Open error for anything unexpected. */
export function parseMetadata(body: Uint8Array, where: string): VolumeMetadata {
  let value: Partial<VolumeMetadata>;
  try {
    value = JSON.parse(Buffer.from(body).toString('utf8')) as Partial<VolumeMetadata>;
  } catch {
    throw new BackendError(
      BackendErrorCode.Open,
      `${where}: ${metadataName} is not JSON; not a tcmu volume?`,
    );
  }
  if (value?.format !== formatName) {
    throw new BackendError(
      BackendErrorCode.Open,
      `${where}: ${metadataName} is not a tcmu S3 volume description`,
    );
  }
  if (value.version !== formatVersion && value.version !== featuresFormatVersion) {
    throw new BackendError(
      BackendErrorCode.Open,
      `${where}: volume format version ${value.version} is not supported (this package reads versions ${formatVersion} and ${featuresFormatVersion})`,
    );
  }
  const size = value.size;
  const chunkSize = value.chunkSize;
  const blockSize = value.blockSize ?? 512;
  if (typeof size !== 'number' || typeof chunkSize !== 'number') {
    throw new BackendError(BackendErrorCode.Open, `${where}: ${metadataName} lacks size or chunkSize`);
  }
  checkChunkSize(chunkSize);
  checkVolumeSize(size, blockSize);
  return {
    ...(value.version === featuresFormatVersion
      ? parseFeatures(value as Record<string, unknown>, where)
      : {}),
    format: formatName,
    version: value.version,
    size,
    chunkSize,
    blockSize,
    created: typeof value.created === 'string' ? value.created : '',
  };
}

export function encodeMetadata(metadata: VolumeMetadata): Uint8Array {
  return Buffer.from(`${JSON.stringify(metadata, null, 2)}\n`);
}

/** Key of chunk `index` written in `generation` (generation 0: the format-1 key). */
export function chunkKeyAt(prefix: string, index: number, generation: number): string {
  const base = chunkKey(prefix, index);
  return generation === 0 ? base : `${base}.${generation.toString(16).padStart(8, '0')}`;
}

/** The chunk number and generation a key names, or undefined for anything else. */
export function parseChunkKeyAt(
  prefix: string,
  key: string,
): { index: number; generation: number } | undefined {
  const dot = key.lastIndexOf('.');
  const slash = key.lastIndexOf('/');
  if (dot > slash && key.startsWith(`${prefix}${dataFolder}`)) {
    const suffix = key.slice(dot + 1);
    if (!/^[0-9a-f]{8}$/.test(suffix)) return undefined;
    const generation = Number.parseInt(suffix, 16);
    const index = parseChunkKey(prefix, key.slice(0, dot));
    return index === undefined || generation === 0 ? undefined : { index, generation };
  }
  const index = parseChunkKey(prefix, key);
  return index === undefined ? undefined : { index, generation: 0 };
}
