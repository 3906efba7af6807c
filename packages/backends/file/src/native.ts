// The few libc calls node:fs lacks, through koffi: fallocate (hole punching, zero ranges), lseek
// (SEEK_DATA/SEEK_HOLE, block device size), flock, and the BLKSSZGET ioctl. Loaded on first use.
import koffi from 'koffi';

export const FallocateMode = { KeepSize: 0x01, PunchHole: 0x02, ZeroRange: 0x10 } as const;
export const Whence = { End: 2, Data: 3, Hole: 4 } as const;
export const FlockOperation = { Shared: 1, Exclusive: 2, NonBlocking: 4, Unlock: 8 } as const;
const BLKSSZGET = 0x1268;

type Callback = (error: unknown, result: number) => void;
interface AsyncFunction {
  (...args: unknown[]): number;
  async(...args: unknown[]): void;
}

interface Libc {
  preadv2: AsyncFunction;
  fallocate: AsyncFunction;
  lseek: AsyncFunction;
  flock: AsyncFunction;
  ioctlInt: AsyncFunction;
}

let libc: Libc | undefined;

function load(): Libc {
  if (libc) return libc;
  const lib = koffi.load('libc.so.6');
  // Anonymous struct: koffi type names are process-global, and two copies of this package may load.
  const iovec = koffi.struct({ base: 'void *', length: 'size_t' });
  libc = {
    preadv2: lib.func('preadv2', 'int64_t', [
      'int',
      koffi.pointer(iovec),
      'int',
      'int64_t',
      'int',
    ]) as unknown as AsyncFunction,
    fallocate: lib.func(
      'int fallocate(int fd, int mode, int64_t offset, int64_t len)',
    ) as unknown as AsyncFunction,
    lseek: lib.func('int64_t lseek(int fd, int64_t offset, int whence)') as unknown as AsyncFunction,
    flock: lib.func('int flock(int fd, int operation)') as unknown as AsyncFunction,
    ioctlInt: lib.func('ioctl', 'int', ['int', 'unsigned long', '_Out_ int *']) as unknown as AsyncFunction,
  };
  return libc;
}

/** errno values used here (Linux). */
export const Errno = {
  EBADF: 9,
  EAGAIN: 11,
  EINVAL: 22,
  ENOSPC: 28,
  ENXIO: 6,
  EOPNOTSUPP: 95,
  ENOSYS: 38,
  ENOTTY: 25,
  EDQUOT: 122,
  EIO: 5,
  EROFS: 30,
} as const;

/** A libc call's outcome: `value` when it succeeded, else `errno` (> 0). */
export type Outcome = { value: number; errno: 0 } | { value: -1; errno: number };

const outcome = (value: number): Outcome =>
  value < 0 ? { value: -1, errno: koffi.errno() || Errno.EIO } : { value, errno: 0 };

/** fallocate(2) on the libuv pool (a large punch can take a while). Resolves with 0 or the errno. */
export function fallocate(fd: number, mode: number, offset: number, length: number): Promise<number> {
  const { fallocate } = load();
  return new Promise((resolve) => {
    (fallocate.async as (...args: unknown[]) => void)(fd, mode, offset, length, ((error, result) => {
      if (error) resolve(Errno.EIO);
      else resolve(result < 0 ? koffi.errno() || Errno.EIO : 0);
    }) satisfies Callback);
  });
}

const RWF_NOWAIT = 0x08;
const IOV_MAX = 1024;

/**
 * Reads what the page cache already holds, synchronously and without ever waiting for the disk
 * (preadv2 with RWF_NOWAIT). Returns `{ bytes }` (possibly fewer than asked, 0 at end of file) or
 * `{ errno }`: EAGAIN when the data is not cached (take the slow path), anything else when the file
 * refuses RWF_NOWAIT altogether. A cached read costs one system call on the event loop instead of a
 * round trip through libuv's 4-thread pool.
 */
export function readCached(
  fd: number,
  views: readonly Uint8Array[],
  offset: number,
): { bytes: number; errno: 0 } | { bytes: -1; errno: number } {
  const iov = views.slice(0, IOV_MAX).map((view) => ({ base: view, length: view.byteLength }));
  const result = Number(load().preadv2(fd, iov, iov.length, offset, RWF_NOWAIT));
  return result < 0 ? { bytes: -1, errno: koffi.errno() || Errno.EIO } : { bytes: result, errno: 0 };
}

/** lseek(2), synchronous (SEEK_DATA/SEEK_HOLE walk extent metadata only). */
export function lseek(fd: number, offset: number, whence: number): Outcome {
  return outcome(Number(load().lseek(fd, offset, whence)));
}

/** flock(2), synchronous; pass NonBlocking to fail with EAGAIN instead of waiting. Returns 0 or errno. */
export function flock(fd: number, operation: number): number {
  return outcome(load().flock(fd, operation)).errno;
}

/** A block device's logical sector size (BLKSSZGET), or undefined when the ioctl fails. */
export function logicalSectorSize(fd: number): number | undefined {
  const out = [0];
  const result = load().ioctlInt(fd, BLKSSZGET, out);
  return result === 0 && out[0]! > 0 ? out[0] : undefined;
}

/** The memory address of a view's first byte (for O_DIRECT alignment checks). */
export function addressOf(view: Uint8Array): bigint {
  return koffi.address(view);
}
