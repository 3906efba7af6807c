/**
 * Exclusive locks on ranges of logical blocks, granted in arrival order.
 *
 * Every command that changes the medium (WRITE*, WRITE SAME, UNMAP, COMPARE AND WRITE, FORMAT UNIT)
 * holds the lock on its range while it runs, so COMPARE AND WRITE is atomic against other writes to
 * the same blocks. Non-overlapping ranges never wait on each other. A waiter is granted only when no
 * held range and no earlier waiter overlaps it (no starvation, no reordering of overlapping writes).
 */
export interface BlockRange {
  /** First logical block. */
  readonly lba: bigint;
  /** Number of blocks; 0 locks nothing and is granted at once. */
  readonly blocks: bigint;
}

interface Entry extends BlockRange {
  grant?: () => void;
}

const overlaps = (a: BlockRange, b: BlockRange) =>
  a.blocks > 0n && b.blocks > 0n && a.lba < b.lba + b.blocks && b.lba < a.lba + a.blocks;

export class RangeLock {
  #held: Entry[] = [];
  #waiting: Entry[] = [];

  /** Ranges currently held (for stats and tests). */
  get heldCount(): number {
    return this.#held.length;
  }

  /** Commands waiting for a range. */
  get waitingCount(): number {
    return this.#waiting.length;
  }

  /**
   * Resolves with a release function once the range is held. Call release exactly once (extra calls
   * are ignored). Whole-medium operations pass `{ lba: 0n, blocks: <capacity> }`.
   */
  acquire(range: BlockRange): Promise<() => void> {
    const entry: Entry = { lba: range.lba, blocks: range.blocks };
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

  /** Runs `work` while holding `range`. */
  async with<T>(range: BlockRange, work: () => Promise<T>): Promise<T> {
    const release = await this.acquire(range);
    try {
      return await work();
    } finally {
      release();
    }
  }

  #canGrant(entry: Entry, waitersBefore: number): boolean {
    if (this.#held.some((h) => overlaps(h, entry))) return false;
    for (let i = 0; i < waitersBefore; i++) if (overlaps(this.#waiting[i]!, entry)) return false;
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
      const w = this.#waiting[i]!;
      if (this.#canGrant(w, i)) {
        this.#waiting.splice(i, 1);
        this.#held.push(w);
        w.grant?.();
      } else i++;
    }
  }
}
