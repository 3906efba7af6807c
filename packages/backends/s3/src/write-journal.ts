import { type FileHandle, open, rename } from 'node:fs/promises';
import { BackendError, BackendErrorCode } from '@tcmu/backend';
import { md5 } from './layout.ts';

/**
 * The crash-safe cache file (s3backer's `--blockCacheFile` with dirty-block recovery): every
 * acknowledged write, unmap and write-zeroes of the volume is appended here and made durable
 * (fdatasync) before it is acknowledged, so a kill -9 before the upload loses nothing: the next open
 * replays the records in order and uploads them before serving.
 *
 * File: a header `TCMUJNL1` ‖ u32 length ‖ identity (the volume it belongs to), then records
 * `u32 magic` ‖ u8 kind (1 write, 2 zeroes) ‖ u64 offset ‖ u32 length ‖ 16-byte MD5 of the rest ‖
 * data (kind 1). A torn or damaged tail (the crash hit an unacknowledged append) ends the replay.
 * When no chunk is dirty the file is cut back to its header; when it grows past `maxSize` it is
 * rewritten with the dirty data only (compaction).
 */
export interface JournalRecord {
  readonly kind: 'write' | 'zeroes';
  /** Volume offset in bytes. */
  readonly offset: number;
  readonly length: number;
  /** The bytes (kind write). */
  readonly data?: Uint8Array;
}

const fileMagic = Buffer.from('TCMUJNL1');
const recordMagic = 0x4a524543;
const recordHead = 4 + 1 + 8 + 4 + 16;

function encodeRecord(
  kind: 'write' | 'zeroes',
  offset: number,
  length: number,
  data: readonly Uint8Array[],
): Buffer {
  const head = Buffer.alloc(recordHead);
  head.writeUInt32BE(recordMagic, 0);
  head.writeUInt8(kind === 'write' ? 1 : 2, 4);
  head.writeBigUInt64BE(BigInt(offset), 5);
  head.writeUInt32BE(length, 13);
  const body = Buffer.concat([
    head.subarray(4, 17),
    ...data.map((d) => Buffer.from(d.buffer, d.byteOffset, d.byteLength)),
  ]);
  md5(body).copy(head, 17);
  return Buffer.concat([head, body.subarray(13)]);
}

function header(identity: string): Buffer {
  const id = Buffer.from(identity);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(id.length);
  return Buffer.concat([fileMagic, length, id]);
}

/** Parses a journal file's bytes: its identity and the intact records (stops at a torn tail). */
export function parseJournal(bytes: Buffer): { identity: string; records: JournalRecord[] } | undefined {
  if (bytes.length < 12 || !bytes.subarray(0, 8).equals(fileMagic)) return undefined;
  const idLength = bytes.readUInt32BE(8);
  if (bytes.length < 12 + idLength) return undefined;
  const identity = bytes.subarray(12, 12 + idLength).toString();
  const records: JournalRecord[] = [];
  let at = 12 + idLength;
  while (at + recordHead <= bytes.length) {
    if (bytes.readUInt32BE(at) !== recordMagic) break;
    const kind = bytes.readUInt8(at + 4);
    const offset = Number(bytes.readBigUInt64BE(at + 5));
    const length = bytes.readUInt32BE(at + 13);
    const dataLength = kind === 1 ? length : 0;
    if ((kind !== 1 && kind !== 2) || at + recordHead + dataLength > bytes.length) break;
    const body = Buffer.concat([
      bytes.subarray(at + 4, at + 17),
      bytes.subarray(at + recordHead, at + recordHead + dataLength),
    ]);
    if (!md5(body).equals(bytes.subarray(at + 17, at + 33))) break;
    records.push(
      kind === 1
        ? {
            kind: 'write',
            offset,
            length,
            data: bytes.subarray(at + recordHead, at + recordHead + dataLength),
          }
        : { kind: 'zeroes', offset, length },
    );
    at += recordHead + dataLength;
  }
  return { identity, records };
}

export class WriteJournal {
  readonly path: string;
  readonly #identity: string;
  readonly #maxSize: number;
  #file: FileHandle;
  #size: number;
  #queue: Promise<void> = Promise.resolve();
  /** Supplies the dirty data for a compaction (records that rebuild every dirty chunk). */
  #dirtyRecords: (() => JournalRecord[]) | undefined;

  private constructor(path: string, identity: string, file: FileHandle, size: number, maxSize: number) {
    this.path = path;
    this.#identity = identity;
    this.#file = file;
    this.#size = size;
    this.#maxSize = maxSize;
  }

  /**
   * Opens (creating) the journal at `path` for the volume `identity`. Returns the records a crash
   * left to replay. A file of another volume is refused (`TCMU_ERR_BACKEND_OPEN`), never replayed.
   */
  static async open(
    path: string,
    identity: string,
    maxSize: number,
  ): Promise<{ journal: WriteJournal; records: JournalRecord[] }> {
    let file: FileHandle;
    try {
      file = await open(path, 'a+');
    } catch (error) {
      throw new BackendError(
        BackendErrorCode.Open,
        `cannot open the cache file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
    }
    const bytes = await file.readFile();
    await file.close();
    let records: JournalRecord[] = [];
    if (bytes.length > 0) {
      const parsed = parseJournal(bytes);
      if (!parsed) {
        throw new BackendError(
          BackendErrorCode.Open,
          `${path} is not a tcmu cache file; move it away or name another`,
        );
      }
      if (parsed.identity !== identity) {
        throw new BackendError(
          BackendErrorCode.Open,
          `the cache file ${path} holds writes of ${parsed.identity}, not of ${identity}; open that volume with it, or move it away`,
        );
      }
      records = parsed.records;
    }
    const handle = await open(path, 'r+');
    const journal = new WriteJournal(path, identity, handle, bytes.length, maxSize);
    if (bytes.length === 0) await journal.#truncate();
    return { journal, records };
  }

  /** @internal The backend's view of its dirty data, for compaction. */
  setDirtySource(source: () => JournalRecord[]): void {
    this.#dirtyRecords = source;
  }

  /** Appends one operation and makes it durable. Resolves only then: acknowledge the write after. */
  append(
    kind: 'write' | 'zeroes',
    offset: number,
    length: number,
    data: readonly Uint8Array[] = [],
  ): Promise<void> {
    const record = encodeRecord(kind, offset, length, kind === 'write' ? data : []);
    return this.#enqueue(async () => {
      await this.#file.write(record, 0, record.length, this.#size);
      this.#size += record.length;
      await this.#file.datasync();
      if (this.#size > this.#maxSize && this.#dirtyRecords) await this.#compact(this.#dirtyRecords());
    });
  }

  /** Nothing is dirty: drops every record (queued behind the appends already made). */
  checkpoint(): Promise<void> {
    return this.#enqueue(() => this.#truncate());
  }

  async close(): Promise<void> {
    await this.#queue;
    await this.#file.close();
  }

  get size(): number {
    return this.#size;
  }

  #enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(task);
    this.#queue = run.catch(() => {});
    return run.catch((error: unknown) => {
      throw new BackendError(
        BackendErrorCode.Write,
        `the cache file ${this.path} could not store the write: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
        { cause: error },
      );
    });
  }

  async #truncate(): Promise<void> {
    const head = header(this.#identity);
    if (this.#size === head.length) return;
    await this.#file.truncate(0);
    await this.#file.write(head, 0, head.length, 0);
    await this.#file.datasync();
    this.#size = head.length;
  }

  /** Rewrites the file with `records` only (a new file renamed over the old one). */
  async #compact(records: JournalRecord[]): Promise<void> {
    const parts = [header(this.#identity)];
    for (const r of records) parts.push(encodeRecord(r.kind, r.offset, r.length, r.data ? [r.data] : []));
    const bytes = Buffer.concat(parts);
    const temporary = `${this.path}.compact`;
    const next = await open(temporary, 'w+');
    await next.write(bytes, 0, bytes.length, 0);
    await next.datasync();
    await rename(temporary, this.path);
    await this.#file.close();
    this.#file = next;
    this.#size = bytes.length;
  }
}
