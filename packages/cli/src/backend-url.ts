import { isAbsolute, resolve } from 'node:path';
import { joinUrlPath, redactUrl, splitUrlPath } from '@tcmu/backend';
import { CliError } from './errors.js';

/** Where a served disk keeps its blocks, as named on the command line. */
export type BackendLocation =
  /** `memory:` a sparse in-memory disk, lost when the process exits. */
  | { readonly kind: 'memory' }
  /** `file:/path/to/image`: a regular file (created sparse when missing); `path` is absolute. */
  | { readonly kind: 'file'; readonly path: string }
  /**
   * `s3://bucket/prefix?endpoint=…&region=…`: blocks stored as objects under `prefix` in `bucket`.
   * `parameters` holds the query string (e.g. `endpoint`, `region`), passed to `@tcmu/backend-s3`.
   */
  | {
      readonly kind: 's3';
      readonly bucket: string;
      readonly prefix: string;
      readonly parameters: Readonly<Record<string, string>>;
      /** The URL as given (what `@tcmu/backend-s3`'s parseS3Url reads). */
      readonly url: string;
    };

const EXPECTED = 'expected memory:, file:/path/to/image or s3://bucket/prefix?endpoint=URL';

/**
 * Parses the backend argument of `tcmu serve`.
 *
 * - `memory:` (also `memory` and `memory://`).
 * - `file:/abs/path`, `file:///abs/path`, `file://localhost/abs/path` or `file:relative/path` (resolved
 *   against `cwd`). The path is taken literally: no percent-decoding, `?` and `#` are part of the name.
 * - `s3://bucket/prefix[?endpoint=http://host:port&region=…]`: the bucket must be a valid S3 bucket name;
 *   the prefix (the volume's folder, required) is the path without its leading slash (percent-decoded);
 *   each query parameter appears once.
 *
 * @throws CliError `TCMU_ERR_CLI_BACKEND_URL` with a one-line message for anything else.
 */
export function parseBackendLocation(text: string, cwd: string = process.cwd()): BackendLocation {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(text)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    if (text === 'memory') return { kind: 'memory' };
    const hint = text.startsWith('/') || text.startsWith('.') ? ` (did you mean file:${text}?)` : '';
    throw new CliError(
      'TCMU_ERR_CLI_BACKEND_URL',
      `invalid backend "${redactUrl(text)}": ${EXPECTED}${hint}`,
    );
  }
  const rest = text.slice(scheme.length + 1);
  switch (scheme) {
    case 'memory':
      if (rest !== '' && rest !== '//') {
        throw new CliError(
          'TCMU_ERR_CLI_BACKEND_URL',
          `invalid backend "${redactUrl(text)}": memory: takes no path or options`,
        );
      }
      return { kind: 'memory' };
    case 'file':
      return { kind: 'file', path: parseFilePath(text, rest, cwd) };
    case 's3':
      return parseS3(text);
    default:
      throw new CliError('TCMU_ERR_CLI_BACKEND_URL', `unknown backend scheme "${scheme}:": ${EXPECTED}`);
  }
}

function parseFilePath(text: string, rest: string, cwd: string): string {
  let path = rest;
  if (rest.startsWith('//')) {
    const slash = rest.indexOf('/', 2);
    const host = slash === -1 ? rest.slice(2) : rest.slice(2, slash);
    if (host !== '' && host !== 'localhost') {
      throw new CliError(
        'TCMU_ERR_CLI_BACKEND_URL',
        `invalid backend "${redactUrl(text)}": file URLs name a local path (host "${host}" is not supported)`,
      );
    }
    path = slash === -1 ? '' : rest.slice(slash);
  }
  if (path === '') {
    throw new CliError(
      'TCMU_ERR_CLI_BACKEND_URL',
      `invalid backend "${redactUrl(text)}": file: needs a path (file:/path/to/image)`,
    );
  }
  if (path.includes('\0')) {
    throw new CliError(
      'TCMU_ERR_CLI_BACKEND_URL',
      `invalid backend "${redactUrl(text)}": the path contains a NUL byte`,
    );
  }
  if (path.endsWith('/')) {
    throw new CliError(
      'TCMU_ERR_CLI_BACKEND_URL',
      `invalid backend "${redactUrl(text)}": the path names a folder, not an image file`,
    );
  }
  return isAbsolute(path) ? resolve(path) : resolve(cwd, path);
}

/** S3 bucket naming rules (the common subset every S3 implementation accepts). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

function parseS3(text: string): BackendLocation {
  // Every message shows the URL redacted: a secret typed into it is never echoed.
  const shown = redactUrl(text);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError('TCMU_ERR_CLI_BACKEND_URL', `invalid backend "${shown}": not a valid s3:// URL`);
  }
  const bucket = url.hostname;
  if (bucket === '') {
    throw new CliError(
      'TCMU_ERR_CLI_BACKEND_URL',
      `invalid backend "${shown}": s3:// needs a bucket (s3://bucket/prefix)`,
    );
  }
  if (url.username || url.password || url.port) {
    throw new CliError(
      'TCMU_ERR_CLI_BACKEND_URL',
      `invalid backend "${shown}": put credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the server in ?endpoint=`,
    );
  }
  if (!BUCKET.test(bucket) || bucket.includes('..') || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)) {
    throw new CliError(
      'TCMU_ERR_CLI_BACKEND_URL',
      `invalid backend "${shown}": "${bucket}" is not a valid bucket name (3-63 lowercase letters, digits, dots, hyphens)`,
    );
  }
  if (url.hash) {
    throw new CliError(
      'TCMU_ERR_CLI_BACKEND_URL',
      `invalid backend "${shown}": s3:// URLs take no #fragment`,
    );
  }
  // The path as written (new URL() would resolve "." and ".." segments and report another prefix).
  const rawPath = /^s3:\/\/[^/?#]*\/?([^?#]*)/i.exec(text)?.[1] ?? '';
  if (rawPath.replace(/\/+/g, '') === '') {
    throw new CliError(
      'TCMU_ERR_CLI_BACKEND_URL',
      `invalid backend "${shown}": a volume needs its own prefix (s3://${bucket}/my-volume)`,
    );
  }
  const segments = splitUrlPath(rawPath);
  if (!Array.isArray(segments)) {
    throw new CliError('TCMU_ERR_CLI_BACKEND_URL', `invalid backend "${shown}": ${segments.refused}`, {
      hint: `name the volume's folder plainly, e.g. s3://${bucket}/disks/vol1`,
    });
  }
  // `vol@NAME` names a snapshot (@tcmu/backend-s3): the volume part obeys the same rules.
  const last = segments.at(-1)!;
  const volumePart = last.slice(0, Math.max(0, last.lastIndexOf('@')));
  if (volumePart === '.' || volumePart === '..') {
    throw new CliError(
      'TCMU_ERR_CLI_BACKEND_URL',
      `invalid backend "${shown}": the path has a "${volumePart}" segment before its @snapshot`,
      { hint: `name the volume's folder plainly, e.g. s3://${bucket}/disks/vol1@snapshot` },
    );
  }
  const prefix = segments.join('/');
  const parameters: Record<string, string> = {};
  for (const [key, value] of url.searchParams) {
    if (key in parameters) {
      throw new CliError(
        'TCMU_ERR_CLI_BACKEND_URL',
        `invalid backend "${shown}": parameter "${key}" appears twice`,
      );
    }
    parameters[key] = value;
  }
  const endpoint = parameters.endpoint;
  if (endpoint !== undefined) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(endpoint);
    } catch {}
    if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
      throw new CliError(
        'TCMU_ERR_CLI_BACKEND_URL',
        `invalid backend "${shown}": endpoint "${redactUrl(endpoint)}" is not an http:// or https:// URL`,
      );
    }
  }
  return { kind: 's3', bucket, prefix, parameters, url: text };
}

/** The canonical text of a location (for logs and `tcmu ls`): `memory:`, `file:/abs/path`, `s3://bucket/prefix`. */
export function formatBackendLocation(location: BackendLocation): string {
  switch (location.kind) {
    case 'memory':
      return 'memory:';
    case 'file':
      return `file:${location.path}`;
    case 's3':
      return `s3://${location.bucket}/${joinUrlPath(location.prefix.split('/'))}`;
  }
}
