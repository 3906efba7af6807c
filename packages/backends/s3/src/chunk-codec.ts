import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { deflateRaw, inflateRaw } from 'node:zlib';
import { BackendError, BackendErrorCode } from '@tcmu/backend';
import type { CompressionName, EncryptionInfo } from './volume-features.ts';

const deflate = promisify(deflateRaw);
const inflate = promisify(inflateRaw);

/**
 * How chunk bytes become object bodies, per volume (format 2; format 1 stores the bytes as they are).
 *
 * Encoded form: one flags byte (bit 0: the rest is raw deflate) then the payload. Compression is
 * skipped for a chunk whose deflated form is not smaller. With encryption the body is
 * `nonce (12) ‖ AES-256-GCM(encoded) ‖ tag (16)`, a fresh random nonce per write, and the
 * authenticated data binds the volume id, chunk number and generation: a chunk copied to another
 * key, another volume or another generation fails authentication, as does any changed byte.
 */
export interface ChunkCodecOptions {
  readonly compression: CompressionName;
  /** 32-byte AES-256 key; absent: no encryption. */
  readonly key?: Uint8Array;
}

const flagDeflated = 1;
const nonceLength = 12;
const tagLength = 16;
const keyCheckText = Buffer.from('tcmu-s3-volume key check v1');

export class ChunkCodec {
  readonly compression: CompressionName;
  readonly #key: Buffer | undefined;
  /** True when bodies are not the plain chunk bytes. */
  readonly active: boolean;

  constructor(options: ChunkCodecOptions) {
    this.compression = options.compression;
    if (options.key !== undefined && options.key.byteLength !== 32) {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        `an AES-256 key has 32 bytes, not ${options.key.byteLength}`,
      );
    }
    this.#key = options.key === undefined ? undefined : Buffer.from(options.key);
    this.active = this.compression !== 'none' || this.#key !== undefined;
  }

  get encrypted(): boolean {
    return this.#key !== undefined;
  }

  /** The object body for chunk bytes `data`. */
  async encode(data: Uint8Array, aad: string): Promise<Uint8Array> {
    if (!this.active) return data;
    let flags = 0;
    let payload: Uint8Array = data;
    if (this.compression === 'deflate') {
      const compressed = await deflate(data);
      if (compressed.byteLength + 1 < data.byteLength) {
        payload = compressed;
        flags |= flagDeflated;
      }
    }
    const encoded = Buffer.concat([Buffer.from([flags]), payload]);
    if (!this.#key) return encoded;
    const nonce = randomBytes(nonceLength);
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonce);
    cipher.setAAD(Buffer.from(aad));
    const body = Buffer.concat([nonce, cipher.update(encoded), cipher.final(), cipher.getAuthTag()]);
    return body;
  }

  /**
   * The chunk bytes of an object body. Any damage, a wrong key, a body of another chunk, or a length
   * other than `chunkSize` fails with `TCMU_ERR_BACKEND_READ` (never wrong data).
   */
  async decode(body: Uint8Array, aad: string, chunkSize: number, what: string): Promise<Uint8Array> {
    const fail = (why: string) => new BackendError(BackendErrorCode.Read, `${what}: ${why}`);
    if (!this.active) {
      if (body.byteLength !== chunkSize) throw fail(`has ${body.byteLength} bytes, expected ${chunkSize}`);
      return body;
    }
    let encoded: Buffer;
    if (this.#key) {
      if (body.byteLength < nonceLength + tagLength + 1) throw fail('is too short to be an encrypted chunk');
      const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
      const decipher = createDecipheriv('aes-256-gcm', this.#key, b.subarray(0, nonceLength));
      decipher.setAAD(Buffer.from(aad));
      decipher.setAuthTag(b.subarray(b.length - tagLength));
      try {
        encoded = Buffer.concat([
          decipher.update(b.subarray(nonceLength, b.length - tagLength)),
          decipher.final(),
        ]);
      } catch {
        throw fail('failed authentication (damaged, swapped with another chunk, or another key)');
      }
    } else {
      encoded = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    }
    if (encoded.length < 1) throw fail('is empty');
    const flags = encoded[0]!;
    let data: Uint8Array = encoded.subarray(1);
    if (flags & ~flagDeflated) throw fail(`has unknown flags ${flags}`);
    if (flags & flagDeflated) {
      try {
        data = await inflate(data, { maxOutputLength: chunkSize });
      } catch (error) {
        throw fail(`does not inflate: ${(error as Error).message}`);
      }
    }
    if (data.byteLength !== chunkSize) throw fail(`holds ${data.byteLength} bytes, expected ${chunkSize}`);
    // A copy that owns its memory: the cache keeps and modifies it.
    return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : new Uint8Array(data);
  }

  /** The key check stored in the description of a new encrypted volume (a clone copies it: same key). */
  makeEncryptionInfo(): EncryptionInfo {
    if (!this.#key) throw new Error('makeEncryptionInfo without a key');
    const nonce = randomBytes(nonceLength);
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonce);
    cipher.setAAD(Buffer.from('tcmu-key-check'));
    const body = Buffer.concat([nonce, cipher.update(keyCheckText), cipher.final(), cipher.getAuthTag()]);
    return { algorithm: 'aes-256-gcm', keyCheck: body.toString('base64') };
  }

  /** Whether this codec's key is the one the volume was created with. */
  checkKey(info: EncryptionInfo): boolean {
    if (!this.#key) return false;
    const b = Buffer.from(info.keyCheck, 'base64');
    if (b.length < nonceLength + tagLength) return false;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, b.subarray(0, nonceLength));
      decipher.setAAD(Buffer.from('tcmu-key-check'));
      decipher.setAuthTag(b.subarray(b.length - tagLength));
      const text = Buffer.concat([
        decipher.update(b.subarray(nonceLength, b.length - tagLength)),
        decipher.final(),
      ]);
      return text.equals(keyCheckText);
    } catch {
      return false;
    }
  }
}

/** Authenticated data of one chunk object. */
export function chunkAad(volumeId: string, index: number, generation: number): string {
  return `tcmu-chunk:${volumeId}:${index}:${generation}`;
}

/** Where an encryption key comes from: a file, or an environment variable (never the key itself). */
export interface KeySource {
  /** A file holding the key: 32 raw bytes, or 64 hex digits, or base64 of 32 bytes. */
  readonly keyFile?: string;
  /** The NAME of an environment variable holding the key as 64 hex digits or base64. */
  readonly keyEnv?: string;
}

/** Parses key text or bytes: 32 raw bytes, 64 hex digits, or base64 of 32 bytes. */
export function parseKey(raw: Uint8Array, where: string): Buffer {
  const bytes = Buffer.from(raw);
  const text = bytes.toString('latin1').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/]{43}=?$/.test(text)) {
    const decoded = Buffer.from(text, 'base64');
    if (decoded.length === 32) return decoded;
  }
  if (bytes.length === 32) return bytes;
  throw new BackendError(
    BackendErrorCode.InvalidArgument,
    `${where} does not hold a 256-bit key (32 raw bytes, 64 hex digits or base64); make one with: head -c 32 /dev/urandom > key`,
  );
}

/** Loads the key a source names; undefined when the source names none. The key is never in a message. */
export function loadKey(source: KeySource): Buffer | undefined {
  if (source.keyFile !== undefined && source.keyEnv !== undefined) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      'give the key file or the key variable, not both',
    );
  }
  if (source.keyFile !== undefined) {
    let raw: Buffer;
    try {
      raw = readFileSync(source.keyFile);
    } catch (error) {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        `cannot read the key file ${source.keyFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
    }
    return parseKey(raw, `the key file ${source.keyFile}`);
  }
  if (source.keyEnv !== undefined) {
    const value = process.env[source.keyEnv];
    if (value === undefined || value === '') {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        `the environment variable ${source.keyEnv} (named as the key variable) is not set`,
      );
    }
    return parseKey(Buffer.from(value), `the environment variable ${source.keyEnv}`);
  }
  return undefined;
}
