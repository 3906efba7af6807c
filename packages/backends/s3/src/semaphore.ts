/** A FIFO counting semaphore: at most `limit` holders at once. */
export class Semaphore {
  readonly limit: number;
  #held = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Number of current holders. */
  get held(): number {
    return this.#held;
  }

  /** Resolves once a slot is held; call `release()` exactly once afterwards. */
  acquire(): Promise<void> {
    if (this.#held < this.limit) {
      this.#held++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#held--;
  }

  /** Runs `task` holding a slot. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await task();
    } finally {
      this.release();
    }
  }
}
