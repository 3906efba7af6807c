// The few libc calls the ring needs, bound once per process through koffi, on first use: importing
// the package (e.g. only for the simulated kernel's types) loads no native code. Pointers are BigInt; every
// call returns -1 and sets errno on failure.
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { RingError, type RingErrorCode } from './errors';

type Koffi = typeof import('koffi');

export interface Libc {
  open(path: string, flags: number, mode: number): number;
  close(fd: number): number;
  read(fd: number, buffer: Uint8Array, count: number): number;
  write(fd: number, buffer: Uint8Array, count: number): number;
  mmap(
    address: bigint | null,
    length: number,
    protection: number,
    flags: number,
    fd: number,
    offset: number,
  ): bigint;
  munmap(address: bigint, length: number): number;
  eventfd(initial: number, flags: number): number;
  memfdCreate(name: string, flags: number): number;
  ftruncate(fd: number, length: number): number;
  dup(fd: number): number;
  poll: {
    (fds: Uint8Array, count: number, timeout: number): number;
    async(
      fds: Uint8Array,
      count: number,
      timeout: number,
      callback: (error: unknown, result: number) => void,
    ): void;
  };
  errno(): number;
  view(address: bigint, length: number): ArrayBuffer;
}

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
export const MAP_FAILED = 0xffffffffffffffffn;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
export const MFD_CLOEXEC = 1;
export const POLLIN = 0x1;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;

let bound: Libc | undefined;

/** The libc bindings (bound on first use). */
export function libc(): Libc {
  if (bound) return bound;
  const koffi = createRequire(import.meta.url)('koffi') as Koffi;
  const lib = koffi.load('libc.so.6');
  const poll = lib.func('int poll(void *fds, unsigned long nfds, int timeout)');
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
    poll,
    errno: () => koffi.errno() as number,
    view: (address, length) => koffi.view(address, length),
  } as Libc;
  return bound;
}

const errnoNames = new Map<number, string>(
  Object.entries(osConstants.errno).map(([name, value]) => [value as number, name]),
);

/** The symbolic name of an errno value, e.g. 16 → 'EBUSY'. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

/** A RingError for a failed system call, with the errno name in message and field. */
export function systemError(code: RingErrorCode, what: string, device?: string): RingError {
  const name = errnoName(libc().errno());
  return new RingError(code, `${what} failed: ${name}${device ? ` (${device})` : ''}`, {
    errno: name,
    ...(device === undefined ? {} : { device }),
  });
}
