// The libc calls tcmu makes, bound through koffi once per process on the first call of libc():
// importing this package loads no native code, so packages built on it install and import where
// koffi or Linux are absent and fail only when they really need a system call, with a coded error.
// Pointers are BigInt; every call returns -1 (or MAP_FAILED) and sets errno on failure (read it with
// errno() right after the call).
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { LibcError } from './errors';

type Koffi = typeof import('koffi');

/** A bound C function: call it synchronously, or with `.async(...args, callback)` on libuv's pool. */
export interface NativeFunction<Args extends unknown[], Result> {
  (...args: Args): Result;
  /** Runs on libuv's threadpool. Keep every buffer argument referenced until the callback runs. */
  async(...args: [...Args, (error: unknown, result: Result) => void]): void;
}

/** One `struct iovec` as koffi takes it for preadv2: a view and its length in bytes. */
export interface IoVector {
  base: Uint8Array;
  length: number;
}

/** The bound libc functions (see each one's man page; lengths and offsets in bytes). */
export interface Libc {
  open: NativeFunction<[path: string, flags: number, mode: number], number>;
  close: NativeFunction<[fd: number], number>;
  read: NativeFunction<[fd: number, buffer: Uint8Array, count: number], number>;
  write: NativeFunction<[fd: number, buffer: Uint8Array, count: number], number>;
  mmap: NativeFunction<
    [address: bigint | null, length: number, protection: number, flags: number, fd: number, offset: number],
    bigint
  >;
  munmap: NativeFunction<[address: bigint, length: number], number>;
  eventfd: NativeFunction<[initial: number, flags: number], number>;
  memfdCreate: NativeFunction<[name: string, flags: number], number>;
  ftruncate: NativeFunction<[fd: number, length: number], number>;
  dup: NativeFunction<[fd: number], number>;
  /** `fds` holds `count` struct pollfd (8 bytes each: int fd, short events, short revents). */
  poll: NativeFunction<[fds: Uint8Array, count: number, timeout: number], number>;
  preadv2: NativeFunction<
    [fd: number, vectors: IoVector[], count: number, offset: number, flags: number],
    number | bigint
  >;
  fallocate: NativeFunction<[fd: number, mode: number, offset: number, length: number], number>;
  lseek: NativeFunction<[fd: number, offset: number, whence: number], number | bigint>;
  flock: NativeFunction<[fd: number, operation: number], number>;
  posixFadvise: NativeFunction<[fd: number, offset: number, length: number, advice: number], number>;
  /** ioctl(fd, request, int *out): `out[0]` receives the int. */
  ioctlInt: NativeFunction<[fd: number, request: number, out: number[]], number>;
  socket: NativeFunction<[domain: number, type: number, protocol: number], number>;
  bind: NativeFunction<[fd: number, address: Uint8Array, length: number], number>;
  send: NativeFunction<[fd: number, buffer: Uint8Array, length: number, flags: number], number>;
  sendto: NativeFunction<
    [
      fd: number,
      buffer: Uint8Array,
      length: number,
      flags: number,
      address: Uint8Array,
      addressLength: number,
    ],
    number
  >;
  recv: NativeFunction<[fd: number, buffer: Uint8Array, length: number, flags: number], number>;
  setsockopt: NativeFunction<
    [fd: number, level: number, name: number, value: Uint8Array, length: number],
    number
  >;
  /** errno as left by the last call made through these bindings on this thread. */
  errno(): number;
  /** A plain ArrayBuffer over `length` bytes of memory at `address` (e.g. an mmap), no copy. */
  view(address: bigint, length: number): ArrayBuffer;
  /** The memory address of a view's first byte (e.g. for O_DIRECT alignment checks). */
  addressOf(view: Uint8Array): bigint;
}

let bound: Libc | undefined;

export function loadKoffi(): Koffi {
  try {
    return createRequire(import.meta.url)('koffi') as Koffi;
  } catch (error) {
    throw new LibcError(
      'TCMU_ERR_LIBC_NO_KOFFI',
      `koffi cannot be loaded (an optional dependency of @tcmu/libc, needed for system calls; install it, on Linux): ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/**
 * The libc bindings, bound on the first call and shared by every caller in the process. Throws
 * `TCMU_ERR_LIBC_NO_KOFFI` when koffi is absent and `TCMU_ERR_LIBC_NO_LIBC` when libc.so.6 (glibc
 * Linux) or one of its functions is.
 */
export function libc(): Libc {
  if (bound) return bound;
  const koffi = loadKoffi();
  try {
    const lib = koffi.load('libc.so.6');
    // Anonymous struct: koffi type names are process-global, and two copies of this package may load.
    const iovec = koffi.struct({ base: 'void *', length: 'size_t' });
    bound = {
      open: lib.func('int open(const char *path, int flags, uint32_t mode)'),
      close: lib.func('int close(int fd)'),
      read: lib.func('long read(int fd, void *buf, size_t count)'),
      write: lib.func('long write(int fd, const void *buf, size_t count)'),
      mmap: lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
      munmap: lib.func('int munmap(void *addr, size_t length)'),
      eventfd: lib.func('int eventfd(unsigned int initval, int flags)'),
      memfdCreate: lib.func('int memfd_create(const char *name, unsigned int flags)'),
      ftruncate: lib.func('int ftruncate(int fd, int64_t length)'),
      dup: lib.func('int dup(int fd)'),
      poll: lib.func('int poll(void *fds, unsigned long nfds, int timeout)'),
      preadv2: lib.func('preadv2', 'int64_t', ['int', koffi.pointer(iovec), 'int', 'int64_t', 'int']),
      fallocate: lib.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)'),
      lseek: lib.func('int64_t lseek(int fd, int64_t offset, int whence)'),
      flock: lib.func('int flock(int fd, int operation)'),
      posixFadvise: lib.func('int posix_fadvise(int fd, int64_t offset, int64_t len, int advice)'),
      ioctlInt: lib.func('ioctl', 'int', ['int', 'unsigned long', '_Out_ int *']),
      socket: lib.func('int socket(int domain, int type, int protocol)'),
      bind: lib.func('int bind(int fd, const void *addr, uint32_t len)'),
      send: lib.func('long send(int fd, const void *buf, size_t len, int flags)'),
      sendto: lib.func(
        'long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)',
      ),
      recv: lib.func('long recv(int fd, void *buf, size_t len, int flags)'),
      setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)'),
      errno: () => koffi.errno() as number,
      view: (address: bigint, length: number) => koffi.view(address, length),
      addressOf: (view: Uint8Array) => koffi.address(view) as bigint,
    } as unknown as Libc;
  } catch (error) {
    throw new LibcError(
      'TCMU_ERR_LIBC_NO_LIBC',
      `libc.so.6 cannot be bound through koffi (tcmu needs glibc Linux): ${(error as Error).message}`,
      { cause: error },
    );
  }
  return bound;
}

const errnoNames = new Map<number, string>(
  Object.entries(osConstants.errno).map(([name, value]) => [value as number, name]),
);

/** The symbolic name of an errno value, e.g. 16 → 'EBUSY' (`errno 1234` when unknown). */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}
