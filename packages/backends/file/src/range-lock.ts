/**
 * Byte-range locks inside one process, first come first served. `shared` holders of overlapping
 * ranges run together; an `exclusive` holder excludes every overlapping holder. An entry waits only
 * for EARLIER overlapping entries that conflict with it, so there is no starvation and no deadlock.
 */
export class RangeLock {
  readonly #entries = new Set<Entry>();

  async acquire(offset: number, length: number, exclusive: boolean): Promise<() => void> {
    const end = offset + Math.max(length, 1);
    const waits: Promise<void>[] = [];
    for (const other of this.#entries) {
      if ((exclusive || other.exclusive) && other.offset < end && offset < other.end)
        waits.push(other.released);
    }
    let release!: () => void;
    const entry: Entry = {
      offset,
      end,
      exclusive,
      released: new Promise<void>((resolve) => {
        release = resolve;
      }),
    };
    this.#entries.add(entry);
    if (waits.length > 0) await Promise.all(waits);
    return () => {
      this.#entries.delete(entry);
      release();
    };
  }
}

interface Entry {
  readonly offset: number;
  readonly end: number;
  readonly exclusive: boolean;
  readonly released: Promise<void>;
}
