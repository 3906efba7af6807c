import type { ChunkStore, WriteFence } from '@tcmu/backend/filters';
import type { ChunkSpace } from './chunk-space.ts';
import type { VolumeMetadata } from './layout.ts';
import type { WriterLease } from './lease.ts';
import { Semaphore } from './semaphore.ts';
import { withSnapshot } from './snapshot.ts';
import type { SnapshotInfo } from './volume-features.ts';
import type { RequestCounters, VolumeStore } from './volume-store.ts';

/**
 * One S3 volume as a chunk store (the contract of `@tcmu/backend/filters`): whole chunks read,
 * written and deleted through the chunk space (where compression, encryption and the snapshot
 * generations are applied), at most `maxRequests` requests at once; the volume's description
 * (size, snapshots) and the writer lease. No cache, no byte ranges: the filters above bring those.
 */
export class S3ChunkStore implements ChunkStore {
  readonly chunkSize: number;
  readonly #volume: VolumeStore;
  readonly #space: ChunkSpace;
  readonly #lease: WriterLease | undefined;
  readonly #requests: Semaphore;
  /** Chunks that have an object on the server (listed at open, kept up to date). */
  readonly #stored: Set<number>;
  /** The change count when each chunk last started a change: a read older than that learns nothing. */
  readonly #changedAt = new Map<number, number>();
  #changes = 0;
  #metadata: VolumeMetadata;

  constructor(init: {
    volume: VolumeStore;
    space: ChunkSpace;
    metadata: VolumeMetadata;
    stored: Set<number>;
    lease: WriterLease | undefined;
    maxRequests: number;
  }) {
    this.#volume = init.volume;
    this.#space = init.space;
    this.#metadata = init.metadata;
    this.#stored = init.stored;
    this.#lease = init.lease;
    this.#requests = new Semaphore(init.maxRequests);
    this.chunkSize = init.metadata.chunkSize;
    if (init.space.rangedReads) {
      this.readRange = (index, from, to) => this.#requests.run(() => this.#space.readRange(index, from, to));
    }
  }

  /** Part of a chunk in one ranged GET: present for plain chunks (no compression, no encryption). */
  readonly readRange?: (index: number, from: number, to: number) => Promise<Uint8Array | null>;

  get size(): number {
    return this.#metadata.size;
  }

  /** `s3://bucket/prefix`, for messages. */
  get where(): string {
    return this.#volume.where;
  }

  get counters(): Readonly<RequestCounters> {
    return this.#volume.counters;
  }

  get storedChunks(): number {
    return this.#stored.size;
  }

  /** The generation new chunk writes go to (bumped by each snapshot). */
  get generation(): number {
    return this.#space.generation;
  }

  /** The writer lease as the write-back's fence (undefined when open read-only). */
  get fence(): WriteFence | undefined {
    return this.#lease;
  }

  /** The lease's failure, once it is lost (taken over, or not renewed in time). */
  get leaseLost(): Error | undefined {
    return this.#lease?.lost;
  }

  mayHold(index: number): boolean {
    return this.#stored.has(index);
  }

  async readChunk(index: number): Promise<Uint8Array | null> {
    const since = this.#changes;
    const data = await this.#requests.run(() => this.#space.readChunk(index));
    // Nothing there: forget it, unless a change of the chunk started meanwhile.
    if (data === null && (this.#changedAt.get(index) ?? 0) <= since) this.#stored.delete(index);
    return data;
  }

  async writeChunk(index: number, data: Uint8Array): Promise<void> {
    this.#changedAt.set(index, ++this.#changes);
    await this.#requests.run(() => this.#space.writeChunk(index, data));
    this.#stored.add(index);
  }

  async deleteChunk(index: number): Promise<void> {
    this.#changedAt.set(index, ++this.#changes);
    await this.#requests.run(() => this.#space.deleteChunk(index));
    this.#stored.delete(index);
  }

  /** Deletes the chunks past the new end, then records the size (so a later grow reads zeros there). */
  async resize(size: number): Promise<void> {
    const keep = Math.ceil(size / this.chunkSize);
    await Promise.all([...this.#stored].filter((index) => index >= keep).map((i) => this.deleteChunk(i)));
    const metadata = { ...this.#metadata, size };
    await this.#volume.writeMetadata(metadata, false);
    this.#metadata = metadata;
  }

  /**
   * Records snapshot `name` of the current generation in the description and moves new writes to
   * the next generation. The caller has stored every acknowledged write first.
   */
  async snapshot(name: string): Promise<SnapshotInfo> {
    // The description is changed only while the lease holds (as every write is).
    this.#lease?.check();
    const next = withSnapshot(this.#metadata, name, this.#volume.where);
    await this.#volume.writeMetadata(next, false);
    this.#metadata = next;
    this.#space.advance(next.generation ?? 0, next.snapshots ?? []);
    return next.snapshots!.at(-1)!;
  }

  /** Gives the lease back (a clean close). */
  async releaseLease(): Promise<void> {
    await this.#lease?.release();
  }

  /** Stops the lease's renewals and every request: a lease not released expires by itself. */
  async close(): Promise<void> {
    this.#lease?.abandon();
    this.#volume.close();
  }
}
