// Watching a file descriptor from the event loop itself: libuv's uv_poll_t, bound through koffi from
// the running node binary (which exports libuv's symbols for addons). A wake-up then costs one epoll
// event on the loop thread, where a poll() on libuv's thread pool costs two thread hops (the pool
// thread wakes, then wakes the loop) and another to re-arm.
import { isMainThread } from 'node:worker_threads';
import { LibcError } from './errors';
import { loadKoffi } from './libc';

/** A watched descriptor (see {@link watchFd}). */
export interface FdWatch {
  /** Watches for readability (idempotent). `onReady` runs once per wake-up while started. */
  start(): void;
  /** Stops watching (idempotent); `start()` may follow. */
  stop(): void;
  /** Stops for good and releases the handle; resolves once libuv closed it (the fd may be closed then). */
  close(): Promise<void>;
  /** True while a wake-up is armed or being delivered. */
  readonly active: boolean;
}

/** uv_poll_event UV_READABLE. */
const UV_READABLE = 1;
/** uv_handle_type UV_POLL. */
const UV_POLL = 8;

interface Uv {
  loop: unknown;
  handleSize: number;
  init(loop: unknown, handle: unknown, fd: number): number;
  start(handle: unknown, events: number, callback: unknown): number;
  stop(handle: unknown): number;
  close(handle: unknown, callback: unknown): void;
  alloc(size: number): unknown;
  free(handle: unknown): void;
  address(handle: unknown): bigint;
  /** The one registered poll callback and close callback (koffi pointers). */
  pollCallback: unknown;
  closeCallback: unknown;
}

interface Entry {
  readonly onReady: (status: number) => void;
  handle: unknown;
  started: boolean;
  /** A wake-up is delivered in a setImmediate (so the handler runs where node drains microtasks). */
  scheduled: boolean;
  closed: (() => void) | undefined;
}

const entries = new Map<bigint, Entry>();
let bound: Uv | undefined;
let failure: LibcError | undefined;

function uv(): Uv {
  if (bound) return bound;
  if (failure) throw failure;
  const koffi = loadKoffi();
  try {
    // uv_default_loop() is the main thread's loop: a worker thread has its own, which koffi cannot reach.
    if (!isMainThread) throw new Error('not on the main thread (a worker has its own event loop)');
    const self = koffi.load(null as unknown as string);
    const PollCallback = koffi.proto('void tcmu_uv_poll_cb(void *handle, int status, int events)');
    const CloseCallback = koffi.proto('void tcmu_uv_close_cb(void *handle)');
    const defaultLoop = self.func('void *uv_default_loop()');
    const handleSize = self.func('size_t uv_handle_size(int type)');
    const init = self.func('int uv_poll_init(void *loop, void *handle, int fd)');
    const start = self.func('uv_poll_start', 'int', ['void *', 'int', koffi.pointer(PollCallback)]);
    const stop = self.func('int uv_poll_stop(void *handle)');
    const close = self.func('uv_close', 'void', ['void *', koffi.pointer(CloseCallback)]);
    const pollCallback = koffi.register((handle: unknown, status: number) => {
      const entry = entries.get(koffi.address(handle) as bigint);
      if (!entry?.started || entry.scheduled) return;
      entry.scheduled = true;
      // Level-triggered: stop until the handler ran (it consumes the readiness, or asks again).
      bound!.stop(entry.handle);
      entry.started = false;
      setImmediate(() => {
        entry.scheduled = false;
        if (entry.closed === undefined) entry.onReady(status);
      });
    }, koffi.pointer(PollCallback));
    const closeCallback = koffi.register((handle: unknown) => {
      const key = koffi.address(handle) as bigint;
      const entry = entries.get(key);
      entries.delete(key);
      koffi.free(handle);
      // Resolved in a setImmediate: node drains microtasks after its own callbacks, not after this one.
      const closed = entry?.closed;
      if (closed) setImmediate(closed);
    }, koffi.pointer(CloseCallback));
    bound = {
      loop: defaultLoop(),
      handleSize: Number(handleSize(UV_POLL)),
      init,
      start,
      stop,
      close,
      alloc: (size) => koffi.alloc('uint8_t', size),
      free: (handle) => koffi.free(handle),
      address: (handle) => koffi.address(handle) as bigint,
      pollCallback,
      closeCallback,
    };
    if (!(bound.handleSize > 0)) throw new Error(`uv_handle_size(UV_POLL) returned ${bound.handleSize}`);
    return bound;
  } catch (error) {
    bound = undefined;
    failure = new LibcError(
      'TCMU_ERR_LIBC_NO_LIBUV',
      `libuv's uv_poll cannot be bound from this node binary: ${(error as Error).message}`,
      { cause: error },
    );
    throw failure;
  }
}

/**
 * Watches `fd` (a descriptor epoll supports: a uio device, an eventfd, a pipe; not a regular file)
 * for readability on the event loop. `onReady(status)` (status 0, or a negative libuv error) runs in
 * a setImmediate after each wake-up; the watch is paused from the wake-up until `onReady` returned,
 * so a handler that does not consume the readiness is not called in a loop: it calls `start()` again
 * when it wants the next wake-up. Note: libuv makes `fd` non-blocking. Throws
 * `TCMU_ERR_LIBC_NO_LIBUV` (or the koffi codes) when the binding is unavailable; callers fall back to
 * a poll() on the thread pool.
 */
export function watchFd(fd: number, onReady: (status: number) => void): FdWatch {
  const u = uv();
  const handle = u.alloc(u.handleSize);
  const result = u.init(u.loop, handle, fd);
  if (result !== 0) {
    u.free(handle);
    throw new LibcError('TCMU_ERR_LIBC_NO_LIBUV', `uv_poll_init(fd ${fd}) failed: libuv error ${result}`);
  }
  const entry: Entry = { onReady, handle, started: false, scheduled: false, closed: undefined };
  entries.set(u.address(handle), entry);
  let closing: Promise<void> | undefined;
  return {
    get active() {
      return entry.started || entry.scheduled;
    },
    start() {
      if (entry.started || entry.scheduled || closing) return;
      const started = u.start(handle, UV_READABLE, u.pollCallback);
      if (started !== 0)
        throw new LibcError('TCMU_ERR_LIBC_NO_LIBUV', `uv_poll_start(fd ${fd}) failed: ${started}`);
      entry.started = true;
    },
    stop() {
      if (!entry.started) return;
      u.stop(handle);
      entry.started = false;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        entry.closed = resolve;
        if (entry.started) u.stop(handle);
        entry.started = false;
        u.close(handle, u.closeCallback);
      });
      return closing;
    },
  };
}

/** True when {@link watchFd} can work in this process (binds on the first call). */
export function canWatchFd(): boolean {
  try {
    uv();
    return true;
  } catch {
    return false;
  }
}
