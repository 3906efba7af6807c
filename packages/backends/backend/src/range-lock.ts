/**
 * Locks on ranges, granted in arrival order, in the caller's units (the core locks logical blocks,
 * the file backend bytes: the lock only compares numbers).
 *
 * An exclusive holder excludes every overlapping holder; `shared` holders of overlapping ranges run
 * together (the file backend's writes share, its compareAndWrite excludes). A request is granted only
 * when no held range and no EARLIER waiting request conflicts with it: no starvation, no deadlock,
 * no reordering of conflicting requests; non-overlapping ranges never wait on each other.
 */
export interface LockRange {
  /** First unit of the range (a byte offset, a logical block address…). */
  readonly start: number | bigint;
  /** Number of units; 0 locks nothing and is granted at once. */
  readonly length: number | bigint;
  /** Share the range with other shared holders (default: exclusive). */
  readonly shared?: boolean;
}

interface Entry {
  readonly start: number | bigint;
  readonly end: number | bigint;
  readonly shared: boolean;
  grant?: () => void;
}

function entryFor({ start, length, shared }: LockRange): Entry {
  const end =
    typeof start === 'bigint' || typeof length === 'bigint' ? BigInt(start) + BigInt(length) : start + length;
  return { start, end, shared: shared === true };
}

const conflicts = (a: Entry, b: Entry) =>
  !(a.shared && b.shared) && a.start < a.end && b.start < b.end && a.start < b.end && b.start < a.end;

export class RangeLock {
  readonly #held: Entry[] = [];
  readonly #waiting: Entry[] = [];

  /** Ranges held right now (for stats and tests). */
  get heldCount(): number {
    return this.#held.length;
  }

  /** Requests waiting for a range. */
  get waitingCount(): number {
    return this.#waiting.length;
  }

  /**
   * Resolves with a release function once the range is held. Call release exactly once (extra calls
   * are ignored). A whole-medium operation passes `{ start: 0, length: <capacity> }`.
   */
  acquire(range: LockRange): Promise<() => void> {
    const entry = entryFor(range);
    const release = this.#releaser(entry);
    if (this.#canGrant(entry, this.#waiting.length)) {
      this.#held.push(entry);
      return Promise.resolve(release);
    }
    return new Promise((resolve) => {
      entry.grant = () => resolve(release);
      this.#waiting.push(entry);
    });
  }

  /**
   * The release function when `range` can be held at once (as `acquire` would grant it), else
   * undefined and nothing is queued. The hot path's way to lock without a promise: a caller that
   * gets undefined falls back to `acquire`.
   */
  tryAcquire(range: LockRange): (() => void) | undefined {
    const entry = entryFor(range);
    if (!this.#canGrant(entry, this.#waiting.length)) return undefined;
    this.#held.push(entry);
    return this.#releaser(entry);
  }

  /** Runs `work` while holding `range`, and releases it however `work` ends. */
  async with<T>(range: LockRange, work: () => Promise<T>): Promise<T> {
    const release = await this.acquire(range);
    try {
      return await work();
    } finally {
      release();
    }
  }

  #canGrant(entry: Entry, waitersBefore: number): boolean {
    for (const held of this.#held) if (conflicts(held, entry)) return false;
    for (let i = 0; i < waitersBefore; i++) if (conflicts(this.#waiting[i]!, entry)) return false;
    return true;
  }

  #releaser(entry: Entry): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const i = this.#held.indexOf(entry);
      if (i >= 0) this.#held.splice(i, 1);
      this.#wake();
    };
  }

  #wake(): void {
    for (let i = 0; i < this.#waiting.length; ) {
      const waiter = this.#waiting[i]!;
      if (this.#canGrant(waiter, i)) {
        this.#waiting.splice(i, 1);
        this.#held.push(waiter);
        waiter.grant?.();
      } else i++;
    }
  }
}
