import { createHash, createHmac } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { SocketPool } from './http-connection.ts';
import { readBody } from './read-body.ts';

/**
 * S3 requests with AWS Signature Version 4 (our own HTTP/1.1 connections for `http:` endpoints,
 * node:https for `https:`), for the few operations the backend makes
 * per chunk. The AWS SDK stays the source of credentials and region (its whole provider chain), but
 * a GET through its middleware stack costs about twice the CPU of the same GET sent here, and that
 * CPU is what the block device competes for (docs/performance.md, "S3").
 */

/** Credentials as the SDK's providers return them. */
export interface S3Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  readonly expiration?: Date;
}

/** What {@link signV4} signs. Header names in lower case; `host` among them. */
export interface SignInput {
  readonly method: string;
  /** The canonical URI: the path as sent, already encoded by {@link encodePath}. */
  readonly path: string;
  /** The canonical query string: `name=value` pairs encoded and sorted, joined with `&`. */
  readonly query: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`. */
  readonly payloadHash: string;
  /** `YYYYMMDDTHHMMSSZ`. */
  readonly amzDate: string;
  readonly region: string;
  readonly service?: string;
  readonly credentials: S3Credentials;
}

/** RFC 3986 encoding as SigV4 wants it: every byte but `A-Za-z0-9-._~` escaped; `/` kept when `keepSlash`. */
export function encodeUri(text: string, keepSlash: boolean): string {
  const encoded = encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return keepSlash ? encoded.replace(/%2F/g, '/') : encoded;
}

/** A path for the request line and the canonical request (S3 encodes it once, keeping `/`). */
export function encodePath(path: string): string {
  return encodeUri(path, true);
}

let cachedKey: { id: string; key: Buffer } | undefined;

function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  const id = `${date}\n${region}\n${service}\n${secret}`;
  if (cachedKey?.id === id) return cachedKey.key;
  let key = createHmac('sha256', `AWS4${secret}`).update(date).digest();
  for (const part of [region, service, 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  cachedKey = { id, key };
  return key;
}

/**
 * The headers to send: the given ones plus `x-amz-date`, `x-amz-content-sha256`,
 * `x-amz-security-token` (with a session token) and `authorization`. Every given header is signed.
 */
export function signV4(input: SignInput): Record<string, string> {
  const service = input.service ?? 's3';
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(input.headers)) {
    headers[name.toLowerCase()] = String(value).trim().replace(/\s+/g, ' ');
  }
  headers['x-amz-date'] = input.amzDate;
  headers['x-amz-content-sha256'] = input.payloadHash;
  if (input.credentials.sessionToken) headers['x-amz-security-token'] = input.credentials.sessionToken;
  const names = Object.keys(headers).sort();
  const signedHeaders = names.join(';');
  const canonical = [
    input.method,
    input.path,
    input.query,
    names.map((name) => `${name}:${headers[name]}\n`).join(''),
    signedHeaders,
    input.payloadHash,
  ].join('\n');
  const date = input.amzDate.slice(0, 8);
  const scope = `${date}/${input.region}/${service}/aws4_request`;
  const stringToSign = `AWS4-HMAC-SHA256\n${input.amzDate}\n${scope}\n${createHash('sha256').update(canonical).digest('hex')}`;
  const signature = createHmac(
    'sha256',
    signingKey(input.credentials.secretAccessKey, date, input.region, service),
  )
    .update(stringToSign)
    .digest('hex');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${input.credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return headers;
}

/** `YYYYMMDDTHHMMSSZ` for a moment. */
export function amzDate(at: Date): string {
  return at.toISOString().replace(/[-:]|\.\d{3}/g, '');
}

/** An S3 error answer (HTTP status ≥ 300), named by its XML `<Code>` (or `Http<status>` without one). */
export class S3ResponseError extends Error {
  override readonly name: string;
  /** The HTTP status, read by `classifyError` as it reads the SDK's `$metadata.httpStatusCode`. */
  readonly $metadata: { readonly httpStatusCode: number };
  constructor(
    readonly status: number,
    code: string | undefined,
    message: string | undefined,
  ) {
    super(message ?? `HTTP ${status}`);
    this.name = code ?? `Http${status}`;
    this.$metadata = { httpStatusCode: status };
  }
}

/** One answer: status, headers, the whole body. */
export interface S3Answer {
  readonly status: number;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

export interface S3RequestInit {
  readonly method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
  /** The object key; empty for a bucket-level request. */
  readonly key: string;
  /** Query parameters (unencoded); an empty value is sent as `name=`. */
  readonly query?: Readonly<Record<string, string>>;
  /** Extra headers, all signed. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Uint8Array;
  readonly signal: AbortSignal;
}

export interface S3HttpOptions {
  /** `http(s)://host[:port][/base]`, path-style; absent: AWS, `https://s3.<region>.amazonaws.com`. */
  readonly endpoint?: string;
  readonly bucket: string;
  readonly region: () => Promise<string>;
  readonly credentials: () => Promise<S3Credentials>;
  readonly maxSockets: number;
}

/**
 * Where a bucket's keys live: with an endpoint, path style (`endpoint[/base]/bucket/key`); on AWS,
 * virtual-hosted style (`https://bucket.s3.region.amazonaws.com/key`) for names that are valid host
 * labels, path style on the regional endpoint for the rest (names with dots or capitals).
 */
export function bucketBase(
  endpoint: string | undefined,
  bucket: string,
  region: string,
): { url: URL; pathPrefix: string } {
  if (endpoint !== undefined) {
    const url = new URL(endpoint);
    return { url, pathPrefix: `${url.pathname.replace(/\/+$/, '')}/${bucket}` };
  }
  if (/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket)) {
    return { url: new URL(`https://${bucket}.s3.${region}.amazonaws.com`), pathPrefix: '' };
  }
  return { url: new URL(`https://s3.${region}.amazonaws.com`), pathPrefix: `/${bucket}` };
}

/** Parses `<Code>` and `<Message>` out of an S3 error body. */
function errorFields(body: Buffer): { code?: string; message?: string } {
  const text = body.subarray(0, 4096).toString('utf8');
  const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1];
  return { ...(code ? { code } : {}), ...(message ? { message: decodeXml(message) } : {}) };
}

/** Decodes the five XML entities and numeric references. */
export function decodeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, entity: string) => {
    if (entity[0] === '#') {
      return String.fromCodePoint(
        entity[1] === 'x' ? Number.parseInt(entity.slice(2), 16) : Number.parseInt(entity.slice(1), 10),
      );
    }
    return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[entity as 'amp']!;
  });
}

const idleTimeoutMs = 30_000;

/** Signed S3 requests over keep-alive sockets; every answer with status ≥ 300 rejects with {@link S3ResponseError}. */
export class S3Http {
  readonly #options: S3HttpOptions;
  /** `http:` endpoints: our own keep-alive connections (bodies read in place). */
  readonly #pool: SocketPool | undefined;
  /** `https:` endpoints: node:https. */
  readonly #agent: HttpsAgent | undefined;
  #base: Promise<{ url: URL; region: string; pathPrefix: string }> | undefined;
  #credentials: Promise<S3Credentials> | undefined;
  #credentialsUntil = 0;

  constructor(options: S3HttpOptions) {
    this.#options = options;
    const plain = options.endpoint?.startsWith('http:') ?? false;
    if (plain) {
      const url = new URL(options.endpoint!);
      this.#pool = new SocketPool({
        host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: url.port === '' ? 80 : Number(url.port),
        maxSockets: options.maxSockets,
        timeoutMs: idleTimeoutMs,
      });
    } else {
      this.#agent = new HttpsAgent({ keepAlive: true, maxSockets: options.maxSockets });
    }
  }

  #resolveBase() {
    this.#base ??= (async () => {
      const region = await this.#options.region();
      const { url, pathPrefix } = bucketBase(this.#options.endpoint, this.#options.bucket, region);
      return { url, region, pathPrefix };
    })();
    // A failed resolution is tried again by the next request.
    this.#base.catch(() => {
      this.#base = undefined;
    });
    return this.#base;
  }

  #resolveCredentials(): Promise<S3Credentials> {
    if (this.#credentials === undefined || Date.now() >= this.#credentialsUntil) {
      const pending = this.#options.credentials();
      this.#credentials = pending;
      this.#credentialsUntil = Number.POSITIVE_INFINITY;
      pending.then(
        (c) => {
          // Refresh five minutes before an expiring credential ends.
          this.#credentialsUntil = c.expiration ? c.expiration.getTime() - 300_000 : Number.POSITIVE_INFINITY;
        },
        () => {
          this.#credentials = undefined;
        },
      );
    }
    return this.#credentials;
  }

  /** Sends one request (no retries: those are the caller's). */
  async send(init: S3RequestInit): Promise<S3Answer> {
    init.signal.throwIfAborted();
    const [{ url, region, pathPrefix }, credentials] = await Promise.all([
      this.#resolveBase(),
      this.#resolveCredentials(),
    ]);
    const path = encodePath(`${pathPrefix}/${init.key}`);
    const query = Object.entries(init.query ?? {})
      .map(([name, value]) => `${encodeUri(name, false)}=${encodeUri(value, false)}`)
      .sort()
      .join('&');
    const body = init.body;
    const headers = signV4({
      method: init.method,
      path,
      query,
      headers: { ...init.headers, host: url.host },
      payloadHash: 'UNSIGNED-PAYLOAD',
      amzDate: amzDate(new Date()),
      region,
      credentials,
    });
    if (body !== undefined || init.method === 'PUT' || init.method === 'POST') {
      headers['content-length'] = String(body?.byteLength ?? 0);
    }
    const target = query ? `${path}?${query}` : path;
    const answer = this.#pool
      ? await this.#pool.exchange({
          method: init.method,
          path: target,
          headers,
          ...(body === undefined ? {} : { body }),
          signal: init.signal,
        })
      : await this.#httpsExchange(url, init, target, headers);
    if (answer.status >= 300) {
      const { code, message } = errorFields(answer.body);
      throw new S3ResponseError(answer.status, code, message);
    }
    return answer;
  }

  #httpsExchange(
    url: URL,
    init: S3RequestInit,
    path: string,
    headers: Record<string, string>,
  ): Promise<S3Answer> {
    const body = init.body;
    return new Promise<S3Answer>((resolve, reject) => {
      const request = httpsRequest(
        {
          protocol: url.protocol,
          hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
          port: url.port,
          method: init.method,
          path,
          headers,
          agent: this.#agent,
          timeout: idleTimeoutMs,
        },
        (response) => {
          collect(response, init.method === 'HEAD').then(resolve, reject);
        },
      );
      const onAbort = () => request.destroy(Object.assign(new Error('aborted'), { name: 'AbortError' }));
      init.signal.addEventListener('abort', onAbort, { once: true });
      request.on('close', () => init.signal.removeEventListener('abort', onAbort));
      request.on('timeout', () =>
        request.destroy(
          Object.assign(new Error(`no answer for ${idleTimeoutMs / 1000} s`), { code: 'ETIMEDOUT' }),
        ),
      );
      request.on('error', reject);
      request.end(
        body === undefined ? undefined : Buffer.from(body.buffer, body.byteOffset, body.byteLength),
      );
    });
  }

  close(): void {
    this.#pool?.close();
    this.#agent?.destroy();
  }
}

/** Reads a whole answer (no body after HEAD; one buffer of the announced length when there is one). */
async function collect(response: IncomingMessage, head: boolean): Promise<S3Answer> {
  const announced = Number(response.headers['content-length'] ?? Number.NaN);
  const sized = Number.isSafeInteger(announced) && announced >= 0;
  const body = await readBody(response, head ? 0 : sized ? announced : undefined);
  return { status: response.statusCode ?? 0, headers: response.headers, body };
}
