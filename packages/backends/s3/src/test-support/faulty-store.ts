// Fault injection in front of the REAL object store: the server stays real, the network misbehaves.
import { classifyError, type ObjectStore, type PutOptions } from '../object-store.ts';

export class FaultyStore implements ObjectStore {
  /** Every call fails (connection refused) while true. */
  down = false;
  /** The next N calls fail with a connection reset. */
  failNext = 0;
  /** Every Nth call answers 503 SlowDown (0: never). */
  throttleEvery = 0;
  /** GET bodies arrive with one byte flipped. */
  corruptReads = false;
  calls = 0;
  faults = 0;
  readonly inner: ObjectStore;

  constructor(inner: ObjectStore) {
    this.inner = inner;
  }

  #fault(operation: string, key: string): void {
    this.calls++;
    if (this.down) {
      this.faults++;
      throw classifyError(
        operation,
        key,
        Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:7480'), { code: 'ECONNREFUSED' }),
      );
    }
    if (this.failNext > 0) {
      this.failNext--;
      this.faults++;
      throw classifyError(
        operation,
        key,
        Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
      );
    }
    if (this.throttleEvery > 0 && this.calls % this.throttleEvery === 0) {
      this.faults++;
      throw classifyError(operation, key, {
        name: 'SlowDown',
        message: 'Please reduce your request rate.',
        $metadata: { httpStatusCode: 503 },
      });
    }
  }

  async get(key: string, signal: AbortSignal) {
    this.#fault('GET', key);
    const object = await this.inner.get(key, signal);
    if (object && this.corruptReads && object.body.byteLength > 0) {
      const body = object.body.slice();
      body[body.byteLength >> 1]! ^= 0x40;
      return { body, metadata: object.metadata };
    }
    return object;
  }

  async getRange(key: string, from: number, to: number, signal: AbortSignal) {
    this.#fault('GET', key);
    const object = await this.inner.getRange!(key, from, to, signal);
    if (object && this.corruptReads && object.body.byteLength > 0) {
      const body = object.body.slice();
      body[body.byteLength >> 1]! ^= 0x40;
      return { body, metadata: object.metadata };
    }
    return object;
  }

  async head(key: string, signal: AbortSignal) {
    this.#fault('HEAD', key);
    return this.inner.head(key, signal);
  }

  async put(key: string, body: Uint8Array, options: PutOptions, signal: AbortSignal) {
    this.#fault('PUT', key);
    return this.inner.put(key, body, options, signal);
  }

  async delete(key: string, signal: AbortSignal) {
    this.#fault('DELETE', key);
    return this.inner.delete(key, signal);
  }

  async deleteMany(keys: readonly string[], signal: AbortSignal) {
    this.#fault('DELETE', keys[0] ?? '');
    return this.inner.deleteMany(keys, signal);
  }

  async listPage(prefix: string, continuation: string | undefined, signal: AbortSignal) {
    this.#fault('LIST', prefix);
    return this.inner.listPage(prefix, continuation, signal);
  }

  close(): void {
    this.inner.close();
  }
}
