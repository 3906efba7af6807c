import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChunkCodec, chunkAad, loadKey } from './chunk-codec.ts';

const chunkSize = 64 * 1024;
const key = Buffer.alloc(32, 7);
const text = Buffer.alloc(chunkSize, 'tcmu block data ');
const noise = randomBytes(chunkSize); // incompressible

async function failure(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
}

describe('chunk codec', () => {
  it('without features stores the bytes as they are (format 1)', async () => {
    const codec = new ChunkCodec({ compression: 'none' });
    expect(codec.active).toBe(false);
    expect(await codec.encode(text, 'x')).toBe(text);
    expect(await failure(codec.decode(text.subarray(1), 'x', chunkSize, 'c'))).toBe('TCMU_ERR_BACKEND_READ');
  });

  it('deflates what shrinks and stores the rest raw', async () => {
    const codec = new ChunkCodec({ compression: 'deflate' });
    const small = await codec.encode(text, 'a');
    expect(small.byteLength).toBeLessThan(chunkSize / 10);
    expect(small[0]).toBe(1);
    const raw = await codec.encode(noise, 'a');
    expect(raw.byteLength).toBe(chunkSize + 1);
    expect(raw[0]).toBe(0);
    expect(Buffer.from(await codec.decode(small, 'a', chunkSize, 'c')).equals(text)).toBe(true);
    expect(Buffer.from(await codec.decode(raw, 'a', chunkSize, 'c')).equals(noise)).toBe(true);
  });

  it('encrypts with a fresh nonce, authenticates bytes and the chunk identity', async () => {
    const codec = new ChunkCodec({ compression: 'deflate', key });
    const aad = chunkAad('vol', 3, 0);
    const one = await codec.encode(text, aad);
    const two = await codec.encode(text, aad);
    expect(Buffer.from(one).equals(Buffer.from(two))).toBe(false);
    expect(Buffer.from(one).includes(Buffer.from('tcmu block data'))).toBe(false);
    expect(Buffer.from(await codec.decode(one, aad, chunkSize, 'c')).equals(text)).toBe(true);
    const damaged = Buffer.from(one);
    damaged[20] = (damaged[20] ?? 0) ^ 1;
    expect(await failure(codec.decode(damaged, aad, chunkSize, 'c'))).toBe('TCMU_ERR_BACKEND_READ');
    for (const other of [chunkAad('vol', 4, 0), chunkAad('vol', 3, 1), chunkAad('other', 3, 0)]) {
      expect(await failure(codec.decode(one, other, chunkSize, 'c'))).toBe('TCMU_ERR_BACKEND_READ');
    }
    const wrong = new ChunkCodec({ compression: 'deflate', key: Buffer.alloc(32, 8) });
    expect(await failure(wrong.decode(one, aad, chunkSize, 'c'))).toBe('TCMU_ERR_BACKEND_READ');
  });

  it('checks the key against the stored key check', () => {
    const info = new ChunkCodec({ compression: 'none', key }).makeEncryptionInfo();
    expect(new ChunkCodec({ compression: 'none', key }).checkKey(info)).toBe(true);
    expect(new ChunkCodec({ compression: 'none', key: Buffer.alloc(32, 1) }).checkKey(info)).toBe(false);
  });

  it('loads keys from a file (raw, hex, base64) or a named variable, never echoing them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tcmu-key-'));
    writeFileSync(join(dir, 'raw'), key);
    writeFileSync(join(dir, 'hex'), `${key.toString('hex')}\n`);
    writeFileSync(join(dir, 'b64'), key.toString('base64'));
    writeFileSync(join(dir, 'bad'), 'secret-but-short');
    for (const name of ['raw', 'hex', 'b64'])
      expect(loadKey({ keyFile: join(dir, name) })?.equals(key)).toBe(true);
    process.env.TCMU_TEST_KEY = key.toString('hex');
    expect(loadKey({ keyEnv: 'TCMU_TEST_KEY' })?.equals(key)).toBe(true);
    delete process.env.TCMU_TEST_KEY;
    expect(() => loadKey({ keyEnv: 'TCMU_TEST_KEY' })).toThrow(/TCMU_TEST_KEY.*not set/);
    let message = '';
    try {
      loadKey({ keyFile: join(dir, 'bad') });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/does not hold a 256-bit key/);
    expect(message).not.toContain('secret-but-short');
    expect(loadKey({})).toBeUndefined();
  });
});
