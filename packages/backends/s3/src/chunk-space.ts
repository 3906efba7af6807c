import { BackendError, BackendErrorCode } from '@tcmu/backend';
import { ChunkCodec, chunkAad } from './chunk-codec.ts';
import {
  chunkKeyAt,
  chunkListPrefixes,
  parseChunkKeyAt,
  segmentSize,
  type VolumeMetadata,
} from './layout.ts';
import { type SnapshotInfo, volumeIdOf } from './volume-features.ts';
import type { VolumeStore } from './volume-store.ts';

/** The objects of one chunk in one layer: generation → object size (0: tombstone). */
type Generations = Map<number, number>;

/** One volume's chunk objects as seen through a generation cap (the volume itself, or an origin). */
export interface ChunkLayer {
  readonly prefix: string;
  readonly volumeId: string;
  /** Objects of generations above this are invisible. */
  readonly cap: number;
  readonly objects: Map<number, Generations>;
}

/** Lists every chunk object of a volume prefix: chunk number → generation → size. */
export async function listChunkObjects(
  volume: VolumeStore,
  prefix: string,
): Promise<Map<number, Generations>> {
  const pages = await Promise.all(chunkListPrefixes(prefix).map((p) => volume.listAll(p)));
  const objects = new Map<number, Generations>();
  for (const page of pages) {
    for (const object of page) {
      const parsed = parseChunkKeyAt(prefix, object.key);
      if (!parsed) continue;
      const generations = objects.get(parsed.index) ?? new Map<number, number>();
      objects.set(parsed.index, generations);
      generations.set(parsed.generation, object.size);
    }
  }
  return objects;
}

/** The newest generation ≤ cap present, or undefined. */
function visible(generations: Generations | undefined, cap: number): number | undefined {
  if (!generations) return undefined;
  let best: number | undefined;
  for (const g of generations.keys()) if (g <= cap && (best === undefined || g > best)) best = g;
  return best;
}

/**
 * The chunks of a volume as the backend sees them: which object holds chunk `i` (the newest
 * generation up to the current one in the volume itself, else its origin's at the snapshot's
 * generation, and so on up the chain), encoded and decoded by the volume's codec. Writes go to the
 * current generation; objects of older generations that no snapshot needs any more are deleted
 * after a newer one is stored. Calls for one chunk must not overlap (the backend serialises them).
 */
export class ChunkSpace {
  readonly #volume: VolumeStore;
  readonly #chunkSize: number;
  readonly #codec: ChunkCodec;
  readonly #layers: ChunkLayer[];
  #generation: number;
  #snapshots: readonly SnapshotInfo[];

  constructor(init: {
    volume: VolumeStore;
    chunkSize: number;
    codec: ChunkCodec;
    /** [the volume (cap = the generation viewed), its origin, the origin's origin…]. */
    layers: ChunkLayer[];
    generation: number;
    snapshots: readonly SnapshotInfo[];
  }) {
    this.#volume = init.volume;
    this.#chunkSize = init.chunkSize;
    this.#codec = init.codec;
    this.#layers = init.layers;
    this.#generation = init.generation;
    this.#snapshots = init.snapshots;
  }

  get codec(): ChunkCodec {
    return this.#codec;
  }

  get generation(): number {
    return this.#generation;
  }

  /** After a snapshot: new writes go to `generation`; `snapshots` keep their objects. */
  advance(generation: number, snapshots: readonly SnapshotInfo[]): void {
    this.#generation = generation;
    this.#snapshots = snapshots;
    const own = this.#layers[0]!;
    this.#layers[0] = { ...own, cap: generation };
  }

  /** Where chunk `index` comes from: a layer and generation, or undefined (zeros). */
  #resolve(index: number): { layer: ChunkLayer; generation: number; size: number } | undefined {
    for (const layer of this.#layers) {
      const generations = layer.objects.get(index);
      const g = visible(generations, layer.cap);
      if (g !== undefined) return { layer, generation: g, size: generations!.get(g)! };
    }
    return undefined;
  }

  /** Chunk numbers below `count` that hold data (not zeros, not tombstones). */
  stored(count: number): Set<number> {
    const out = new Set<number>();
    const seen = new Set<number>();
    for (const layer of this.#layers) {
      for (const index of layer.objects.keys()) {
        if (index >= count || seen.has(index)) continue;
        const found = this.#resolve(index);
        if (found === undefined) continue;
        seen.add(index);
        if (found.size > 0) out.add(index);
      }
    }
    return out;
  }

  /**
   * The object that holds chunk `index` (its layer, generation, key, and the label errors name it
   * by), or undefined when the chunk reads as zeros. `gone()` records that the object disappeared
   * since the listing (deleted by another process): the chunk then reads as zeros, as format 1 did.
   */
  #locate(index: number) {
    const found = this.#resolve(index);
    if (!found || found.size === 0) return undefined;
    const { layer, generation } = found;
    return {
      layer,
      generation,
      key: chunkKeyAt(layer.prefix, index, generation),
      label: `chunk ${index}${generation ? ` (generation ${generation})` : ''}${layer === this.#layers[0] ? '' : ` of the origin ${layer.prefix}`}`,
      gone: () => layer.objects.get(index)?.delete(generation),
    };
  }

  /** Chunk `index`'s bytes, or null when it reads as zeros. Damage and wrong keys: `TCMU_ERR_BACKEND_READ`. */
  async readChunk(index: number): Promise<Uint8Array | null> {
    const found = this.#locate(index);
    if (!found) return null;
    const { layer, generation, key, label } = found;
    const body = await this.#volume.readChunkObject(key, label);
    if (body === null) {
      found.gone();
      return null;
    }
    if (body.byteLength === 0) return null;
    try {
      return await this.#codec.decode(
        body,
        chunkAad(layer.volumeId, index, generation),
        this.#chunkSize,
        `${this.#volume.where}: ${label}`,
      );
    } catch (error) {
      this.#volume.counters.integrityFailures++;
      throw error;
    }
  }

  /** True when {@link readRange} reads parts of chunks (plain chunks, a store that reads ranges). */
  get rangedReads(): boolean {
    return !this.#codec.active && this.#volume.rangedReads && segmentSize(this.#chunkSize) < this.#chunkSize;
  }

  /**
   * Bytes `[from, to)` of chunk `index` (a copy-free view), or null when it reads as zeros. One ranged
   * GET, checked against the segment MD5s; a chunk stored without them is read whole.
   */
  async readRange(index: number, from: number, to: number): Promise<Uint8Array | null> {
    const found = this.#locate(index);
    if (!found) return null;
    const part = await this.#volume.readChunkRange(found.key, found.label, this.#chunkSize, from, to);
    if (part === null) {
      found.gone();
      return null;
    }
    if (part !== 'unverifiable') return part;
    return (await this.readChunk(index))?.subarray(from, to) ?? null;
  }

  /** Stores chunk `index` in the current generation, then drops older objects no snapshot needs. */
  async writeChunk(index: number, data: Uint8Array): Promise<void> {
    const own = this.#layers[0]!;
    const g = this.#generation;
    const body = await this.#codec.encode(data, chunkAad(own.volumeId, index, g));
    await this.#volume.writeChunkObject(
      chunkKeyAt(own.prefix, index, g),
      `chunk ${index}`,
      body,
      !this.#codec.active,
    );
    this.#record(index, g, body.byteLength);
    await this.#prune(index);
  }

  /** Makes chunk `index` read as zeros: deletes its object, or writes a tombstone over what an older generation or the origin holds. */
  async deleteChunk(index: number): Promise<void> {
    const own = this.#layers[0]!;
    const g = this.#generation;
    const generations = own.objects.get(index);
    const older = [...(generations?.keys() ?? [])].some((h) => h < g);
    const underneath =
      older || this.#layers.slice(1).some((l) => visible(l.objects.get(index), l.cap) !== undefined);
    const key = chunkKeyAt(own.prefix, index, g);
    if (underneath) {
      await this.#volume.writeChunkObject(key, `chunk ${index} (tombstone)`, new Uint8Array(0));
      this.#record(index, g, 0);
      await this.#prune(index);
    } else if (generations?.has(g)) {
      await this.#volume.deleteObject(key, `chunk ${index}`);
      generations.delete(g);
      if (generations.size === 0) own.objects.delete(index);
    }
  }

  #record(index: number, generation: number, size: number): void {
    const own = this.#layers[0]!;
    const generations = own.objects.get(index) ?? new Map<number, number>();
    own.objects.set(index, generations);
    generations.set(generation, size);
  }

  /** Deletes this volume's objects of chunk `index` that neither the current view nor a snapshot sees. */
  async #prune(index: number): Promise<void> {
    const own = this.#layers[0]!;
    const generations = own.objects.get(index);
    if (!generations) return;
    const unneeded = unneededGenerations(generations, this.#generation, this.#snapshots);
    for (const h of unneeded) {
      await this.#volume.deleteObject(chunkKeyAt(own.prefix, index, h), `chunk ${index} (generation ${h})`);
      generations.delete(h);
    }
  }
}

/** Generations of one chunk's objects that neither `current` nor any snapshot sees. */
export function unneededGenerations(
  generations: Generations,
  current: number,
  snapshots: readonly SnapshotInfo[],
): number[] {
  const views = [current, ...snapshots.map((s) => s.generation)];
  const needed = new Set<number>();
  for (const view of views) {
    const g = visible(generations, view);
    if (g !== undefined) needed.add(g);
  }
  return [...generations.keys()].filter((g) => !needed.has(g));
}

/**
 * Builds the chunk space of a volume: lists its objects (and, for a clone, its origins' objects),
 * checks the key of an encrypted volume. `snapshot` views that snapshot (read-only).
 */
export async function openChunkSpace(
  volume: VolumeStore,
  metadata: VolumeMetadata,
  options: { snapshot?: string; key?: Uint8Array },
): Promise<ChunkSpace> {
  const where = volume.where;
  const prefix = volume.location.prefix;
  const volumeId = volumeIdOf(metadata, prefix);
  if (metadata.encryption && !options.key) {
    throw new BackendError(
      BackendErrorCode.Open,
      `${where}: the volume is encrypted; give its key (a key file or the name of an environment variable holding it)`,
    );
  }
  if (!metadata.encryption && options.key) {
    throw new BackendError(
      BackendErrorCode.Open,
      `${where}: a key was given but the volume is not encrypted`,
    );
  }
  const codec = new ChunkCodec({
    compression: metadata.compression ?? 'none',
    ...(options.key ? { key: options.key } : {}),
  });
  if (metadata.encryption && !codec.checkKey(metadata.encryption)) {
    throw new BackendError(
      BackendErrorCode.Open,
      `${where}: the key given is not this volume's key (its key check fails); nothing was read or written`,
    );
  }
  const generation = metadata.generation ?? 0;
  const snapshots = metadata.snapshots ?? [];
  let cap = generation;
  if (options.snapshot !== undefined) {
    const snapshot = snapshots.find((s) => s.name === options.snapshot);
    if (!snapshot) {
      const names = snapshots.map((s) => s.name).join(', ');
      throw new BackendError(
        BackendErrorCode.NotFound,
        `${where}: no snapshot "${options.snapshot}" (${names ? `snapshots: ${names}` : 'the volume has no snapshots'})`,
      );
    }
    cap = snapshot.generation;
  }
  const layers: ChunkLayer[] = [{ prefix, volumeId, cap, objects: await listChunkObjects(volume, prefix) }];
  let origin = metadata.origin;
  const visited = new Set([prefix]);
  while (origin) {
    if (visited.has(origin.prefix)) {
      throw new BackendError(
        BackendErrorCode.Open,
        `${where}: the chain of origins loops at ${origin.prefix}`,
      );
    }
    visited.add(origin.prefix);
    const originStore = volume.sibling(origin.prefix);
    const originMetadata = await originStore.readMetadata();
    if (!originMetadata || !(originMetadata.snapshots ?? []).some((s) => s.name === origin!.snapshot)) {
      throw new BackendError(
        BackendErrorCode.Open,
        `${where}: its origin ${origin.prefix}@${origin.snapshot} is gone; the clone cannot be read`,
      );
    }
    layers.push({
      prefix: origin.prefix,
      volumeId: origin.volumeId,
      cap: origin.generation,
      objects: await listChunkObjects(volume, origin.prefix),
    });
    origin = originMetadata.origin;
  }
  return new ChunkSpace({ volume, chunkSize: metadata.chunkSize, codec, layers, generation, snapshots });
}
