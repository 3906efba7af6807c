// The file backend's wrappers over @tcmu/libc for what node:fs lacks: fallocate (hole punching, zero
// ranges), preadv2 with RWF_NOWAIT, lseek (SEEK_DATA/SEEK_HOLE, block device size), flock and the
// BLKSSZGET ioctl. The bindings load on first use (libc()), not on import.
import { BLKSSZGET, Errno, IOV_MAX, libc, RWF_NOWAIT } from '@tcmu/libc';

export { Errno, FallocateMode, FlockOperation, Whence } from '@tcmu/libc';

/** A libc call's outcome: `value` when it succeeded, else `errno` (> 0). */
export type Outcome = { value: number; errno: 0 } | { value: -1; errno: number };

const outcome = (value: number): Outcome =>
  value < 0 ? { value: -1, errno: libc().errno() || Errno.EIO } : { value, errno: 0 };

/** fallocate(2) on the libuv pool (a large punch can take a while). Resolves with 0 or the errno. */
export function fallocate(fd: number, mode: number, offset: number, length: number): Promise<number> {
  const c = libc();
  return new Promise((resolve) => {
    c.fallocate.async(fd, mode, offset, length, (error, result) => {
      if (error) resolve(Errno.EIO);
      else resolve(result < 0 ? c.errno() || Errno.EIO : 0);
    });
  });
}

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
  const c = libc();
  const iov = views.slice(0, IOV_MAX).map((view) => ({ base: view, length: view.byteLength }));
  const result = Number(c.preadv2(fd, iov, iov.length, offset, RWF_NOWAIT));
  return result < 0 ? { bytes: -1, errno: c.errno() || Errno.EIO } : { bytes: result, errno: 0 };
}

/** lseek(2), synchronous (SEEK_DATA/SEEK_HOLE walk extent metadata only). */
export function lseek(fd: number, offset: number, whence: number): Outcome {
  return outcome(Number(libc().lseek(fd, offset, whence)));
}

/** flock(2), synchronous; pass NonBlocking to fail with EAGAIN instead of waiting. Returns 0 or errno. */
export function flock(fd: number, operation: number): number {
  return outcome(libc().flock(fd, operation)).errno;
}

/** A block device's logical sector size (BLKSSZGET), or undefined when the ioctl fails. */
export function logicalSectorSize(fd: number): number | undefined {
  const out = [0];
  const result = libc().ioctlInt(fd, BLKSSZGET, out);
  return result === 0 && out[0]! > 0 ? out[0] : undefined;
}

/** The memory address of a view's first byte (for O_DIRECT alignment checks). */
export function addressOf(view: Uint8Array): bigint {
  return libc().addressOf(view);
}
