import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { BackendError, BackendErrorCode } from '@tcmu/backend';
import { StoreError } from './retry.ts';
import { isPrecondition, type LeaseInfo, toBackendError, type VolumeStore } from './volume-store.ts';

/** Default lease duration: a writer that cannot renew for this long has lost the volume. */
export const defaultLeaseDuration = 30_000;
/** Shortest lease accepted (tests use short ones; real servers need a few seconds per renewal). */
export const minimumLeaseDuration = 1000;

/** The monotonic clock (milliseconds): never jumps with NTP or the date command. */
const monotonic = () => performance.now();

/** How much earlier than the lease's end the holder stops: covers clock-rate differences and latency. */
export function safetyMargin(duration: number): number {
  return Math.max(200, Math.floor(duration / 5));
}

/** What the lease reports on its way (the CLI logs it). */
export interface LeaseEvents {
  onLeaseEvent?(event: {
    readonly kind: 'waiting-for-expiry' | 'taken-over' | 'lapsed' | 'renewed-after-lapse' | 'lost';
    readonly message: string;
  }): void;
}

export interface AcquireOptions extends LeaseEvents {
  /** Milliseconds; see {@link defaultLeaseDuration}. */
  readonly duration: number;
  /** Take the lease whatever the holder (`--force-lease`). */
  readonly force: boolean;
  /** Cancels a wait for an expiring lease. */
  readonly signal?: AbortSignal;
}

function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or undefined. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const value = Number(fields[19]);
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the holder recorded in `info` is a process of THIS machine (same host name and same kernel
 * boot) that no longer runs (no such pid, or the pid now belongs to a process started later).
 * Another machine, or a record without a boot id, is never judged dead here: only time tells.
 */
export function isDeadLocalHolder(info: LeaseInfo): boolean {
  if (info.host !== hostname() || info.bootId === undefined || info.bootId !== bootId()) return false;
  try {
    process.kill(info.pid, 0);
  } catch (error) {
    return (error as { code?: string }).code === 'ESRCH';
  }
  const start = processStartTime(info.pid);
  return info.processStart !== undefined && start !== undefined && start !== info.processStart;
}

function describeHolder(info: LeaseInfo): string {
  return `process ${info.pid} on ${info.host} since ${info.since}`;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(new StoreError('cancelled', false, 'cancelled', { cause: signal.reason }));
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    function onAbort() {
      clearTimeout(timer);
      reject(new StoreError('cancelled', false, 'cancelled', { cause: signal?.reason }));
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/**
 * The single-writer lease of a volume: the object `tcmu-lease.json`, created with If-None-Match: *
 * and renewed in the background with If-Match on its ETag, so a renewal after a take-over fails.
 *
 * The guarantee: the holder acknowledges writes and flushes (and starts chunk uploads) only until
 * `sent + duration - margin` on its monotonic clock, where `sent` is when it sent its last successful
 * renewal. Another process takes the lease without force only after watching the object stay
 * unchanged for `duration` on ITS monotonic clock, then with If-Match on what it watched; so it writes
 * no earlier than `sent + duration`, after the holder has stopped. Only the rate of the two clocks
 * matters (they must agree within the margin, 20 %), never their time of day. See docs/s3.md.
 */
export class WriterLease {
  readonly info: LeaseInfo;
  readonly #volume: VolumeStore;
  readonly #duration: number;
  readonly #margin: number;
  readonly #events: LeaseEvents;
  #etag: string | undefined;
  /** Monotonic time until which writes may be acknowledged. */
  #deadline: number;
  #serial = 0;
  /** Monotonic time the last successful renewal (or the acquisition) was sent. */
  #lastSent: number;
  /** Set once another process took the lease (or it vanished): final. */
  #lost: BackendError | undefined;
  #lapsedReported = false;
  #timer: NodeJS.Timeout | undefined;
  #renewing: Promise<void> | undefined;
  #stopped = false;

  private constructor(
    volume: VolumeStore,
    info: LeaseInfo,
    etag: string | undefined,
    sent: number,
    events: LeaseEvents,
  ) {
    this.#volume = volume;
    this.info = info;
    this.#etag = etag;
    this.#duration = info.duration ?? defaultLeaseDuration;
    this.#margin = safetyMargin(this.#duration);
    this.#deadline = sent + this.#duration - this.#margin;
    this.#lastSent = sent;
    this.#events = events;
    this.#schedule(this.#interval());
  }

  /** Renewal period: three tries within one lease. */
  #interval(): number {
    return Math.max(50, Math.floor(this.#duration / 3));
  }

  /**
   * Takes the lease. A free volume: at once. Held by a dead process of this machine, or with `force`:
   * taken over at once. Held elsewhere and not renewed for longer than its duration (by the clocks of
   * day): watched for one duration, then taken if still unchanged. Otherwise `TCMU_ERR_BACKEND_LOCKED`.
   */
  static async acquire(volume: VolumeStore, options: AcquireOptions): Promise<WriterLease> {
    const duration = options.duration;
    if (!Number.isSafeInteger(duration) || duration < minimumLeaseDuration) {
      throw new BackendError(
        BackendErrorCode.InvalidArgument,
        `lease duration ${duration} ms must be an integer of at least ${minimumLeaseDuration} ms`,
      );
    }
    const now = new Date().toISOString();
    const start = processStartTime(process.pid);
    const boot = bootId();
    const info: LeaseInfo = {
      id: randomUUID(),
      host: hostname(),
      pid: process.pid,
      since: now,
      renewed: now,
      duration,
      serial: 0,
      ...(boot ? { bootId: boot } : {}),
      ...(start !== undefined ? { processStart: start } : {}),
    };
    const where = volume.where;
    const begun = monotonic();
    const attempt = async (condition: { createOnly: true } | { ifMatch: string }) => {
      const sent = monotonic();
      try {
        const etag = await volume.writeLeaseObject(info, condition);
        return new WriterLease(volume, info, etag, sent, options);
      } catch (error) {
        if (isPrecondition(error)) return undefined;
        throw toBackendError(error, BackendErrorCode.Open, `${where}: taking the lease`);
      }
    };
    for (let round = 0; round < 5; round++) {
      const created = await attempt({ createOnly: true });
      if (created) return created;
      const current = await volume.readLeaseObject();
      if (!current) continue; // released meanwhile: try to create it again
      const holder = current.info;
      // Our own earlier attempt landed though its answer was lost: the lease is ours.
      if (holder.id === info.id) return new WriterLease(volume, info, current.etag, begun, options);
      const take = async (why: string) => {
        if (current.etag === undefined) {
          throw new BackendError(
            BackendErrorCode.Open,
            `${where}: the server sends no ETag; cannot take a lease over`,
          );
        }
        const taken = await attempt({ ifMatch: current.etag });
        if (taken)
          options.onLeaseEvent?.({
            kind: 'taken-over',
            message: `took over the lease of ${describeHolder(holder)} (${why})`,
          });
        return taken;
      };
      if (options.force) {
        const taken = await take('forced');
        if (taken) return taken;
        continue;
      }
      if (isDeadLocalHolder(holder)) {
        const taken = await take('that process is gone');
        if (taken) return taken;
        continue;
      }
      const holderDuration = holder.duration ?? defaultLeaseDuration;
      const renewed = Date.parse(holder.renewed ?? holder.since);
      const age = Number.isFinite(renewed) ? Date.now() - renewed : Number.POSITIVE_INFINITY;
      if (age <= holderDuration) {
        const seconds = Math.max(0, Math.round(age / 1000));
        throw new BackendError(
          BackendErrorCode.Locked,
          `${where} is open read-write by ${describeHolder(holder)} (lease renewed ${seconds} s ago, lasts ${Math.round(holderDuration / 1000)} s); a volume has one writer at a time. If that process is gone, wait for its lease to expire, or take the lease with --force-lease (the force option)`,
        );
      }
      // Expired by the clocks of day: confirm on our monotonic clock that nobody renews it.
      options.onLeaseEvent?.({
        kind: 'waiting-for-expiry',
        message: `the lease of ${describeHolder(holder)} looks expired; watching it for ${Math.round(holderDuration / 1000)} s before taking it`,
      });
      await sleep(holderDuration, options.signal).catch((error: unknown) => {
        throw toBackendError(error, BackendErrorCode.Open, `${where}: waiting for the lease`);
      });
      const again = await volume.readLeaseObject();
      if (!again) continue;
      if (again.etag !== current.etag) {
        throw new BackendError(
          BackendErrorCode.Locked,
          `${where} is open read-write by ${describeHolder(again.info)}: its lease was renewed while we waited; a volume has one writer at a time (--force-lease takes it anyway)`,
        );
      }
      const taken = await take('it expired');
      if (taken) return taken;
    }
    throw new BackendError(BackendErrorCode.Locked, `${where}: the lease keeps changing hands; try again`);
  }

  /** Throws when this process may not acknowledge a write or flush now (lease lost or lapsed). */
  check(): void {
    if (this.#lost) throw this.#lost;
    if (monotonic() < this.#deadline) return;
    if (!this.#lapsedReported) {
      this.#lapsedReported = true;
      this.#events.onLeaseEvent?.({
        kind: 'lapsed',
        message: `${this.#volume.where}: the lease could not be renewed in time; writes are refused until it is`,
      });
    }
    // Renew now rather than at the next tick: a process that was stopped learns its fate at once.
    this.#renewSoon();
    throw new BackendError(
      BackendErrorCode.Busy,
      `${this.#volume.where}: the writer lease could not be renewed in time; writes wait for the next renewal`,
    );
  }

  /**
   * Before a flush is acknowledged: renews now when the last renewal is older than `maxAge` ms (a
   * forced take-over is noticed at the next flush, at most one request a second), then {@link check}.
   */
  async confirm(maxAge = 1000): Promise<void> {
    if (!this.#lost && monotonic() - this.#lastSent > maxAge) {
      this.#renewSoon();
      await this.#renewing;
    }
    this.check();
  }

  /** The error this writer fails with for good, once the lease was taken over. */
  get lost(): BackendError | undefined {
    return this.#lost;
  }

  #schedule(delay: number): void {
    if (this.#stopped || this.#lost) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#renewSoon();
    }, delay);
    this.#timer.unref();
  }

  #renewSoon(): void {
    if (this.#renewing || this.#stopped || this.#lost) return;
    this.#renewing = this.renew().finally(() => {
      this.#renewing = undefined;
    });
  }

  /** One renewal (If-Match). Failures are recorded, never thrown: a lost lease shows in {@link check}. */
  async renew(): Promise<void> {
    if (this.#lost || this.#etag === undefined) return;
    const sent = monotonic();
    const next: LeaseInfo = { ...this.info, renewed: new Date().toISOString(), serial: ++this.#serial };
    try {
      const etag = await this.#volume.writeLeaseObject(
        next,
        { ifMatch: this.#etag },
        AbortSignal.timeout(Math.max(100, this.#interval())),
      );
      this.#etag = etag;
      this.#deadline = sent + this.#duration - this.#margin;
      this.#lastSent = sent;
      if (this.#lapsedReported) {
        this.#lapsedReported = false;
        this.#events.onLeaseEvent?.({
          kind: 'renewed-after-lapse',
          message: `${this.#volume.where}: the lease is renewed again (nobody took it); writes resume`,
        });
      }
      this.#schedule(this.#interval());
    } catch (error) {
      if (isPrecondition(error)) {
        const now = await this.#volume.readLeaseObject().catch(() => null);
        if (now?.info.id === this.info.id) {
          // An earlier renewal landed but its answer was lost: still ours; renew again from there.
          this.#etag = now.etag;
          this.#schedule(0);
          return;
        }
        const who = now ? describeHolder(now.info) : 'nobody (it was deleted)';
        this.#lost = new BackendError(
          BackendErrorCode.Locked,
          `${this.#volume.where}: the lease was taken over (now held by ${who}); this process no longer writes to the volume`,
        );
        this.#events.onLeaseEvent?.({ kind: 'lost', message: this.#lost.message });
        return;
      }
      // A transient failure: try again soon, well before the deadline.
      this.#schedule(Math.min(1000, this.#interval()));
    }
  }

  /** Stops renewing and deletes the lease object if it is still ours (a take-over is left alone). */
  async release(): Promise<void> {
    this.#stop();
    await this.#renewing;
    if (this.#lost) return;
    const current = await this.#volume.readLeaseObject();
    if (current?.info.id !== this.info.id) return;
    await this.#volume.deleteLeaseObject();
  }

  /** Stops renewing, leaving the object (it expires by itself). */
  #stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Stops renewing without touching the object (a writer that gives up the volume, e.g. after a fatal error). */
  abandon(): void {
    this.#stop();
  }
}
