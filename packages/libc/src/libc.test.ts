import { describe, expect, it } from 'vitest';
import {
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  Errno,
  errnoName,
  isLibcError,
  LibcError,
  libc,
  MAP_FAILED,
  MAP_SHARED,
  MFD_CLOEXEC,
  POLLIN,
  PROT_READ,
  PROT_WRITE,
} from './index';

// koffi is a dev-installed optional dependency here and the host is glibc Linux: the bindings load.
// The absent-koffi path (TCMU_ERR_LIBC_NO_KOFFI) is exercised by the published test's portable install.
describe('@tcmu/libc', () => {
  it('binds once per process', () => {
    expect(libc()).toBe(libc());
  });

  it('reports errno after a failed call, and names it', () => {
    const c = libc();
    expect(c.close(-1)).toBe(-1);
    expect(c.errno()).toBe(Errno.EBADF);
    expect(errnoName(c.errno())).toBe('EBADF');
    expect(errnoName(999_999)).toBe('errno 999999');
  });

  it('memfd + ftruncate + mmap + view share memory with write/read through the fd', () => {
    const c = libc();
    const fd = c.memfdCreate('tcmu-libc-test', MFD_CLOEXEC);
    expect(fd).toBeGreaterThanOrEqual(0);
    try {
      expect(c.ftruncate(fd, 4096)).toBe(0);
      const address = c.mmap(null, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      expect(address).not.toBe(MAP_FAILED);
      const bytes = new Uint8Array(c.view(address, 4096));
      bytes[10] = 42;
      const back = new Uint8Array(16);
      expect(Number(c.preadv2(fd, [{ base: back, length: 16 }], 1, 0, 0))).toBe(16);
      expect(back[10]).toBe(42);
      expect(c.munmap(address, 4096)).toBe(0);
    } finally {
      c.close(fd);
    }
  });

  it('eventfd wakes poll, synchronously and on the threadpool', async () => {
    const c = libc();
    const fd = c.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    expect(fd).toBeGreaterThanOrEqual(0);
    try {
      const pollfd = new Uint8Array(8);
      const view = new DataView(pollfd.buffer);
      view.setInt32(0, fd, true);
      view.setInt16(4, POLLIN, true);
      expect(c.poll(pollfd, 1, 0)).toBe(0); // nothing written yet
      const one = new Uint8Array(8);
      new DataView(one.buffer).setBigUint64(0, 1n, true);
      expect(c.write(fd, one, 8)).toBe(8);
      const ready = await new Promise<number>((resolve, reject) =>
        c.poll.async(pollfd, 1, 1000, (error, result) => (error ? reject(error) : resolve(result))),
      );
      expect(ready).toBe(1);
      expect(view.getInt16(6, true) & POLLIN).toBe(POLLIN);
    } finally {
      c.close(fd);
    }
  });

  it('LibcError is matched by code', () => {
    const error = new LibcError('TCMU_ERR_LIBC_NO_KOFFI', 'no koffi');
    expect(isLibcError(error)).toBe(true);
    expect(isLibcError(error, 'TCMU_ERR_LIBC_NO_LIBC')).toBe(false);
    expect(isLibcError(Object.assign(new Error('copy'), { code: 'TCMU_ERR_LIBC_NO_LIBC' }))).toBe(true);
    expect(isLibcError(new Error('other'))).toBe(false);
  });
});
