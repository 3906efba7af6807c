// The ObjectStore contract, checked against the in-memory store (always) and the real RGW (when
// configured): the same expectations pass on both, so the in-memory store is faithful where the
// backend depends on it (ETags, conditional writes, listing order and pages, missing keys).
import { createHash, randomBytes } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { openObjectStore } from './http-object-store.ts';
import { MemoryObjectStore } from './memory-object-store.ts';
import type { ObjectStore } from './object-store.ts';
import { bucket, endpoint, skipReason } from './test-support/environment.ts';

const signal = () => AbortSignal.timeout(30_000);
const kindOf = (promise: Promise<unknown>) =>
  promise.then(
    () => 'ok',
    (error: { kind?: string }) => error.kind ?? 'no kind',
  );
const md5Etag = (body: Uint8Array) => `"${createHash('md5').update(body).digest('hex')}"`;

function contract(name: string, open: () => ObjectStore) {
  describe(`ObjectStore contract: ${name}`, () => {
    const base = `s3safe-contract/${randomBytes(4).toString('hex')}/`;

    it('puts, gets and heads with MD5 ETags and metadata; a missing key is null', async () => {
      const store = open();
      const body = randomBytes(3000);
      const put = await store.put(`${base}a`, body, { metadata: { 'tcmu-x': 'y' } }, signal());
      expect(put.etag).toBe(md5Etag(body));
      const got = await store.get(`${base}a`, signal());
      expect(Buffer.from(got!.body).equals(body)).toBe(true);
      expect(got!.metadata).toMatchObject({ 'tcmu-x': 'y' });
      expect(got!.etag).toBe(md5Etag(body));
      expect(await store.head(`${base}a`, signal())).toMatchObject({ size: 3000, etag: md5Etag(body) });
      expect(await store.get(`${base}missing`, signal())).toBeNull();
      expect(await store.head(`${base}missing`, signal())).toBeNull();
      await store.delete(`${base}missing`, signal());
      await store.delete(`${base}a`, signal());
      store.close();
    });

    it('reads byte ranges with the metadata; past the end is short or empty; a missing key is null', async () => {
      const store = open();
      const body = randomBytes(3000);
      await store.put(`${base}r`, body, { metadata: { 'tcmu-x': 'y' } }, signal());
      const part = await store.getRange!(`${base}r`, 100, 4196, signal());
      expect(Buffer.from(part!.body).equals(body.subarray(100))).toBe(true);
      expect(part!.metadata).toMatchObject({ 'tcmu-x': 'y' });
      const middle = await store.getRange!(`${base}r`, 1024, 2048, signal());
      expect(Buffer.from(middle!.body).equals(body.subarray(1024, 2048))).toBe(true);
      expect((await store.getRange!(`${base}r`, 5000, 6000, signal()))!.body.byteLength).toBe(0);
      expect(await store.getRange!(`${base}missing`, 0, 10, signal())).toBeNull();
      await store.delete(`${base}r`, signal());
      store.close();
    });

    it('enforces If-None-Match: * and If-Match', async () => {
      const store = open();
      const key = `${base}lease`;
      const first = await store.put(key, Buffer.from('one'), { createOnly: true }, signal());
      expect(await kindOf(store.put(key, Buffer.from('two'), { createOnly: true }, signal()))).toBe(
        'precondition',
      );
      const second = await store.put(key, Buffer.from('two'), { ifMatch: first.etag! }, signal());
      expect(await kindOf(store.put(key, Buffer.from('three'), { ifMatch: first.etag! }, signal()))).toBe(
        'precondition',
      );
      expect(Buffer.from((await store.get(key, signal()))!.body).toString()).toBe('two');
      await store.delete(key, signal());
      expect(await kindOf(store.put(key, Buffer.from('four'), { ifMatch: second.etag! }, signal()))).toBe(
        'precondition',
      );
      expect(await store.get(key, signal())).toBeNull();
      store.close();
    });

    it('refuses a body whose Content-MD5 does not match', async () => {
      const store = open();
      const wrong = createHash('md5').update('other').digest('base64');
      expect(
        await kindOf(store.put(`${base}bad`, Buffer.from('x'), { contentMd5: wrong }, signal())),
      ).not.toBe('ok');
      expect(await store.get(`${base}bad`, signal())).toBeNull();
      store.close();
    });

    it('lists in UTF-8 byte order, page by page, and deletes in batches', async () => {
      const store = open();
      const names = [
        'b',
        'a/1',
        'a/0',
        'a-',
        'A',
        'é',
        'z',
        'a/10',
        '~',
        'a/2',
        'sp ace+plus',
        'amp&lt<',
        'pct%41?x=1#',
      ];
      for (const n of names) await store.put(`${base}list/${n}`, Buffer.from(n), {}, signal());
      const keys: string[] = [];
      let next: string | undefined;
      let pages = 0;
      do {
        const page = await store.listPage(`${base}list/`, next, signal());
        keys.push(...page.objects.map((o) => o.key));
        next = page.next;
        pages++;
      } while (next);
      const expected = names
        .map((n) => `${base}list/${n}`)
        .sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
      expect(keys).toEqual(expected);
      expect(pages).toBeGreaterThanOrEqual(1);
      await store.deleteMany(keys, signal());
      expect((await store.listPage(`${base}list/`, undefined, signal())).objects).toEqual([]);
      store.close();
    });
  });
}

contract(
  'in memory',
  (() => {
    const shared = new MemoryObjectStore({ maxKeys: 3 });
    return () => shared;
  })(),
);

if (endpoint) {
  contract('RGW', () => openObjectStore({ bucket, prefix: '', endpoint }, { maxSockets: 4 }));
  // A caller's own SDK client (`S3BackendOptions.client`): every request goes through the SDK.
  contract('RGW through a given S3Client', () =>
    openObjectStore(
      { bucket, prefix: '', endpoint },
      {
        maxSockets: 4,
        client: new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, maxAttempts: 1 }),
      },
    ),
  );
} else {
  it.skip(`ObjectStore contract: RGW (skipped: ${skipReason})`, () => {});
}

describe('MemoryObjectStore failure injection', () => {
  it('fails exactly the requests asked for, with the kind asked for, changing nothing', async () => {
    const store = new MemoryObjectStore();
    store.failRequests([2], 'slow-down');
    await store.put('k', Buffer.from('1'), {}, signal());
    const failure = await store.put('k', Buffer.from('2'), {}, signal()).catch((e: unknown) => e);
    expect(failure).toMatchObject({ kind: 'transient', retryable: true });
    expect((failure as Error).message).toContain('503');
    expect(Buffer.from((await store.get('k', signal()))!.body).toString()).toBe('1');
    expect(store.injected).toBe(1);
    store.failRequests([1], 'denied');
    expect(await kindOf(store.get('k', signal()))).toBe('denied');
  });

  it('a timeout hangs until the signal fires', async () => {
    const store = new MemoryObjectStore({ fail: () => 'timeout' });
    const controller = new AbortController();
    const pending = store.get('k', controller.signal).catch((e: unknown) => e);
    await new Promise((resolve) => setImmediate(resolve));
    controller.abort(new Error('stop'));
    expect(await pending).toMatchObject({ message: 'stop' });
  });
});
