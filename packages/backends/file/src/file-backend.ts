import { constants, readvSync, type Stats, writevSync } from 'node:fs';
import { type FileHandle, open, stat, statfs, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  type AllocationExtent,
  type Backend,
  BackendError,
  BackendErrorCode,
  checkRange,
  RangeLock,
  scatterCompare,
  scatterCopyFrom,
  scatterCopyTo,
  scatterLength,
  scatterSlice,
} from '@tcmu/backend';
import {
  addressOf,
  Errno,
  FallocateMode,
  FlockOperation,
  fallocate,
  flock,
  logicalSectorSize,
  lseek,
  readCached,
  Whence,
} from './native';

/** Options of {@link openFileBackend}. Sizes in bytes. */
export interface FileBackendOptions {
  /** A regular file or a block device (`/dev/…`). */
  readonly path: string;
  /**
   * Capacity in bytes. Required to create a missing file (created sparse: no blocks allocated). For an
   * existing file or device it must equal the current size when given (else
   * `TCMU_ERR_BACKEND_SIZE_MISMATCH`); omit it to take the current size.
   */
  readonly size?: number;
  /** Create the file when missing (needs `size`). Default true. Devices are never created. */
  readonly create?: boolean;
  /** Open read-only: writes reject `TCMU_ERR_BACKEND_READ_ONLY`, mutating operations are absent, the lock is shared. */
  readonly readOnly?: boolean;
  /**
   * Open with O_DIRECT (bypass the page cache). Every offset, length and the size must then be a
   * multiple of `alignment` (`directAlignment`); buffers need no alignment (unaligned ones are copied
   * through an aligned bounce buffer). Refused with `TCMU_ERR_BACKEND_UNSUPPORTED` where the file
   * system does not support it (e.g. tmpfs).
   */
  readonly direct?: boolean;
  /** O_DIRECT alignment. Default: the device's logical sector size, or 4096 for files. */
  readonly directAlignment?: number;
  /** Preferred logical block size to report. Default: the device's logical sector size, or 512. */
  readonly blockSize?: number;
  /**
   * Deallocate with fallocate(PUNCH_HOLE). Default true. False forces the fallback (writing zeros),
   * the same path taken automatically when the file system or device refuses hole punching.
   */
  readonly punchHoles?: boolean;
  /**
   * Serve reads the page cache already holds synchronously on the event loop (preadv2 RWF_NOWAIT),
   * sending only cache misses to libuv's thread pool. Default true; ignored with O_DIRECT.
   */
  readonly cachedReads?: boolean;
  /**
   * For a file on a memory file system (tmpfs, ramfs), do every read and write synchronously on the
   * event loop: nothing waits for a disk there, and the round trip through libuv's thread pool costs
   * more than the copy. (Linux before 6.6 refuses RWF_NOWAIT on tmpfs, so `cachedReads` cannot help
   * there.) Default true; ignored with O_DIRECT and for other file systems. `inlineIo` on the
   * backend says whether it applies.
   */
  readonly inlineIo?: boolean;
}

/** What {@link openFileBackend} returns: a {@link Backend} plus where it lives. */
export interface FileBackend extends Backend {
  /** The path it was opened with. */
  readonly path: string;
  /** `file` for a regular file, `block-device` for a device node. */
  readonly kind: 'file' | 'block-device';
  /** True when opened with O_DIRECT. */
  readonly direct: boolean;
  /** How `unmap` deallocates right now: `punch-hole`, or `write-zeros` after a refusal (or `punchHoles: false`). */
  readonly unmapMethod: 'punch-hole' | 'write-zeros';
  /** True when reads and writes run synchronously on the event loop (a file on tmpfs or ramfs; option `inlineIo`). */
  readonly inlineIo: boolean;
  /** Always present: waits for in-flight calls, fdatasyncs (unless read-only), closes the descriptor, which drops the lock. */
  close(): Promise<void>;
}

const fail = (code: BackendErrorCode, message: string, cause?: unknown, offset?: number): never => {
  throw new BackendError(code, message, { cause, offset });
};

const isPowerOfTwo = (value: number) => Number.isInteger(value) && value > 0 && (value & (value - 1)) === 0;

/** Maps an errno-style error from an I/O call to the contract's codes. */
function ioError(
  operation: string,
  direction: 'read' | 'write',
  error: unknown,
  offset: number,
): BackendError {
  if (error instanceof BackendError) return error;
  const code = (error as { code?: string }).code;
  const detail = error instanceof Error ? error.message : String(error);
  const message = `${operation} at byte ${offset} failed: ${detail}`;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new BackendError(BackendErrorCode.NoSpace, message, { cause: error, offset });
  if (code === 'EROFS') return new BackendError(BackendErrorCode.ReadOnly, message, { cause: error, offset });
  if (code === 'EBADF') return new BackendError(BackendErrorCode.Closed, message, { cause: error, offset });
  return new BackendError(direction === 'read' ? BackendErrorCode.Read : BackendErrorCode.Write, message, {
    cause: error,
    offset,
  });
}

/** Maps an errno number (from koffi calls) to a Node-style error for {@link ioError}. */
function errnoError(call: string, errno: number): Error {
  const names: Record<number, string> = {
    [Errno.ENOSPC]: 'ENOSPC',
    [Errno.EDQUOT]: 'EDQUOT',
    [Errno.EROFS]: 'EROFS',
    [Errno.EBADF]: 'EBADF',
    [Errno.EIO]: 'EIO',
    [Errno.EINVAL]: 'EINVAL',
  };
  const name = names[errno] ?? `errno ${errno}`;
  return Object.assign(new Error(`${call}: ${name}`), { code: names[errno], errno });
}

/** Turns open-time failures into clear BackendErrors. */
function openError(path: string, error: unknown, direct: boolean): BackendError {
  if (error instanceof BackendError) return error;
  const code = (error as { code?: string }).code;
  switch (code) {
    case 'ENOENT':
      return new BackendError(BackendErrorCode.NotFound, `${path} does not exist`, { cause: error });
    case 'ENOTDIR':
      return new BackendError(BackendErrorCode.NotFound, `a part of ${path} is not a folder`, {
        cause: error,
      });
    case 'EACCES':
    case 'EPERM':
      return new BackendError(
        BackendErrorCode.Permission,
        `no permission to open ${path}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    case 'EROFS':
      return new BackendError(
        BackendErrorCode.ReadOnly,
        `${path} is on a read-only file system: open it with readOnly: true`,
        { cause: error },
      );
    case 'EISDIR':
      return new BackendError(BackendErrorCode.Open, `${path} is a directory, not a file or block device`, {
        cause: error,
      });
    case 'EINVAL':
      if (direct)
        return new BackendError(
          BackendErrorCode.Unsupported,
          `${path}: the file system does not support O_DIRECT`,
          {
            cause: error,
          },
        );
      break;
    case 'ENOSPC':
    case 'EFBIG':
      return new BackendError(
        BackendErrorCode.NoSpace,
        `cannot create ${path} of that size: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
  }
  return new BackendError(
    BackendErrorCode.Open,
    `cannot open ${path}: ${(error as Error).message ?? error}`,
    {
      cause: error,
    },
  );
}

/**
 * Opens a regular file or a block device as a backend. A missing file is created sparse with
 * `size`. An exclusive flock (shared when read-only) is taken on the open file: a second opener,
 * in this or another process, gets `TCMU_ERR_BACKEND_LOCKED`; the kernel drops the lock when the
 * file is closed or the process dies. Steps: validate the options, open (or create) the file, lock
 * it, measure it; a failure after the open closes the file (and removes it when this call made it).
 */
export async function openFileBackend(options: FileBackendOptions): Promise<FileBackend> {
  validateOptions(options);
  const file = await openOrCreate(options);
  try {
    await lockFile(file);
    const layout = await measure(file);
    return new FileStore(storeSettings(file, layout)).facade();
  } catch (error) {
    await file.undo();
    throw openError(options.path, error, file.direct);
  }
}

/** Refuses bad options before anything is touched. */
function validateOptions(options: FileBackendOptions): void {
  if (typeof options.path !== 'string' || options.path.length === 0)
    fail(BackendErrorCode.InvalidArgument, 'path must be a non-empty string');
  if (options.size !== undefined && (!Number.isSafeInteger(options.size) || options.size <= 0)) {
    fail(BackendErrorCode.InvalidArgument, `size ${options.size} must be a positive integer number of bytes`);
  }
  for (const [name, value] of [
    ['blockSize', options.blockSize],
    ['directAlignment', options.directAlignment],
  ] as const) {
    if (value !== undefined && (!isPowerOfTwo(value) || value < 512)) {
      fail(BackendErrorCode.InvalidArgument, `${name} ${value} must be a power of two of at least 512`);
    }
  }
}

/** A file {@link openOrCreate} opened, with the undo of that step. */
interface OpenedFile {
  readonly options: FileBackendOptions;
  readonly path: string;
  readonly handle: FileHandle;
  readonly readOnly: boolean;
  readonly direct: boolean;
  /** This call created the file (it then has to be sized, and is removed again on failure). */
  readonly created: boolean;
  /** It was a block device when looked at before opening. */
  readonly wasBlockDevice: boolean;
  /** Closes the descriptor, and removes the file when this call created it. Never throws. */
  undo(): Promise<void>;
}

/** Opens the file or device at `options.path`, or creates a missing file ({@link createFile}). */
async function openOrCreate(options: FileBackendOptions): Promise<OpenedFile> {
  const { path } = options;
  const readOnly = options.readOnly === true;
  const direct = options.direct === true;
  let info: Stats | undefined;
  try {
    info = await stat(path);
  } catch (error) {
    if ((error as { code?: string }).code !== 'ENOENT') throw openError(path, error, direct);
  }
  const directFlag = direct ? constants.O_DIRECT : 0;
  let handle: FileHandle;
  if (!info) {
    handle = await createFile(options, directFlag);
  } else {
    if (info.isDirectory()) fail(BackendErrorCode.Open, `${path} is a directory, not a file or block device`);
    if (!info.isFile() && !info.isBlockDevice()) {
      fail(BackendErrorCode.Open, `${path} is neither a regular file nor a block device`);
    }
    try {
      handle = await open(path, (readOnly ? constants.O_RDONLY : constants.O_RDWR) | directFlag);
    } catch (error) {
      throw openError(path, error, direct);
    }
  }
  const created = info === undefined;
  return {
    options,
    path,
    handle,
    readOnly,
    direct,
    created,
    wasBlockDevice: info?.isBlockDevice() === true,
    async undo() {
      await handle.close().catch(() => {});
      if (created) await unlink(path).catch(() => {});
    },
  };
}

/** Creates a missing file (O_EXCL), after checking that creating it is asked for and possible. */
async function createFile(options: FileBackendOptions, directFlag: number): Promise<FileHandle> {
  const { path } = options;
  const folder = dirname(path);
  const folderInfo = await stat(folder).catch((error: unknown) => {
    if ((error as { code?: string }).code === 'ENOENT')
      fail(BackendErrorCode.NotFound, `the folder ${folder} does not exist (creating ${path})`, error);
    throw openError(folder, error, false);
  });
  if (!folderInfo.isDirectory())
    fail(BackendErrorCode.NotFound, `${folder} is not a folder (creating ${path})`);
  if (options.create === false) fail(BackendErrorCode.NotFound, `${path} does not exist (create: false)`);
  if (options.size === undefined)
    fail(BackendErrorCode.NotFound, `${path} does not exist; pass size to create it`);
  if (options.readOnly === true)
    fail(BackendErrorCode.NotFound, `${path} does not exist and cannot be created read-only`);
  try {
    return await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | directFlag, 0o644);
  } catch (error) {
    throw openError(path, error, options.direct === true);
  }
}

/**
 * Takes the flock: exclusive, or shared when read-only. udev holds a shared flock on a block device
 * for a moment while it probes it: that is waited out (up to a second).
 */
async function lockFile(file: OpenedFile): Promise<void> {
  const operation =
    (file.readOnly ? FlockOperation.Shared : FlockOperation.Exclusive) | FlockOperation.NonBlocking;
  let lockError = flock(file.handle.fd, operation);
  for (let attempt = 0; file.wasBlockDevice && lockError === Errno.EAGAIN && attempt < 20; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    lockError = flock(file.handle.fd, operation);
  }
  if (lockError === Errno.EAGAIN) {
    fail(
      BackendErrorCode.Locked,
      `${file.path} is already served by another backend (its flock is held, by this or another process)`,
    );
  } else if (lockError !== 0) {
    fail(BackendErrorCode.Open, `cannot lock ${file.path}: ${errnoError('flock', lockError).message}`);
  }
}

/** What {@link measure} found out about the opened file. */
interface Layout {
  readonly kind: 'file' | 'block-device';
  readonly size: number;
  /** The device's logical sector size (block devices only). */
  readonly sector: number | undefined;
  /** The file system's preferred I/O size (`st_blksize`). */
  readonly fileSystemBlock: number;
  readonly alignment: number;
  /** A regular file on a memory file system (tmpfs, ramfs): its reads and writes never wait for a disk. */
  readonly inMemory: boolean;
}

/** statfs(2) `f_type` of tmpfs and ramfs (linux/magic.h). */
const memoryFileSystems = new Set([0x01021994, 0x858458f6]);

/**
 * Kind, size and alignment of the opened file. A file this call created is sized (sparse) here; the
 * size of an existing one must equal `options.size` when given, and be a multiple of the O_DIRECT
 * alignment.
 */
async function measure(file: OpenedFile): Promise<Layout> {
  const { handle, path, options } = file;
  const opened = await handle.stat();
  const kind = opened.isBlockDevice() ? 'block-device' : 'file';
  const sector = kind === 'block-device' ? logicalSectorSize(handle.fd) : undefined;
  let size: number;
  if (file.created) {
    try {
      await handle.truncate(options.size);
    } catch (error) {
      throw openError(path, error, file.direct);
    }
    size = options.size!;
  } else if (kind === 'block-device') {
    const end = lseek(handle.fd, 0, Whence.End);
    if (end.errno !== 0) fail(BackendErrorCode.Open, `cannot find the size of ${path}: errno ${end.errno}`);
    size = end.value;
  } else {
    size = opened.size;
  }
  if (options.size !== undefined && options.size !== size) {
    fail(
      BackendErrorCode.SizeMismatch,
      `${path} is ${size} bytes but size ${options.size} was asked for: omit size to use ${size}, or resize the ${kind === 'file' ? 'file' : 'device'} first`,
    );
  }
  const alignment = file.direct ? (options.directAlignment ?? sector ?? 4096) : 1;
  if (size % alignment !== 0) {
    fail(
      BackendErrorCode.InvalidArgument,
      `${path}: size ${size} is not a multiple of the ${alignment}-byte O_DIRECT alignment`,
    );
  }
  const inMemory =
    kind === 'file' &&
    (await statfs(path).then(
      (info) => memoryFileSystems.has(Number(info.type)),
      () => false,
    ));
  return { kind, size, sector, fileSystemBlock: opened.blksize, alignment, inMemory };
}

function storeSettings(file: OpenedFile, layout: Layout): StoreSettings {
  const { options } = file;
  const { kind, sector, alignment } = layout;
  return {
    path: file.path,
    handle: file.handle,
    kind,
    size: layout.size,
    readOnly: file.readOnly,
    direct: file.direct,
    alignment,
    blockSize: options.blockSize ?? sector ?? 512,
    unmapGranularity:
      kind === 'file'
        ? Math.max(layout.fileSystemBlock || 4096, alignment)
        : Math.max(sector ?? 512, alignment),
    punchHoles: options.punchHoles !== false,
    cachedReads: options.cachedReads !== false && !file.direct,
    inlineIo: options.inlineIo !== false && !file.direct && layout.inMemory,
  };
}

interface StoreSettings {
  readonly path: string;
  readonly handle: FileHandle;
  readonly kind: 'file' | 'block-device';
  readonly size: number;
  readonly readOnly: boolean;
  readonly direct: boolean;
  readonly alignment: number;
  readonly blockSize: number;
  readonly unmapGranularity: number;
  readonly punchHoles: boolean;
  readonly cachedReads: boolean;
  readonly inlineIo: boolean;
}

const ZERO_CHUNK = 1024 * 1024;

class FileStore {
  readonly #settings: StoreSettings;
  readonly #handle: FileHandle;
  readonly #locks = new RangeLock();
  #size: number;
  #punch: boolean;
  #zeroRange = true;
  #cachedReads: boolean;
  #closing: Promise<void> | undefined;
  #inFlight = 0;
  #idle: (() => void) | undefined;
  #runningSync: Promise<void> | undefined;
  #queuedSync: Promise<void> | undefined;
  #zeros: Uint8Array | undefined;

  constructor(settings: StoreSettings) {
    this.#settings = settings;
    this.#handle = settings.handle;
    this.#size = settings.size;
    this.#punch = settings.punchHoles;
    this.#cachedReads = settings.cachedReads;
  }

  /** The public object: only the operations this file really supports are present. */
  facade(): FileBackend {
    const { path, kind, direct, readOnly, alignment, blockSize, unmapGranularity, inlineIo } = this.#settings;
    const backend: Record<string, unknown> = {
      path,
      kind,
      direct,
      inlineIo,
      readOnly,
      persistent: true,
      // A resolved write is in the kernel's page cache (or on the device, with O_DIRECT).
      writesSurviveCrash: true,
      alignment,
      blockSize,
      unmapGranularity,
      read: (offset: number, length: number, into: readonly Uint8Array[]) => this.read(offset, length, into),
      write: (offset: number, data: readonly Uint8Array[]) => this.write(offset, data),
      tryReadSync: (offset: number, length: number, into: readonly Uint8Array[]) =>
        this.tryReadSync(offset, length, into),
      close: () => this.close(),
    };
    Object.defineProperty(backend, 'size', { get: () => this.#size, enumerable: true });
    Object.defineProperty(backend, 'unmapMethod', {
      get: () => (this.#punch ? 'punch-hole' : 'write-zeros'),
      enumerable: true,
    });
    if (!readOnly) {
      // Only where it can answer: elsewhere the core would call it for nothing on every write.
      if (inlineIo)
        backend.tryWriteSync = (offset: number, data: readonly Uint8Array[]) =>
          this.tryWriteSync(offset, data);
      backend.flush = () => this.flush();
      backend.unmap = (offset: number, length: number) => this.unmap(offset, length);
      backend.writeZeroes = (offset: number, length: number) => this.writeZeroes(offset, length);
      backend.compareAndWrite = (
        offset: number,
        expected: readonly Uint8Array[],
        data: readonly Uint8Array[],
      ) => this.compareAndWrite(offset, expected, data);
      if (kind === 'file') backend.resize = (size: number) => this.resize(size);
    }
    if (kind === 'file') {
      backend.getAllocation = (offset: number, length: number) => this.getAllocation(offset, length);
    }
    return backend as unknown as FileBackend;
  }

  // Every call goes through #run: the closed check, the range check, in-flight accounting for close().
  async #run<T>(operation: string, offset: number, length: number, body: () => Promise<T>): Promise<T> {
    this.#admit(operation, offset, length);
    this.#inFlight++;
    try {
      return await body();
    } finally {
      this.#inFlight--;
      if (this.#inFlight === 0) this.#idle?.();
    }
  }

  /** What every call checks first, the synchronous fast paths too: not closed, inside the file. */
  #admit(operation: string, offset: number, length: number): void {
    if (this.#closing) fail(BackendErrorCode.Closed, `${operation}: ${this.#settings.path} is closed`);
    checkRange(operation, offset, length, this.#size, this.#settings.alignment);
  }

  #checkReadInto(into: readonly Uint8Array[], length: number): void {
    if (scatterLength(into) < length) {
      fail(BackendErrorCode.InvalidArgument, `read: the scatter list holds fewer than ${length} bytes`);
    }
  }

  #checkWritable(offset: number): void {
    if (this.#settings.readOnly)
      fail(BackendErrorCode.ReadOnly, `write: ${this.#settings.path} is open read-only`, undefined, offset);
  }

  /**
   * Reads what the page cache holds of the range without waiting (preadv2 RWF_NOWAIT); returns the
   * bytes read (0 on a miss). A refusal (not EAGAIN) turns the attempt off for good.
   */
  #readCached(offset: number, length: number, into: readonly Uint8Array[]): number {
    const cached = readCached(this.#handle.fd, scatterSlice(into, 0, length), offset);
    if (cached.errno !== 0 && cached.errno !== Errno.EAGAIN) this.#cachedReads = false; // refused: stop trying
    return cached.bytes > 0 ? cached.bytes : 0;
  }

  #aligned(views: readonly Uint8Array[]): boolean {
    const alignment = BigInt(this.#settings.alignment);
    return views.every(
      (view) => view.byteLength % this.#settings.alignment === 0 && addressOf(view) % alignment === 0n,
    );
  }

  /** An aligned scratch buffer of `length` bytes (for O_DIRECT bounces). */
  #bounce(length: number): Uint8Array {
    const alignment = this.#settings.alignment;
    const raw = new Uint8Array(length + alignment);
    const pad = Number((BigInt(alignment) - (addressOf(raw) % BigInt(alignment))) % BigInt(alignment));
    return raw.subarray(pad, pad + length);
  }

  async #readAt(offset: number, length: number, into: readonly Uint8Array[]): Promise<void> {
    if (this.#settings.direct && !this.#aligned(scatterSlice(into, 0, length))) {
      const bounce = this.#bounce(length);
      await this.#readAt(offset, length, [bounce]);
      scatterCopyFrom(into, 0, bounce);
      return;
    }
    // On tmpfs/ramfs every read is served right here (inlineIo); elsewhere page-cache hits are, and
    // misses (and the rest of a partial hit) go to the pool.
    if (this.#settings.inlineIo) {
      this.#inline('read', offset, into, length);
      return;
    }
    let done = this.#cachedReads && length > 0 ? this.#readCached(offset, length, into) : 0;
    while (done < length) {
      let bytesRead: number;
      try {
        bytesRead = (await this.#handle.readv(scatterSlice(into, done, length - done), offset + done))
          .bytesRead;
      } catch (error) {
        throw ioError('read', 'read', error, offset + done);
      }
      if (bytesRead === 0) this.#unexpectedEnd(offset + done);
      done += bytesRead;
    }
  }

  /**
   * Reads or writes synchronously on the event loop until `length` bytes moved (tmpfs, ramfs: nothing
   * waits for a disk); a short transfer is continued, never returned.
   */
  #inline(operation: 'read' | 'write', offset: number, views: readonly Uint8Array[], length: number): void {
    const transfer = operation === 'read' ? readvSync : writevSync;
    let done = 0;
    while (done < length) {
      let moved: number;
      try {
        moved = transfer(
          this.#handle.fd,
          done === 0 && scatterLength(views) === length ? views : scatterSlice(views, done, length - done),
          offset + done,
        );
      } catch (error) {
        throw ioError(operation, operation, error, offset + done);
      }
      if (moved === 0) {
        if (operation === 'read') this.#unexpectedEnd(offset + done);
        this.#nothingWritten(offset + done);
      }
      done += moved;
    }
  }

  #unexpectedEnd(at: number): never {
    return fail(
      BackendErrorCode.Read,
      `read at byte ${at}: unexpected end of ${this.#settings.path} (did it shrink?)`,
      undefined,
      at,
    );
  }

  async #writeAt(offset: number, data: readonly Uint8Array[], length: number): Promise<void> {
    if (this.#settings.direct && !this.#aligned(data)) {
      const bounce = this.#bounce(length);
      scatterCopyTo(data, 0, bounce);
      return this.#writeAt(offset, [bounce], length);
    }
    if (this.#settings.inlineIo) {
      this.#inline('write', offset, data, length);
      return;
    }
    let done = 0;
    while (done < length) {
      let bytesWritten: number;
      try {
        ({ bytesWritten } = await this.#handle.writev(
          scatterSlice(data, done, length - done),
          offset + done,
        ));
      } catch (error) {
        throw ioError('write', 'write', error, offset + done);
      }
      if (bytesWritten === 0) this.#nothingWritten(offset + done);
      done += bytesWritten;
    }
  }

  #nothingWritten(at: number): never {
    return fail(BackendErrorCode.Write, `write at byte ${at}: nothing was written`, undefined, at);
  }

  async #writeZeros(offset: number, length: number): Promise<void> {
    this.#zeros ??= this.#settings.direct ? this.#bounce(ZERO_CHUNK) : new Uint8Array(ZERO_CHUNK);
    for (let done = 0; done < length; done += ZERO_CHUNK) {
      const count = Math.min(ZERO_CHUNK, length - done);
      await this.#writeAt(offset + done, [this.#zeros.subarray(0, count)], count);
    }
  }

  /**
   * The synchronous fast path of `read` (Backend.tryReadSync): answers on tmpfs/ramfs (inlineIo) and
   * when the page cache holds every byte (preadv2 RWF_NOWAIT); false otherwise and with O_DIRECT.
   */
  tryReadSync(offset: number, length: number, into: readonly Uint8Array[]): boolean {
    this.#admit('read', offset, length);
    this.#checkReadInto(into, length);
    if (length === 0) return true;
    if (this.#settings.inlineIo) {
      this.#inline('read', offset, into, length);
      return true;
    }
    // (cachedReads is off with O_DIRECT.)
    return this.#cachedReads && this.#readCached(offset, length, into) === length;
  }

  /**
   * The synchronous fast path of `write` (Backend.tryWriteSync): answers on tmpfs/ramfs (inlineIo)
   * when no compareAndWrite, unmap or writeZeroes holds the range; false otherwise.
   */
  tryWriteSync(offset: number, data: readonly Uint8Array[]): boolean {
    if (!this.#settings.inlineIo) return false;
    const length = scatterLength(data);
    this.#admit('write', offset, length);
    this.#checkWritable(offset);
    if (length === 0) return true;
    const release = this.#locks.tryAcquire({ start: offset, length, shared: true });
    if (!release) return false;
    try {
      this.#inline('write', offset, data, length);
    } finally {
      release();
    }
    return true;
  }

  read(offset: number, length: number, into: readonly Uint8Array[]): Promise<void> {
    return this.#run('read', offset, length, async () => {
      this.#checkReadInto(into, length);
      await this.#readAt(offset, length, into);
    });
  }

  write(offset: number, data: readonly Uint8Array[]): Promise<void> {
    const length = scatterLength(data);
    return this.#run('write', offset, length, async () => {
      this.#checkWritable(offset);
      const release = await this.#locks.acquire({ start: offset, length, shared: true });
      try {
        await this.#writeAt(offset, data, length);
      } finally {
        release();
      }
    });
  }

  /** One fdatasync at a time: callers arriving during one share the next (it covers their writes). */
  flush(): Promise<void> {
    return this.#run('flush', 0, 0, () => this.#sync());
  }

  #sync(): Promise<void> {
    const start = (): Promise<void> => {
      const running: Promise<void> = this.#handle
        .datasync()
        .catch((error: unknown) => {
          throw ioError('flush (fdatasync)', 'write', error, 0);
        })
        .finally(() => {
          if (this.#runningSync === running) this.#runningSync = undefined;
        });
      this.#runningSync = running;
      return running;
    };
    if (!this.#runningSync) return start();
    this.#queuedSync ??= this.#runningSync
      .catch(() => undefined)
      .then(() => {
        this.#queuedSync = undefined;
        return start();
      });
    return this.#queuedSync;
  }

  unmap(offset: number, length: number): Promise<void> {
    return this.#run('unmap', offset, length, async () => {
      const release = await this.#locks.acquire({ start: offset, length, shared: true });
      try {
        await this.#deallocate(offset, length);
      } finally {
        release();
      }
    });
  }

  /** Punches a hole (file systems zero partial blocks themselves); writes zeros when refused. */
  async #deallocate(offset: number, length: number): Promise<void> {
    if (length === 0) return;
    if (this.#punch) {
      // Block devices punch whole sectors only: zero the edges by writing.
      let from = offset;
      let to = offset + length;
      if (this.#settings.kind === 'block-device') {
        const unit = this.#settings.unmapGranularity;
        from = Math.ceil(offset / unit) * unit;
        to = Math.floor((offset + length) / unit) * unit;
        if (to <= from) return this.#writeZeros(offset, length);
        if (from > offset) await this.#writeZeros(offset, from - offset);
        if (offset + length > to) await this.#writeZeros(to, offset + length - to);
      }
      const errno = await fallocate(
        this.#handle.fd,
        FallocateMode.PunchHole | FallocateMode.KeepSize,
        from,
        to - from,
      );
      if (errno === 0) return;
      if (
        errno !== Errno.EOPNOTSUPP &&
        errno !== Errno.ENOSYS &&
        errno !== Errno.ENOTTY &&
        errno !== Errno.EINVAL
      ) {
        throw ioError('unmap (fallocate punch hole)', 'write', errnoError('fallocate', errno), offset);
      }
      this.#punch = false; // refused here for good: fall back to writing zeros from now on
    }
    await this.#writeZeros(offset, length);
  }

  writeZeroes(offset: number, length: number): Promise<void> {
    return this.#run('writeZeroes', offset, length, async () => {
      const release = await this.#locks.acquire({ start: offset, length, shared: true });
      try {
        if (length === 0) return;
        if (this.#zeroRange && this.#settings.kind === 'file') {
          const errno = await fallocate(
            this.#handle.fd,
            FallocateMode.ZeroRange | FallocateMode.KeepSize,
            offset,
            length,
          );
          if (errno === 0) return;
          if (errno !== Errno.EOPNOTSUPP && errno !== Errno.ENOSYS && errno !== Errno.EINVAL) {
            throw ioError(
              'writeZeroes (fallocate zero range)',
              'write',
              errnoError('fallocate', errno),
              offset,
            );
          }
          this.#zeroRange = false;
        }
        await this.#deallocate(offset, length);
      } finally {
        release();
      }
    });
  }

  compareAndWrite(
    offset: number,
    expected: readonly Uint8Array[],
    data: readonly Uint8Array[],
  ): Promise<void> {
    const length = scatterLength(data);
    return this.#run('compareAndWrite', offset, length, async () => {
      if (scatterLength(expected) !== length) {
        fail(
          BackendErrorCode.InvalidArgument,
          `compareAndWrite: expected holds ${scatterLength(expected)} bytes, data ${length}`,
        );
      }
      const release = await this.#locks.acquire({ start: offset, length });
      try {
        const current = this.#settings.direct ? this.#bounce(length) : new Uint8Array(length);
        await this.#readAt(offset, length, [current]);
        const differs = scatterCompare([current], expected, length);
        if (differs >= 0) {
          fail(
            BackendErrorCode.Miscompare,
            `compareAndWrite: miscompare at byte ${differs}`,
            undefined,
            differs,
          );
        }
        await this.#writeAt(offset, data, length);
      } finally {
        release();
      }
    });
  }

  getAllocation(offset: number, length: number): Promise<readonly AllocationExtent[]> {
    return this.#run('getAllocation', offset, length, async () => {
      const extents: AllocationExtent[] = [];
      const end = offset + length;
      const push = (from: number, to: number, state: AllocationExtent['state']) => {
        if (to > from) extents.push({ offset: from, length: to - from, state });
      };
      let position = offset;
      while (position < end) {
        const data = lseek(this.#handle.fd, position, Whence.Data);
        if (data.errno === Errno.ENXIO) {
          push(position, end, 'deallocated');
          break;
        }
        if (data.errno !== 0)
          throw ioError('getAllocation (SEEK_DATA)', 'read', errnoError('lseek', data.errno), position);
        const dataStart = Math.min(data.value, end);
        push(position, dataStart, 'deallocated');
        if (dataStart >= end) break;
        const hole = lseek(this.#handle.fd, dataStart, Whence.Hole);
        const holeStart = hole.errno === 0 ? Math.min(hole.value, end) : end;
        push(dataStart, holeStart, 'mapped');
        position = holeStart;
      }
      return extents;
    });
  }

  resize(size: number): Promise<void> {
    return this.#run('resize', 0, 0, async () => {
      if (!Number.isSafeInteger(size) || size <= 0 || size % this.#settings.alignment !== 0) {
        fail(
          BackendErrorCode.InvalidArgument,
          `resize: size ${size} must be a positive multiple of ${this.#settings.alignment}`,
        );
      }
      try {
        await this.#handle.truncate(size);
      } catch (error) {
        throw ioError('resize (ftruncate)', 'write', error, size);
      }
      this.#size = size;
    });
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#inFlight > 0) {
        await new Promise<void>((resolve) => {
          this.#idle = resolve;
        });
      }
      let failure: unknown;
      if (!this.#settings.readOnly) {
        await this.#handle.datasync().catch((error: unknown) => {
          failure = ioError('close (fdatasync)', 'write', error, 0);
        });
      }
      await this.#handle.close(); // closing the descriptor drops the flock
      if (failure) throw failure;
    })();
    return this.#closing;
  }
}
