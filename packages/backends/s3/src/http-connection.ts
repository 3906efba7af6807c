import { connect, type Socket } from 'node:net';

/**
 * HTTP/1.1 over plain TCP for S3 endpoints on `http:`, one exchange per connection at a time, kept
 * alive in a pool. A response body of known length is read by the kernel straight into the buffer
 * that is returned (net.Socket's `onread` with a buffer per read): no 64 KiB pieces, no stream
 * events, no copy. Under emulation this GETs a 1 MiB chunk with about a third of the CPU of
 * node:http (docs/performance.md, "S3"). `https:` endpoints use node:https (a TLS socket has no
 * `onread`).
 */

/** One request as sent: the path with its query, every header (names in lower case). */
export interface Exchange {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: Uint8Array;
  readonly signal: AbortSignal;
}

/** One answer, whole. Header names in lower case; repeated headers joined with `, `. */
export interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

export interface SocketPoolOptions {
  readonly host: string;
  readonly port: number;
  readonly maxSockets: number;
  /** No byte for this long during an exchange: it fails with ETIMEDOUT. Default 30 000. */
  readonly timeoutMs?: number;
  /** An idle connection is closed after this long (before a server closes it under a request). Default 4000. */
  readonly idleMs?: number;
}

const scratchSize = 64 * 1024;
const maxHeadBytes = 64 * 1024;

const failure = (message: string, code: string) => Object.assign(new Error(message), { code });

type Phase =
  | { kind: 'head' }
  | { kind: 'length'; body: Buffer; at: number }
  | { kind: 'chunked'; decoder: ChunkedDecoder }
  | { kind: 'close'; pieces: Buffer[]; length: number };

interface Pending {
  readonly method: string;
  readonly resolve: (answer: RawAnswer) => void;
  readonly reject: (error: Error) => void;
  status: number;
  headers: Record<string, string>;
  keepAlive: boolean;
  phase: Phase;
}

/** Decodes `Transfer-Encoding: chunked` bytes as they arrive. */
class ChunkedDecoder {
  #state: 'size' | 'data' | 'data-end' | 'trailer' | 'done' = 'size';
  #line = '';
  #left = 0;
  readonly pieces: Buffer[] = [];
  length = 0;

  get done(): boolean {
    return this.#state === 'done';
  }

  /** Feeds bytes; returns how many were used (the rest follow the message). Throws on bad framing. */
  feed(bytes: Buffer): number {
    let at = 0;
    while (at < bytes.length && this.#state !== 'done') {
      if (this.#state === 'data') {
        const take = Math.min(this.#left, bytes.length - at);
        this.pieces.push(Buffer.from(bytes.subarray(at, at + take)));
        this.length += take;
        this.#left -= take;
        at += take;
        if (this.#left === 0) this.#state = 'data-end';
        continue;
      }
      const newline = bytes.indexOf(10, at);
      const end = newline < 0 ? bytes.length : newline + 1;
      this.#line += bytes.toString('latin1', at, end);
      at = end;
      if (this.#line.length > 4096)
        throw failure('a chunk header line is too long', 'HPE_INVALID_CHUNK_SIZE');
      if (newline < 0) break;
      const line = this.#line.replace(/\r?\n$/, '');
      this.#line = '';
      if (this.#state === 'size') {
        const size = Number.parseInt(line.split(';')[0]!.trim(), 16);
        if (!Number.isSafeInteger(size) || size < 0)
          throw failure(`bad chunk size "${line}"`, 'HPE_INVALID_CHUNK_SIZE');
        this.#left = size;
        this.#state = size === 0 ? 'trailer' : 'data';
      } else if (this.#state === 'data-end') {
        if (line !== '') throw failure('a chunk does not end with CRLF', 'HPE_INVALID_CHUNK_SIZE');
        this.#state = 'size';
      } else if (line === '') this.#state = 'done';
    }
    return at;
  }
}

/** One keep-alive connection. */
class Connection {
  readonly #socket: Socket;
  readonly #scratch = Buffer.allocUnsafe(scratchSize);
  readonly #pool: SocketPool;
  #head: Buffer[] = [];
  #headLength = 0;
  #pending: Pending | undefined;
  #closed = false;
  #idleTimer: NodeJS.Timeout | undefined;

  constructor(pool: SocketPool, options: SocketPoolOptions) {
    this.#pool = pool;
    this.#socket = connect({
      host: options.host,
      port: options.port,
      noDelay: true,
      onread: {
        buffer: () => {
          const phase = this.#pending?.phase;
          return phase?.kind === 'length' ? phase.body.subarray(phase.at) : this.#scratch;
        },
        callback: (length, buffer) => {
          try {
            this.#received(length, buffer as Buffer);
          } catch (error) {
            this.#socket.destroy(error as Error);
          }
          return true;
        },
      },
    });
    this.#socket.on('timeout', () =>
      this.#socket.destroy(
        this.#pending
          ? failure(`no answer for ${(options.timeoutMs ?? 30_000) / 1000} s`, 'ETIMEDOUT')
          : undefined,
      ),
    );
    this.#socket.on('error', (error) => this.#fail(error));
    this.#socket.on('end', () => {
      const phase = this.#pending?.phase;
      if (phase?.kind === 'close') this.#finish(Buffer.concat(phase.pieces, phase.length));
      this.#socket.destroy();
    });
    this.#socket.on('close', () => {
      this.#closed = true;
      clearTimeout(this.#idleTimer);
      this.#fail(failure('the server closed the connection before it answered', 'ECONNRESET'));
      this.#pool.closed(this);
    });
  }

  /** Closed, or on its way to closing (destroyed, its 'close' event not yet emitted). */
  get closed(): boolean {
    return this.#closed || this.#socket.destroyed;
  }

  exchange(exchange: Exchange, timeoutMs: number): Promise<RawAnswer> {
    clearTimeout(this.#idleTimer);
    this.#socket.ref();
    return new Promise<RawAnswer>((resolve, reject) => {
      const onAbort = () => this.#socket.destroy(Object.assign(new Error('aborted'), { name: 'AbortError' }));
      const done = () => exchange.signal.removeEventListener('abort', onAbort);
      this.#pending = {
        method: exchange.method,
        resolve: (answer) => {
          done();
          resolve(answer);
        },
        reject: (error) => {
          done();
          reject(error);
        },
        status: 0,
        headers: {},
        keepAlive: true,
        phase: { kind: 'head' },
      };
      exchange.signal.addEventListener('abort', onAbort, { once: true });
      let head = `${exchange.method} ${exchange.path} HTTP/1.1\r\n`;
      for (const [name, value] of Object.entries(exchange.headers)) {
        if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) {
          this.#fail(new TypeError(`header ${name} holds a line break`));
          this.#socket.destroy();
          return;
        }
        head += `${name}: ${value}\r\n`;
      }
      head += '\r\n';
      this.#socket.setTimeout(timeoutMs);
      this.#socket.cork();
      this.#socket.write(head, 'latin1');
      if (exchange.body !== undefined && exchange.body.byteLength > 0) this.#socket.write(exchange.body);
      this.#socket.uncork();
    });
  }

  /** Idle in the pool: closed after `idleMs` unless used again; does not hold the process open. */
  idle(idleMs: number): void {
    this.#socket.setTimeout(0);
    // An idle connection does not keep the process alive (as node:http's agent does).
    this.#socket.unref();
    this.#idleTimer = setTimeout(() => this.#socket.destroy(), idleMs);
    this.#idleTimer.unref();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  #received(length: number, buffer: Buffer): void {
    const pending = this.#pending;
    if (pending === undefined) throw failure('the server sent bytes nobody asked for', 'ECONNRESET');
    const phase = pending.phase;
    if (phase.kind === 'length' && buffer !== this.#scratch) {
      phase.at += length;
      if (phase.at === phase.body.byteLength) this.#finish(phase.body);
      return;
    }
    let bytes = buffer.subarray(0, length);
    if (phase.kind === 'head') {
      this.#head.push(Buffer.from(bytes));
      this.#headLength += bytes.length;
      const all = this.#head.length === 1 ? this.#head[0]! : Buffer.concat(this.#head, this.#headLength);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) {
        if (this.#headLength > maxHeadBytes)
          throw failure('the answer head is too long', 'HPE_HEADER_OVERFLOW');
        this.#head = [all];
        return;
      }
      this.#head = [];
      this.#headLength = 0;
      this.#parseHead(pending, all.toString('latin1', 0, end));
      bytes = all.subarray(end + 4);
      if (pending.phase.kind === 'head') return; // finished without a body
    }
    this.#body(pending, bytes);
  }

  #parseHead(pending: Pending, text: string): void {
    const lines = text.split('\r\n');
    const status = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0]!);
    if (!status) throw failure(`not an HTTP/1.x answer: ${lines[0]!.slice(0, 80)}`, 'HPE_INVALID_CONSTANT');
    pending.status = Number(status[2]);
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      pending.headers[name] = name in pending.headers ? `${pending.headers[name]}, ${value}` : value;
    }
    const connection = pending.headers.connection?.toLowerCase() ?? '';
    pending.keepAlive = status[1] === '1' ? !connection.includes('close') : connection.includes('keep-alive');
    if (pending.status === 100) {
      // 100 Continue: the real answer follows.
      pending.status = 0;
      pending.headers = {};
      return;
    }
    const length = pending.headers['content-length'];
    if (pending.method === 'HEAD' || pending.status === 204 || pending.status === 304) {
      this.#finish(Buffer.alloc(0));
    } else if (/chunked/i.test(pending.headers['transfer-encoding'] ?? '')) {
      pending.phase = { kind: 'chunked', decoder: new ChunkedDecoder() };
    } else if (length !== undefined) {
      const size = Number(length);
      if (!Number.isSafeInteger(size) || size < 0)
        throw failure(`bad Content-Length ${length}`, 'HPE_INVALID_CONTENT_LENGTH');
      if (size === 0) this.#finish(Buffer.alloc(0));
      else pending.phase = { kind: 'length', body: Buffer.allocUnsafe(size), at: 0 };
    } else {
      pending.keepAlive = false;
      pending.phase = { kind: 'close', pieces: [], length: 0 };
    }
  }

  #body(pending: Pending, bytes: Buffer): void {
    if (bytes.length === 0) return;
    const phase = pending.phase;
    if (phase.kind === 'length') {
      const take = Math.min(bytes.length, phase.body.byteLength - phase.at);
      bytes.copy(phase.body, phase.at, 0, take);
      phase.at += take;
      if (take < bytes.length) throw failure('the server sent more than its Content-Length', 'ECONNRESET');
      if (phase.at === phase.body.byteLength) this.#finish(phase.body);
    } else if (phase.kind === 'chunked') {
      const used = phase.decoder.feed(bytes);
      if (phase.decoder.done) {
        if (used < bytes.length) throw failure('the server sent bytes after its answer', 'ECONNRESET');
        this.#finish(Buffer.concat(phase.decoder.pieces, phase.decoder.length));
      }
    } else if (phase.kind === 'close') {
      phase.pieces.push(Buffer.from(bytes));
      phase.length += bytes.length;
    } else {
      throw failure('the server sent bytes nobody asked for', 'ECONNRESET');
    }
  }

  #finish(body: Buffer): void {
    const pending = this.#pending!;
    this.#pending = undefined;
    pending.resolve({ status: pending.status, headers: pending.headers, body });
    if (pending.keepAlive && !this.#closed) this.#pool.release(this);
    else this.#socket.destroy();
  }

  #fail(error: Error): void {
    const pending = this.#pending;
    if (pending === undefined) return;
    this.#pending = undefined;
    pending.reject(error);
  }
}

/** Keep-alive connections to one host: at most `maxSockets`, requests wait in order beyond that. */
export class SocketPool {
  readonly #options: SocketPoolOptions;
  readonly #idle: Connection[] = [];
  readonly #waiting: ((connection: Connection | undefined) => void)[] = [];
  #open = 0;
  #closed = false;

  constructor(options: SocketPoolOptions) {
    this.#options = options;
  }

  async exchange(exchange: Exchange): Promise<RawAnswer> {
    exchange.signal.throwIfAborted();
    if (this.#closed) throw failure('the connection pool is closed', 'ECONNABORTED');
    const connection = await this.#acquire(exchange.signal);
    return connection.exchange(exchange, this.#options.timeoutMs ?? 30_000);
  }

  #acquire(signal: AbortSignal): Promise<Connection> {
    for (let connection = this.#idle.pop(); connection; connection = this.#idle.pop()) {
      if (!connection.closed) return Promise.resolve(connection);
    }
    if (this.#open < this.#options.maxSockets) {
      this.#open++;
      return Promise.resolve(new Connection(this, this.#options));
    }
    return new Promise<Connection>((resolve, reject) => {
      const take = (connection: Connection | undefined) => {
        signal.removeEventListener('abort', onAbort);
        if (connection) resolve(connection);
        else this.#acquire(signal).then(resolve, reject);
      };
      const onAbort = () => {
        this.#waiting.splice(this.#waiting.indexOf(take), 1);
        reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(take);
    });
  }

  /** A connection finished its exchange and stays open. */
  release(connection: Connection): void {
    const next = this.#waiting.shift();
    if (next) next(connection);
    else if (this.#closed) connection.destroy();
    else {
      connection.idle(this.#options.idleMs ?? 4000);
      this.#idle.push(connection);
    }
  }

  /** A connection closed: its place can be taken. */
  closed(connection: Connection): void {
    this.#open--;
    const at = this.#idle.indexOf(connection);
    if (at >= 0) this.#idle.splice(at, 1);
    this.#waiting.shift()?.(undefined);
  }

  close(): void {
    this.#closed = true;
    for (const connection of this.#idle.splice(0)) connection.destroy();
  }
}
