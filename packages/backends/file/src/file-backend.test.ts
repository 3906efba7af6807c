import { execFile, spawn } from 'node:child_process';
import { pbkdf2 } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { stat, statfs, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BackendErrorCode, backendCapabilities } from '@tcmu/backend';
import { patternBytes, runBackendConformance } from '@tcmu/backend/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { type FileBackend, openFileBackend } from './file-backend';

const run = promisify(execFile);
const folder = mkdtempSync(join(tmpdir(), 'tcmu-file-backend-'));
afterAll(() => rmSync(folder, { recursive: true, force: true }));
let counter = 0;
const freshPath = () => join(folder, `disk-${counter++}.img`);
const codeOf = (promise: Promise<unknown>) =>
  promise.then(
    async (value) => {
      await (value as FileBackend | undefined)?.close?.();
      return 'resolved';
    },
    (error: { code: string }) => error.code,
  );
const MiB = 1024 * 1024;

runBackendConformance({
  name: 'file',
  open: (size) => openFileBackend({ path: freshPath(), size }),
  reopen: (closed) => openFileBackend({ path: (closed as FileBackend).path }),
});

runBackendConformance({
  name: 'file, hole punching off (zero-write fallback)',
  unmapMayNotDeallocate: true,
  open: (size) => openFileBackend({ path: freshPath(), size, punchHoles: false }),
  reopen: (closed) => openFileBackend({ path: (closed as FileBackend).path, punchHoles: false }),
});

runBackendConformance({
  name: 'file, thread-pool reads only (cachedReads: false)',
  open: (size) => openFileBackend({ path: freshPath(), size, cachedReads: false }),
  reopen: (closed) => openFileBackend({ path: (closed as FileBackend).path, cachedReads: false }),
});

// /dev/shm is tmpfs on Linux: the inline (synchronous) path. Skipped where it is not (says why).
const shm = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/tcmu-file-backend-') : undefined;
afterAll(() => {
  if (shm) rmSync(shm, { recursive: true, force: true });
});
const shmPath = () => join(shm!, `disk-${counter++}.img`);
if (shm) {
  runBackendConformance({
    name: 'file on tmpfs (inline reads on the event loop)',
    open: (size) => openFileBackend({ path: shmPath(), size }),
    reopen: (closed) => openFileBackend({ path: (closed as FileBackend).path }),
  });
} else {
  it.skip('file on tmpfs (skipped: no /dev/shm on this machine)', () => {});
}

describe('file backend: inline I/O on memory file systems', () => {
  it.skipIf(!shm)(
    'is used on tmpfs (unless turned off), never on a disk file system or with O_DIRECT',
    async () => {
      const onTmpfs = await openFileBackend({ path: shmPath(), size: MiB });
      const off = await openFileBackend({ path: shmPath(), size: MiB, inlineIo: false });
      const onDisk = await openFileBackend({ path: freshPath(), size: MiB });
      try {
        expect(onTmpfs.inlineIo).toBe(true);
        expect(off.inlineIo).toBe(false);
        // The suite's temporary folder is on the root file system here (not tmpfs): no inline I/O.
        const diskType = (await statfs(folder)).type;
        expect(onDisk.inlineIo).toBe(diskType === 0x01021994 || diskType === 0x858458f6);
        // A read past a shrunk end is still an error on the inline path, not zeros.
        await onTmpfs.write(0, [patternBytes(3, 8192)]);
        const back = new Uint8Array(8192);
        await onTmpfs.read(0, 8192, [back]);
        expect(Buffer.from(back).equals(Buffer.from(patternBytes(3, 8192)))).toBe(true);
        await truncate(onTmpfs.path, 4096);
        const error = await onTmpfs
          .read(4096, 4096, [new Uint8Array(4096)])
          .catch((e: { code: string }) => e);
        expect((error as { code: string }).code).toBe(BackendErrorCode.Read);
      } finally {
        await Promise.all([onTmpfs.close(), off.close(), onDisk.close()]);
      }
    },
  );
});

describe('file backend: the synchronous fast paths', () => {
  it.skipIf(!shm)(
    'on tmpfs both answer; a range held by compareAndWrite makes tryWriteSync decline, not wait',
    async () => {
      const backend = await openFileBackend({ path: shmPath(), size: MiB });
      try {
        expect(backend.tryWriteSync!(8192, [patternBytes(5, 4096)])).toBe(true);
        const back = new Uint8Array(4096);
        expect(backend.tryReadSync!(8192, 4096, [back])).toBe(true);
        expect(Buffer.from(back).equals(Buffer.from(patternBytes(5, 4096)))).toBe(true);
        const exchange = backend.compareAndWrite!(8192, [patternBytes(5, 4096)], [patternBytes(6, 4096)]);
        expect(backend.tryWriteSync!(8192, [patternBytes(7, 4096)])).toBe(false);
        await exchange;
        await backend.read(8192, 4096, [back]);
        expect(Buffer.from(back).equals(Buffer.from(patternBytes(6, 4096)))).toBe(true);
      } finally {
        await backend.close();
      }
    },
  );

  it('off tmpfs, reads answer from the page cache and writes always go through write', async () => {
    const backend = await openFileBackend({ path: freshPath(), size: MiB, inlineIo: false });
    const direct = await openFileBackend({ path: freshPath(), size: MiB, direct: true }).catch(
      () => undefined,
    );
    try {
      expect(backend.tryWriteSync).toBeUndefined();
      await backend.write(0, [patternBytes(8, 4096)]);
      const back = new Uint8Array(4096);
      // Just written: in the page cache, so the non-blocking read answers (where preadv2 exists).
      if (backend.tryReadSync!(0, 4096, [back]))
        expect(Buffer.from(back).equals(Buffer.from(patternBytes(8, 4096)))).toBe(true);
      if (direct) expect(direct.tryReadSync!(0, 4096, [back])).toBe(false);
    } finally {
      await backend.close();
      await direct?.close();
    }
  });
});

/** Runs `io` while every libuv pool thread derives a key; says which finished first. */
async function raceThePool(io: () => Promise<void>): Promise<string[]> {
  const order: string[] = [];
  // 4 pool threads unless UV_THREADPOOL_SIZE says otherwise.
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const busy = Array.from(
    { length: threads },
    () =>
      new Promise<void>((resolve) =>
        pbkdf2('x', 'salt', 300_000, 64, 'sha512', () => {
          order.push('pool');
          resolve();
        }),
      ),
  );
  await io();
  order.push('io');
  await Promise.all(busy);
  return order;
}

describe('file backend: inline I/O and the thread pool', () => {
  it.skipIf(!shm)('tmpfs reads and writes finish while every pool thread is busy', async () => {
    const backend = await openFileBackend({ path: shmPath(), size: MiB });
    try {
      const back = new Uint8Array(8192);
      const order = await raceThePool(async () => {
        await backend.write(4096, [patternBytes(9, 8192)]);
        await backend.read(4096, 8192, [back]);
      });
      expect(order[0]).toBe('io');
      expect(Buffer.from(back).equals(Buffer.from(patternBytes(9, 8192)))).toBe(true);
    } finally {
      await backend.close();
    }
  });
});

runBackendConformance({
  name: 'file, O_DIRECT',
  open: (size) => openFileBackend({ path: freshPath(), size, direct: true }),
  reopen: (closed) => openFileBackend({ path: (closed as FileBackend).path, direct: true }),
});

describe('file backend: unmap really frees blocks', () => {
  it('stat().blocks and du drop after unmap, and rise again on writes', async () => {
    const path = freshPath();
    const backend = await openFileBackend({ path, size: 64 * MiB });
    try {
      expect((await stat(path)).blocks).toBe(0); // created sparse
      await backend.write(8 * MiB, [patternBytes(1, 16 * MiB)]);
      await backend.flush!();
      const written = (await stat(path)).blocks;
      const duWritten = Number((await run('du', ['-k', path])).stdout.split('\t')[0]);
      expect(written * 512).toBeGreaterThanOrEqual(16 * MiB);
      await backend.unmap!(8 * MiB, 12 * MiB);
      await backend.flush!();
      const unmapped = (await stat(path)).blocks;
      const duUnmapped = Number((await run('du', ['-k', path])).stdout.split('\t')[0]);
      console.log(
        `unmap 12 MiB of 16 MiB written: stat blocks ${written} → ${unmapped} (512 B units), du ${duWritten} KiB → ${duUnmapped} KiB`,
      );
      expect(written - unmapped).toBe((12 * MiB) / 512);
      expect(duWritten - duUnmapped).toBe(12 * 1024);
      expect(backend.unmapMethod).toBe('punch-hole');
      const extents = await backend.getAllocation!(0, backend.size);
      expect(extents).toEqual([
        { offset: 0, length: 20 * MiB, state: 'deallocated' },
        { offset: 20 * MiB, length: 4 * MiB, state: 'mapped' },
        { offset: 24 * MiB, length: 40 * MiB, state: 'deallocated' },
      ]);
      // writeZeroes on a mapped range keeps the file readable as zeros and never allocates more.
      await backend.writeZeroes!(20 * MiB, 4 * MiB);
      const out = new Uint8Array(4 * MiB);
      await backend.read(20 * MiB, out.byteLength, [out]);
      expect(out.every((b) => b === 0)).toBe(true);
      expect((await stat(path)).blocks).toBeLessThanOrEqual(unmapped);
    } finally {
      await backend.close();
    }
  });

  it('the zero-write fallback leaves zeros but keeps blocks (and says so)', async () => {
    const path = freshPath();
    const backend = await openFileBackend({ path, size: 8 * MiB, punchHoles: false });
    try {
      await backend.write(0, [patternBytes(2, 4 * MiB)]);
      await backend.flush!();
      const before = (await stat(path)).blocks;
      await backend.unmap!(0, 4 * MiB);
      const out = new Uint8Array(4 * MiB);
      await backend.read(0, out.byteLength, [out]);
      expect(out.every((b) => b === 0)).toBe(true);
      expect((await stat(path)).blocks).toBe(before);
      expect(backend.unmapMethod).toBe('write-zeros');
    } finally {
      await backend.close();
    }
  });
});

describe('file backend: bad input gets clear errors', () => {
  it('a missing folder, a missing file without size, create: false', async () => {
    expect(await codeOf(openFileBackend({ path: join(folder, 'no', 'such', 'disk.img'), size: MiB }))).toBe(
      BackendErrorCode.NotFound,
    );
    const error = await openFileBackend({ path: join(folder, 'nope', 'disk.img'), size: MiB }).catch(
      (e) => e,
    );
    expect(error.message).toContain('folder');
    expect(await codeOf(openFileBackend({ path: freshPath() }))).toBe(BackendErrorCode.NotFound);
    expect(await codeOf(openFileBackend({ path: freshPath(), size: MiB, create: false }))).toBe(
      BackendErrorCode.NotFound,
    );
    const file = join(folder, 'a-file');
    writeFileSync(file, 'x');
    expect(await codeOf(openFileBackend({ path: join(file, 'disk.img'), size: MiB }))).toBe(
      BackendErrorCode.NotFound,
    );
  });

  it('directories and character devices are refused', async () => {
    const directory = join(folder, 'a-directory');
    mkdirSync(directory);
    const error = await openFileBackend({ path: directory }).catch((e) => e);
    expect(error.code).toBe(BackendErrorCode.Open);
    expect(error.message).toContain('directory');
    expect(await codeOf(openFileBackend({ path: '/dev/null' }))).toBe(BackendErrorCode.Open);
  });

  it('size mismatches: an existing file smaller or larger than asked', async () => {
    const path = freshPath();
    await (await openFileBackend({ path, size: 4 * MiB })).close();
    const smaller = await openFileBackend({ path, size: 8 * MiB }).catch((e) => e);
    expect(smaller.code).toBe(BackendErrorCode.SizeMismatch);
    expect(smaller.message).toContain(`${4 * MiB} bytes`);
    expect(await codeOf(openFileBackend({ path, size: 2 * MiB }))).toBe(BackendErrorCode.SizeMismatch);
    const fitting = await openFileBackend({ path, size: 4 * MiB });
    expect(fitting.size).toBe(4 * MiB);
    await fitting.close();
  });

  it('bad options are invalid arguments; O_DIRECT needs an aligned size', async () => {
    expect(await codeOf(openFileBackend({ path: freshPath(), size: -1 }))).toBe(
      BackendErrorCode.InvalidArgument,
    );
    expect(await codeOf(openFileBackend({ path: freshPath(), size: 1.5 }))).toBe(
      BackendErrorCode.InvalidArgument,
    );
    expect(await codeOf(openFileBackend({ path: '', size: MiB }))).toBe(BackendErrorCode.InvalidArgument);
    expect(await codeOf(openFileBackend({ path: freshPath(), size: MiB, blockSize: 1000 }))).toBe(
      BackendErrorCode.InvalidArgument,
    );
    const path = freshPath();
    expect(await codeOf(openFileBackend({ path, size: 4096 + 512, direct: true }))).toBe(
      BackendErrorCode.InvalidArgument,
    );
    expect(() => statSync(path)).toThrow(); // the half-made file was removed
  });

  it('no permission: an immutable file cannot be opened for writing, even by root', async (context) => {
    const path = freshPath();
    writeFileSync(path, Buffer.alloc(4096));
    try {
      await run('chattr', ['+i', path]);
    } catch {
      return context.skip('chattr +i is not available on this file system');
    }
    try {
      const error = await openFileBackend({ path }).catch((e) => e);
      expect(error.code).toBe(BackendErrorCode.Permission);
      const reader = await openFileBackend({ path, readOnly: true });
      await reader.close();
    } finally {
      await run('chattr', ['-i', path]);
    }
  });

  it('a file shrunk behind its back gives a read error, not zeros', async () => {
    const path = freshPath();
    const backend = await openFileBackend({ path, size: MiB });
    try {
      await truncate(path, 4096);
      const error = await backend.read(MiB - 4096, 4096, [new Uint8Array(4096)]).catch((e) => e);
      expect(error.code).toBe(BackendErrorCode.Read);
    } finally {
      await backend.close();
    }
  });
});

describe('file backend: one server per file', () => {
  it('a second opener in this process is refused until the first closes', async () => {
    const path = freshPath();
    const first = await openFileBackend({ path, size: MiB });
    const error = await openFileBackend({ path }).catch((e) => e);
    expect(error.code).toBe(BackendErrorCode.Locked);
    expect(error.message).toContain('already served');
    await first.close();
    const second = await openFileBackend({ path });
    await second.close();
  });

  it('a lock held by another process refuses us, and dies with that process', async () => {
    const path = freshPath();
    await (await openFileBackend({ path, size: MiB })).close();
    // flock(1) holds the lock in itself and in its `sleep` child: kill the whole process group.
    const holder = spawn('flock', ['--exclusive', path, 'sleep', '60'], { stdio: 'ignore', detached: true });
    try {
      // Wait until the holder really has the lock.
      for (let tries = 0; tries < 200; tries++) {
        if ((await codeOf(openFileBackend({ path }))) === BackendErrorCode.Locked) break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(await codeOf(openFileBackend({ path }))).toBe(BackendErrorCode.Locked);
    } finally {
      const exited = new Promise((resolve) => holder.on('exit', resolve));
      process.kill(-holder.pid!, 'SIGKILL');
      await exited;
    }
    // The kernel drops the lock when the last holder (the sleep child) is reaped: poll briefly.
    let outcome = '';
    for (let tries = 0; tries < 200 && outcome !== 'resolved'; tries++) {
      outcome = await codeOf(openFileBackend({ path }));
      if (outcome !== 'resolved') await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(outcome).toBe('resolved');
  });

  it('read-only openers share the file with each other but not with a writer', async () => {
    const path = freshPath();
    const writer = await openFileBackend({ path, size: MiB });
    await writer.write(0, [Uint8Array.of(1, 2, 3)]);
    expect(await codeOf(openFileBackend({ path, readOnly: true }))).toBe(BackendErrorCode.Locked);
    await writer.close();
    const a = await openFileBackend({ path, readOnly: true });
    const b = await openFileBackend({ path, readOnly: true });
    try {
      expect(await codeOf(openFileBackend({ path }))).toBe(BackendErrorCode.Locked);
      const out = new Uint8Array(3);
      await b.read(0, 3, [out]);
      expect(out).toEqual(Uint8Array.of(1, 2, 3));
      expect(await codeOf(a.write(0, [out]))).toBe(BackendErrorCode.ReadOnly);
      expect(backendCapabilities(a)).toMatchObject({
        readOnly: true,
        persistent: true,
        flush: false,
        unmap: false,
        writeZeroes: false,
        compareAndWrite: false,
        resize: false,
        getAllocation: true,
      });
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('file backend: flush', () => {
  it('concurrent flushes are coalesced and each covers the writes finished before it', async () => {
    const path = freshPath();
    const backend = await openFileBackend({ path, size: 4 * MiB });
    try {
      const rounds = Array.from({ length: 20 }, async (_, i) => {
        await backend.write(i * 4096, [patternBytes(i, 4096)]);
        await backend.flush!();
      });
      await Promise.all(rounds);
      const out = new Uint8Array(20 * 4096);
      await backend.read(0, out.byteLength, [out]);
      for (let i = 0; i < 20; i++)
        expect(Buffer.compare(out.subarray(i * 4096, (i + 1) * 4096), patternBytes(i, 4096))).toBe(0);
    } finally {
      await backend.close();
    }
  });
});

describe('file backend: big sparse files', () => {
  it('creates a 1 TiB file without allocating it, writes at the far end, and reports the layout', async () => {
    const tebibyte = 1024 ** 4;
    const path = freshPath();
    const backend = await openFileBackend({ path, size: tebibyte });
    try {
      const data = patternBytes(3, 8192);
      await backend.write(tebibyte - 8192, [data]);
      const out = new Uint8Array(8192);
      await backend.read(tebibyte - 8192, 8192, [out]);
      expect(Buffer.compare(out, data)).toBe(0);
      expect(await backend.getAllocation!(0, tebibyte)).toEqual([
        { offset: 0, length: tebibyte - 8192, state: 'deallocated' },
        { offset: tebibyte - 8192, length: 8192, state: 'mapped' },
      ]);
      expect((await stat(path)).blocks * 512).toBeLessThanOrEqual(64 * 1024);
      await backend.unmap!(0, tebibyte);
      expect((await stat(path)).blocks).toBe(0);
    } finally {
      await backend.close();
    }
  });
});
