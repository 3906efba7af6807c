// Linux (x86-64 and arm64 share these) constants for the calls in ./libc.ts.

export const O_RDWR = 0o2;
export const O_CLOEXEC = 0o2000000;
export const O_NONBLOCK = 0o4000;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const MAP_PRIVATE = 2;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
/** What mmap returns on failure, as koffi gives pointers: a BigInt, not null. */
export const MAP_FAILED = 0xffffffffffffffffn;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
export const MFD_CLOEXEC = 1;
export const POLLIN = 0x1;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;
/** preadv2 flag: fail with EAGAIN instead of waiting for the disk. */
export const RWF_NOWAIT = 0x08;
/** At most this many iovecs per preadv2 call. */
export const IOV_MAX = 1024;
/** ioctl: a block device's logical sector size (int). */
export const BLKSSZGET = 0x1268;
export const FallocateMode = { KeepSize: 0x01, PunchHole: 0x02, ZeroRange: 0x10 } as const;
export const Whence = { End: 2, Data: 3, Hole: 4 } as const;
export const FlockOperation = { Shared: 1, Exclusive: 2, NonBlocking: 4, Unlock: 8 } as const;
export const AF_UNIX = 1;
export const AF_NETLINK = 16;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const MSG_DONTWAIT = 0x40;
export const POSIX_FADV_DONTNEED = 4;

/** errno values tcmu tests for (Linux). */
export const Errno = {
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  EAGAIN: 11,
  EINVAL: 22,
  ENOTTY: 25,
  ENOSPC: 28,
  EROFS: 30,
  ENOSYS: 38,
  EOPNOTSUPP: 95,
  EDQUOT: 122,
} as const;
