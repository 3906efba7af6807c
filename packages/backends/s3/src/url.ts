import { BackendError, BackendErrorCode } from '@tcmu/backend';
import { applyUrlFeature, type UrlFeatureOptions, urlFeatureParameters } from './volume-features.ts';

/**
 * Where a volume lives: a bucket, a key prefix inside it (the volume's folder), and how to reach the
 * server. Credentials are never part of a location: they come from the standard AWS chain
 * (environment, shared profile, instance role).
 */
export interface S3Location {
  /** Bucket name. */
  readonly bucket: string;
  /**
   * Key prefix of the volume, without leading slash. Normalised to end with `/` (or empty for a
   * volume at the bucket root, which is discouraged).
   */
  readonly prefix: string;
  /** Custom endpoint (RGW, MinIO …), e.g. `http://127.0.0.1:7480`. Absent: AWS S3. Path-style addressing is used when set. */
  readonly endpoint?: string;
  /** Region; absent: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`. */
  readonly region?: string;
}

/** What `parseS3Url` returns: the location plus the geometry hints the URL may carry. */
export interface ParsedS3Url extends S3Location, UrlFeatureOptions {
  /** From `?chunk=` (bytes), e.g. `chunk=1M`. */
  readonly chunkSize?: number;
  /** From `?size=` (bytes), e.g. `size=10G`. */
  readonly size?: number;
}

const units: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
};

/**
 * Parses a byte size: a non-negative integer with an optional binary unit (`512`, `64K`, `1MiB`,
 * `10G`, `2T`; units are powers of 1024, case-insensitive). Throws `TCMU_ERR_BACKEND_INVALID_ARGUMENT`
 * naming `what` for anything else.
 */
export function parseByteSize(text: string, what = 'size'): number {
  const match = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = match ? units[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `${what} "${text}" is not a byte size (examples: 4096, 64K, 1M, 10G)`,
    );
  }
  const value = Number(match[1]) * unit;
  if (!Number.isSafeInteger(value)) {
    throw new BackendError(BackendErrorCode.InvalidArgument, `${what} "${text}" is too large`);
  }
  return value;
}

const bucketPattern = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Normalises a volume prefix: strips leading slashes, collapses repeated slashes, adds a trailing one. */
export function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+/, '').replace(/\/{2,}/g, '/');
  return trimmed === '' || trimmed.endsWith('/') ? trimmed : `${trimmed}/`;
}

/** Checks a location's fields and returns it with the prefix normalised. */
export function normalizeLocation<T extends S3Location>(location: T): T {
  if (!bucketPattern.test(location.bucket)) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `"${location.bucket}" is not a valid bucket name (3-63 characters: lower-case letters, digits, dots, hyphens)`,
    );
  }
  if (location.endpoint !== undefined) {
    let url: URL;
    try {
      url = new URL(location.endpoint);
    } catch {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        `endpoint "${location.endpoint}" is not a URL (example: http://127.0.0.1:7480)`,
      );
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        `endpoint "${location.endpoint}" must be an http:// or https:// URL`,
      );
    }
    if (url.username || url.password) {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        'the endpoint must not carry credentials; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile',
      );
    }
  }
  return { ...location, prefix: normalizePrefix(location.prefix) };
}

/**
 * Parses `s3://bucket/prefix?endpoint=http://127.0.0.1:7480&region=us-east-1&chunk=1M&size=10G`.
 * Only those query parameters are accepted; anything else (and credentials in the URL) is refused
 * with `TCMU_ERR_BACKEND_INVALID_ARGUMENT` and a message that says what is wrong.
 */
export function parseS3Url(text: string): ParsedS3Url {
  const match = /^s3:\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/.exec(text.trim());
  if (!match) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `"${text}" is not an S3 volume URL (expected s3://bucket/prefix?endpoint=…)`,
    );
  }
  const authority = match[1]!;
  if (authority.includes('@') || authority.includes(':')) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      'an s3:// URL must not carry credentials; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile',
    );
  }
  const prefix = decodeURIComponent(match[2] ?? '');
  if (normalizePrefix(prefix) === '') {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `"${text}" names no prefix; a volume needs its own folder (s3://${authority}/my-volume)`,
    );
  }
  const result: {
    -readonly [K in keyof UrlFeatureOptions]?: UrlFeatureOptions[K];
  } & {
    bucket: string;
    prefix: string;
    endpoint?: string;
    region?: string;
    chunkSize?: number;
    size?: number;
  } = { bucket: authority, prefix };
  for (const [key, value] of new URLSearchParams(match[3] ?? '')) {
    switch (key) {
      case 'endpoint':
        result.endpoint = value;
        break;
      case 'region':
        result.region = value;
        break;
      case 'chunk':
        result.chunkSize = parseByteSize(value, 'chunk');
        break;
      case 'size':
        result.size = parseByteSize(value, 'size');
        break;
      default:
        if (applyUrlFeature(result, key, value)) break;
        throw new BackendError(
          BackendErrorCode.InvalidArgument,
          `unknown parameter "${key}" in "${text}" (known: endpoint, region, chunk, size, ${urlFeatureParameters.join(', ')})`,
        );
    }
  }
  return normalizeLocation(result);
}

/** The inverse of `parseS3Url` for a location (no geometry), for messages and logs. */
export function formatS3Url(location: S3Location): string {
  const query = location.endpoint ? `?endpoint=${location.endpoint}` : '';
  return `s3://${location.bucket}/${location.prefix}${query}`;
}
