import { rename, writeFile } from 'node:fs/promises';

/**
 * s3backer's stats file: writes `read()` as one JSON object (plus `time`) to `path` every `interval`
 * ms and once more at stop. Each write goes to `path.tmp` first and is renamed over `path`, so a
 * reader never sees a half-written file. A failed write is reported once to `onError` and retried at
 * the next tick.
 */
export class StatsFileWriter {
  readonly #path: string;
  readonly #interval: number;
  readonly #read: () => object;
  readonly #onError: (error: Error) => void;
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();
  #failed = false;

  constructor(
    path: string,
    interval: number,
    read: () => object,
    onError: (error: Error) => void = () => {},
  ) {
    this.#path = path;
    this.#interval = Math.max(100, interval);
    this.#read = read;
    this.#onError = onError;
  }

  start(): void {
    this.#timer = setInterval(() => {
      this.write();
    }, this.#interval);
    this.#timer.unref();
    this.write();
  }

  /** Writes the current figures now (writes never overlap). */
  write(): Promise<void> {
    this.#writing = this.#writing.then(async () => {
      try {
        const text = `${JSON.stringify({ time: new Date().toISOString(), ...this.#read() })}\n`;
        await writeFile(`${this.#path}.tmp`, text);
        await rename(`${this.#path}.tmp`, this.#path);
        this.#failed = false;
      } catch (error) {
        if (!this.#failed) this.#onError(error as Error);
        this.#failed = true;
      }
    });
    return this.#writing;
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.write();
  }
}
