import { S3Client } from '@aws-sdk/client-s3';
import { md5 } from './layout.ts';
import {
  batchDeleteError,
  classifyError,
  isNotFound,
  isRangeNotSatisfiable,
  type ListedObject,
  type ObjectStore,
  type PutOptions,
  putError,
  SdkObjectStore,
  type StoredObject,
} from './object-store.ts';
import { decodeXml, type S3Credentials, S3Http } from './s3-http.ts';
import type { S3Location } from './url.ts';

/** `x-amz-meta-*` headers as user metadata (lower-case names without the prefix). */
function metadataOf(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith('x-amz-meta-') && typeof value === 'string') metadata[name.slice(11)] = value;
  }
  return metadata;
}

function etagOf(headers: Record<string, string | string[] | undefined>): { etag?: string } {
  const etag = headers.etag;
  return typeof etag === 'string' ? { etag } : {};
}

/**
 * The ObjectStore over an S3 bucket, each operation one signed request on node:http (`S3Http`).
 * The SDK client built for the location supplies only credentials and region (its provider chain:
 * environment, profiles, SSO, instance roles). PUT bodies travel with Content-MD5, so the server
 * refuses a body damaged on the way (the payload itself is `UNSIGNED-PAYLOAD`: SHA-256 costs eight
 * times MD5 where the CPU has no SHA instructions).
 */
export class HttpObjectStore implements ObjectStore {
  readonly #http: S3Http;
  readonly #client: S3Client;

  constructor(location: S3Location, client: S3Client, maxSockets: number) {
    this.#client = client;
    this.#http = new S3Http({
      ...(location.endpoint === undefined ? {} : { endpoint: location.endpoint }),
      bucket: location.bucket,
      maxSockets,
      region: () => client.config.region(),
      credentials: () => client.config.credentials() as Promise<S3Credentials>,
    });
  }

  async get(key: string, signal: AbortSignal): Promise<StoredObject | null> {
    try {
      const answer = await this.#http.send({ method: 'GET', key, signal });
      return { body: answer.body, metadata: metadataOf(answer.headers), ...etagOf(answer.headers) };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw classifyError('GET', key, error);
    }
  }

  async getRange(key: string, from: number, to: number, signal: AbortSignal): Promise<StoredObject | null> {
    try {
      const answer = await this.#http.send({
        method: 'GET',
        key,
        headers: { range: `bytes=${from}-${to - 1}` },
        signal,
      });
      // A server that ignores Range answers 200 with the whole object.
      const body = answer.status === 206 ? answer.body : answer.body.subarray(from, to);
      return { body, metadata: metadataOf(answer.headers), ...etagOf(answer.headers) };
    } catch (error) {
      if (isNotFound(error)) return null;
      if (isRangeNotSatisfiable(error)) return { body: new Uint8Array(0), metadata: {} };
      throw classifyError('GET', key, error);
    }
  }

  async head(key: string, signal: AbortSignal) {
    try {
      const answer = await this.#http.send({ method: 'HEAD', key, signal });
      return {
        size: Number(answer.headers['content-length'] ?? 0),
        metadata: metadataOf(answer.headers),
        ...etagOf(answer.headers),
      };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw classifyError('HEAD', key, error);
    }
  }

  async put(key: string, body: Uint8Array, options: PutOptions, signal: AbortSignal) {
    const headers: Record<string, string> = {
      'content-md5': options.contentMd5 ?? md5(body).toString('base64'),
      'content-type': options.contentType ?? 'application/octet-stream',
    };
    for (const [name, value] of Object.entries(options.metadata ?? {})) headers[`x-amz-meta-${name}`] = value;
    if (options.createOnly) headers['if-none-match'] = '*';
    // Unquoted: Ceph RGW compares If-Match with its stored ETag, which has no quotes.
    if (options.ifMatch) headers['if-match'] = options.ifMatch.replace(/^"(.*)"$/, '$1');
    try {
      const answer = await this.#http.send({ method: 'PUT', key, headers, body, signal });
      return etagOf(answer.headers);
    } catch (error) {
      throw putError(key, options, error);
    }
  }

  async delete(key: string, signal: AbortSignal): Promise<void> {
    try {
      await this.#http.send({ method: 'DELETE', key, signal });
    } catch (error) {
      if (isNotFound(error)) return;
      throw classifyError('DELETE', key, error);
    }
  }

  async deleteMany(keys: readonly string[], signal: AbortSignal): Promise<void> {
    if (keys.length === 0) return;
    const xmlText = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
    const body = Buffer.from(
      `<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>${keys
        .map((key) => `<Object><Key>${xmlText(key)}</Key></Object>`)
        .join('')}</Delete>`,
    );
    let answer: Buffer;
    try {
      answer = (
        await this.#http.send({
          method: 'POST',
          key: '',
          query: { delete: '' },
          headers: { 'content-md5': md5(body).toString('base64'), 'content-type': 'application/xml' },
          body,
          signal,
        })
      ).body;
    } catch (error) {
      throw classifyError('DELETE (batch)', keys[0]!, error);
    }
    const failure = batchDeleteError(
      [...answer.toString('utf8').matchAll(/<Error>([\s\S]*?)<\/Error>/g)].map((m) => ({
        key: decodeXml(/<Key>([^<]*)<\/Key>/.exec(m[1]!)?.[1] ?? ''),
        code: /<Code>([^<]*)<\/Code>/.exec(m[1]!)?.[1] ?? 'unknown',
      })),
    );
    if (failure) throw failure;
  }

  async listPage(prefix: string, continuation: string | undefined, signal: AbortSignal) {
    let text: string;
    try {
      const answer = await this.#http.send({
        method: 'GET',
        key: '',
        query: {
          'list-type': '2',
          prefix,
          'max-keys': '1000',
          'encoding-type': 'url',
          ...(continuation ? { 'continuation-token': continuation } : {}),
        },
        signal,
      });
      text = answer.body.toString('utf8');
    } catch (error) {
      throw classifyError('LIST', prefix, error);
    }
    // encoding-type=url: keys arrive percent-encoded (`+` for a space, as in a form).
    const urlDecoded = /<EncodingType>url<\/EncodingType>/i.test(text);
    const keyOf = (raw: string) => {
      const xml = decodeXml(raw);
      return urlDecoded ? decodeURIComponent(xml.replace(/\+/g, ' ')) : xml;
    };
    const objects: ListedObject[] = [...text.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)].map((m) => ({
      key: keyOf(/<Key>([^<]*)<\/Key>/.exec(m[1]!)?.[1] ?? ''),
      size: Number(/<Size>(\d+)<\/Size>/.exec(m[1]!)?.[1] ?? 0),
    }));
    const truncated = /<IsTruncated>true<\/IsTruncated>/.test(text);
    const next = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(text)?.[1];
    return { objects, next: truncated && next !== undefined ? decodeXml(next) : undefined };
  }

  close(): void {
    this.#http.close();
    this.#client.destroy();
  }
}

export interface S3StoreOptions {
  /** Maximum sockets to the server (the backend bounds its own parallelism below this). */
  readonly maxSockets: number;
  /** An S3Client to use instead: every request then goes through it (its configuration is the caller's). */
  readonly client?: S3Client;
}

/** The SDK client whose configuration supplies credentials and region: the default provider chain. */
function configClient(location: S3Location): S3Client {
  const region = location.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
  // The SDK version is pinned and supports Node 20: its notice about future SDK releases needing
  // Node 22 tells a user of this package nothing they can act on. An explicit setting wins.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return new S3Client({
    region,
    ...(location.endpoint ? { endpoint: location.endpoint, forcePathStyle: true } : {}),
    maxAttempts: 1,
  });
}

/** The object store for a location: our own requests, or the caller's SDK client when one is given. */
export function openObjectStore(location: S3Location, options: S3StoreOptions): ObjectStore {
  if (options.client !== undefined) return new SdkObjectStore(location.bucket, options.client);
  return new HttpObjectStore(location, configClient(location), options.maxSockets);
}
