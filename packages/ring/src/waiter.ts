// One waiter per process. By default a single poll() on libuv's threadpool watches every registered
// file descriptor (uio devices, simulated kernels) plus an eventfd used to wake it when the set
// changes: one threadpool thread for N devices, two thread hops per wake-up. With TCMU_RING_WAIT=loop
// (where @tcmu/libc's watchFd works: node's main thread on Linux) each fd is watched from the event
// loop itself (libuv's uv_poll): a wake-up is one epoll event on the loop thread and no pool thread
// is held. In the lab the two measured level (docs/performance.md, 6), so the default stays the
// proven one. Either way the event loop never blocks.
import {
  canWatchFd,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  type FdWatch,
  libc,
  POLLERR,
  POLLIN,
  watchFd,
} from '@tcmu/libc';

/** Something the waiter watches. */
export interface WaitSource {
  /** File descriptor polled for POLLIN. Must stay open until `remove()` has resolved. */
  readonly fd: number;
  /** Called on the event loop with the revents bits when the fd is ready (or in error). */
  onReady(revents: number): void;
  /**
   * False while the source notices its work without a wake-up (a busy ring re-checks itself after
   * each completion batch): the waiter then does not re-arm poll() for it, which saves two thread
   * hops per batch. Call `request()` when it turns true again. Default: always true.
   */
  wantsWake?(): boolean;
}

const POLLFD_SIZE = 8; // struct pollfd { int fd; short events; short revents; }

class Waiter {
  /** Loop mode: one uv_poll watch per source (see the file's comment). Decided at the first add(). */
  #loopMode: boolean | undefined;
  #watches = new Map<WaitSource, FdWatch>();
  #sources = new Set<WaitSource>();
  #wakeFd = -1;
  #polling = false;
  #dirty = true;
  #fds: Uint8Array = new Uint8Array(0);
  #fdView: DataView = new DataView(new ArrayBuffer(0));
  #snapshot: WaitSource[] = [];
  #afterPoll: (() => void)[] = [];
  #wakeValue = new Uint8Array(new BigUint64Array([1n]).buffer);
  #drain = new Uint8Array(8);
  #failures = 0;

  /** Number of polls issued (for tests and statistics). */
  polls = 0;

  get sourceCount(): number {
    return this.#sources.size;
  }

  /** True while a wake-up is armed: a poll() pending on the threadpool, or (loop mode) a watch started. */
  get polling(): boolean {
    if (this.#loopMode) {
      for (const watch of this.#watches.values()) if (watch.active) return true;
      return false;
    }
    return this.#polling;
  }

  /** How wake-ups are waited for: `pool` (poll() on the threadpool) or `loop` (uv_poll on the event loop; TCMU_RING_WAIT=loop). */
  get mode(): 'loop' | 'pool' {
    this.#loopMode ??= process.env.TCMU_RING_WAIT === 'loop' && canWatchFd();
    return this.#loopMode ? 'loop' : 'pool';
  }

  add(source: WaitSource): void {
    if (this.mode === 'loop') {
      this.#sources.add(source);
      const watch = watchFd(source.fd, (status) => this.#loopReady(source, status));
      this.#watches.set(source, watch);
      this.#startWatch(source);
      return;
    }
    if (this.#wakeFd < 0) {
      this.#wakeFd = libc().eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      if (this.#wakeFd < 0) throw new Error('eventfd() failed');
    }
    this.#sources.add(source);
    this.#dirty = true;
    this.#arm();
  }

  /** Arms poll() if it is not pending and a source wants a wake-up (see `WaitSource.wantsWake`). */
  request(): void {
    if (this.#loopMode) {
      for (const source of this.#sources) this.#startWatch(source);
      return;
    }
    if (!this.#polling && this.#wanted()) this.#arm();
  }

  #startWatch(source: WaitSource): void {
    if (source.wantsWake !== undefined && !source.wantsWake()) return;
    this.polls++;
    this.#watches.get(source)?.start();
  }

  /** Loop mode: `source`'s fd became readable (the watch is paused until this returns). */
  #loopReady(source: WaitSource, status: number): void {
    if (!this.#sources.has(source)) return;
    try {
      source.onReady(status < 0 ? POLLERR : POLLIN);
    } catch (caught) {
      console.error('@tcmu/ring: a wait source failed:', caught);
    }
    if (this.#sources.has(source)) this.#startWatch(source);
  }

  #wanted(): boolean {
    for (const source of this.#sources) if (source.wantsWake === undefined || source.wantsWake()) return true;
    return false;
  }

  /** Stop watching `source`. Resolves once no pending poll() includes its fd (then it may be closed). */
  remove(source: WaitSource): Promise<void> {
    if (!this.#sources.delete(source)) return Promise.resolve();
    const watch = this.#watches.get(source);
    if (watch) {
      this.#watches.delete(source);
      return watch.close();
    }
    this.#dirty = true;
    if (!this.#polling) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.#afterPoll.push(resolve));
    this.#wake();
    return done;
  }

  #wake(): void {
    libc().write(this.#wakeFd, this.#wakeValue, 8);
  }

  #rebuild(): void {
    this.#snapshot = [...this.#sources];
    const count = this.#snapshot.length + 1;
    this.#fds = new Uint8Array(count * POLLFD_SIZE);
    this.#fdView = new DataView(this.#fds.buffer);
    this.#fdView.setInt32(0, this.#wakeFd, true);
    this.#fdView.setInt16(4, POLLIN, true);
    this.#snapshot.forEach((source, i) => {
      this.#fdView.setInt32((i + 1) * POLLFD_SIZE, source.fd, true);
      this.#fdView.setInt16((i + 1) * POLLFD_SIZE + 4, POLLIN, true);
    });
    this.#dirty = false;
  }

  #arm(): void {
    if (this.#polling) {
      if (this.#dirty) this.#wake();
      return;
    }
    if (this.#sources.size === 0) return;
    if (this.#dirty) this.#rebuild();
    const fds = this.#fds; // held by this closure until poll returns: koffi does not keep it alive
    const snapshot = this.#snapshot;
    const view = this.#fdView;
    this.#polling = true;
    this.polls++;
    try {
      this.#poll(fds, snapshot, view);
    } catch (caught) {
      this.#polling = false;
      console.error('@tcmu/ring: cannot start waiting for devices:', caught);
    }
  }

  #poll(fds: Uint8Array, snapshot: WaitSource[], view: DataView): void {
    libc().poll.async(fds, snapshot.length + 1, -1, (error, result) => {
      this.#polling = false;
      const waiting = this.#afterPoll;
      this.#afterPoll = [];
      for (const resolve of waiting) resolve();
      if (error || result < 0) {
        // EINTR or a transient failure: retry, backing off if it keeps failing.
        this.#failures++;
        if (this.#failures > 3) {
          setTimeout(() => this.#arm(), Math.min(1000, this.#failures * 10)).unref();
          return;
        }
      } else {
        this.#failures = 0;
        if (view.getInt16(6, true) !== 0) libc().read(this.#wakeFd, this.#drain, 8);
        for (let i = 0; i < snapshot.length; i++) {
          const revents = view.getInt16((i + 1) * POLLFD_SIZE + 6, true);
          if (revents === 0) continue;
          view.setInt16((i + 1) * POLLFD_SIZE + 6, 0, true);
          const source = snapshot[i]!;
          if (!this.#sources.has(source)) continue;
          try {
            source.onReady(revents);
          } catch (caught) {
            console.error('@tcmu/ring: a wait source failed:', caught);
          }
        }
        view.setInt16(6, 0, true);
      }
      if (this.#wanted()) this.#arm();
    });
  }
}

// Shared through a global symbol so that two copies of this package in one process (a bundled
// and an installed one) still use one poll() thread between them.
const WAITER_KEY = Symbol.for('@tcmu/ring/process-waiter/v1');

/** The process-wide waiter. */
export function processWaiter(): Waiter {
  const global = globalThis as { [WAITER_KEY]?: Waiter };
  global[WAITER_KEY] ??= new Waiter();
  return global[WAITER_KEY];
}

export type { Waiter };
