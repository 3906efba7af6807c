import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { libc, POSIX_FADV_DONTNEED } from '@tcmu/libc';
import { afterAll, expect, it } from 'vitest';
import { openFileBackend } from './file-backend';
import { Errno, readCached } from './native';

const folder = mkdtempSync(join(tmpdir(), 'tcmu-native-'));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

it('readCached serves page-cache hits and answers EAGAIN for evicted pages; the backend reads both right', async () => {
  const path = join(folder, 'evict.img');
  const data = new Uint8Array(1024 * 1024).map((_, i) => (i * 7) & 0xff);
  const handle = await open(path, 'w+');
  await handle.write(data, 0, data.byteLength, 0);
  const hit = new Uint8Array(4096);
  const cached = readCached(handle.fd, [hit.subarray(0, 100), hit.subarray(100)], 8192);
  expect(cached).toEqual({ bytes: 4096, errno: 0 });
  expect(hit).toEqual(data.subarray(8192, 8192 + 4096));

  // Write back and drop the pages, then a no-wait read must refuse instead of blocking.
  await handle.sync();
  expect(libc().posixFadvise(handle.fd, 0, 0, POSIX_FADV_DONTNEED)).toBe(0);
  const miss = readCached(handle.fd, [new Uint8Array(4096)], 512 * 1024);
  await handle.close();
  expect(miss.errno === Errno.EAGAIN || miss.bytes === 4096).toBe(true);
  if (miss.errno !== Errno.EAGAIN)
    console.log('the page stayed cached despite DONTNEED; EAGAIN path not observed');

  const backend = await openFileBackend({ path });
  try {
    const out = new Uint8Array(64 * 1024);
    await backend.read(480 * 1024, out.byteLength, [out]);
    expect(Buffer.compare(out, data.subarray(480 * 1024, 544 * 1024))).toBe(0);
  } finally {
    await backend.close();
  }
});
