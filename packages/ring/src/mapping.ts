import {
  libc,
  MAP_ANONYMOUS,
  MAP_FAILED,
  MAP_FIXED,
  MAP_NORESERVE,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '@tcmu/libc';
import { RingError, systemError } from './errors';

/**
 * A shared mapping of a file descriptor (a uio device, or the simulated kernel's memfd), viewed
 * from JavaScript without copying. Owns the fd: `release()` unmaps and closes exactly once.
 */
export class SharedMapping {
  readonly fd: number;
  readonly size: number;
  readonly buffer: ArrayBuffer;
  readonly description: string;
  #address: bigint;
  #released = false;

  private constructor(fd: number, size: number, address: bigint, description: string) {
    this.fd = fd;
    this.size = size;
    this.#address = address;
    this.description = description;
    this.buffer = libc().view(address, size);
  }

  /** Map `size` bytes of `fd` read-write and shared. On failure closes `fd` and throws TCMU_ERR_RING_IO. */
  static map(fd: number, size: number, description: string): SharedMapping {
    const c = libc();
    const address = c.mmap(null, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (address === MAP_FAILED || address === 0n || address === null) {
      const error = systemError('TCMU_ERR_RING_IO', `mmap of ${size} bytes`, description);
      c.close(fd);
      throw error;
    }
    try {
      return new SharedMapping(fd, size, address, description);
    } catch (cause) {
      c.munmap(address, size);
      c.close(fd);
      throw new RingError('TCMU_ERR_RING_IO', `cannot view the mapping of ${description}`, { cause });
    }
  }

  get released(): boolean {
    return this.#released;
  }

  /**
   * Unmap and close, once. With `keepAddressable`, the range is instead replaced by private anonymous
   * memory (the device mapping is dropped all the same) so views still held by stray code stay safe.
   */
  release(keepAddressable = false): void {
    if (this.#released) return;
    this.#released = true;
    const c = libc();
    if (keepAddressable) {
      const flags = MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
      const replaced = c.mmap(this.#address, this.size, PROT_READ | PROT_WRITE, flags, -1, 0);
      if (replaced === MAP_FAILED) c.munmap(this.#address, this.size);
    } else {
      c.munmap(this.#address, this.size);
    }
    c.close(this.fd);
  }
}
