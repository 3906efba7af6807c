import { BackendError, BackendErrorCode, joinUrlPath, redactUrl, splitUrlPath } from '@tcmu/backend';
import {
  applyUrlFeature,
  splitSnapshotPrefix,
  type UrlFeatureOptions,
  urlFeatureParameters,
} from './volume-features.ts';

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
  /** From `?lease=` (seconds, e.g. `lease=30` or `lease=30s`), in milliseconds: the writer lease's duration. */
  readonly leaseDuration?: number;
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
  if (!bucketPattern.test(location.bucket) || location.bucket.includes('..')) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `"${location.bucket}" is not a valid bucket name (3-63 characters: lower-case letters, digits, dots, hyphens)`,
    );
  }
  const prefix = normalizePrefix(location.prefix);
  for (const segment of prefix.split('/').slice(0, -1)) {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point.
    if (segment === '.' || segment === '..' || /[\u0000-\u001f\u007f]/.test(segment)) {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        `the volume prefix must not contain "." or ".." segments or control characters (got ${JSON.stringify(location.prefix)})`,
      );
    }
  }
  if (location.endpoint !== undefined) {
    let url: URL;
    try {
      url = new URL(location.endpoint);
    } catch {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        `endpoint "${redactUrl(location.endpoint)}" is not a URL (example: http://127.0.0.1:7480)`,
      );
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        `endpoint "${redactUrl(location.endpoint)}" must be an http:// or https:// URL`,
      );
    }
    if (url.username || url.password) {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        'the endpoint must not carry credentials; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile',
      );
    }
  }
  return { ...location, prefix };
}

/**
 * Parses `s3://bucket/prefix?endpoint=http://127.0.0.1:7480&region=us-east-1&chunk=1M&size=10G&lease=30`.
 * Only those query parameters are accepted, each once; anything else is refused with
 * `TCMU_ERR_BACKEND_INVALID_ARGUMENT` and a message that says what is wrong: credentials in the URL,
 * and a prefix that would not come back the same from {@link formatS3Url} (`.` or `..` segments, empty
 * segments as in `a//b`, an encoded `/`, control characters). Messages show the URL through
 * `redactUrl`, so a secret typed into it is never echoed.
 */
export function parseS3Url(text: string): ParsedS3Url {
  const shown = redactUrl(text);
  const match = /^s3:\/\/([^/?#]*)(?:\/([^?#]*))?(?:\?([^#]*))?$/.exec(text.trim());
  if (!match) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `"${shown}" is not an S3 volume URL (expected s3://bucket/prefix?endpoint=…)`,
    );
  }
  const authority = match[1]!;
  if (authority.includes('@') || authority.includes(':')) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      'an s3:// URL must not carry credentials; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile',
    );
  }
  if ((match[2] ?? '') === '') {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `"${shown}" names no prefix; a volume needs its own folder (s3://${authority}/my-volume)`,
    );
  }
  const segments = splitUrlPath(match[2]!);
  if (!Array.isArray(segments)) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `"${shown}" is not a usable volume URL: ${segments.refused} (name the volume's folder plainly, e.g. s3://${authority}/disks/vol1)`,
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
    leaseDuration?: number;
  } = { bucket: authority, prefix: `${segments.join('/')}/` };
  try {
    // `vol@NAME` names a snapshot: its name and the volume part before `@` are checked here already.
    splitSnapshotPrefix(result.prefix);
  } catch (error) {
    throw new BackendError(BackendErrorCode.InvalidArgument, `"${shown}": ${(error as Error).message}`);
  }
  const seen = new Set<string>();
  for (const [key, value] of new URLSearchParams(match[3] ?? '')) {
    if (seen.has(key)) {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        `parameter "${key}" appears twice in "${shown}"`,
      );
    }
    seen.add(key);
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
      case 'lease': {
        const match = /^(\d+)s?$/.exec(value);
        if (!match || Number(match[1]) < 1 || Number(match[1]) > 86_400) {
          throw new BackendError(
            BackendErrorCode.InvalidArgument,
            `lease "${value}" must be a number of seconds from 1 to 86400 (example: lease=30)`,
          );
        }
        result.leaseDuration = Number(match[1]) * 1000;
        break;
      }
      default:
        if (applyUrlFeature(result, key, value)) break;
        throw new BackendError(
          BackendErrorCode.InvalidArgument,
          `unknown parameter "${key}" in "${shown}" (known: endpoint, region, chunk, size, lease, ${urlFeatureParameters.join(', ')})`,
        );
    }
  }
  return normalizeLocation(result);
}

/**
 * The URL of a location (no geometry), for messages and logs: `parseS3Url(formatS3Url(l))` gives the
 * same bucket, prefix and endpoint back (prefix segments are percent-encoded where needed).
 */
export function formatS3Url(location: S3Location): string {
  const query = location.endpoint ? `?endpoint=${redactUrl(location.endpoint)}` : '';
  const path = location.prefix === '' ? '' : `${joinUrlPath(location.prefix.replace(/\/$/, '').split('/'))}/`;
  return `s3://${location.bucket}/${path}${query}`;
}
