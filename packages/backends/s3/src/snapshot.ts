import { randomUUID } from 'node:crypto';
import { BackendError, BackendErrorCode } from '@tcmu/backend';
import { listChunkObjects, unneededGenerations } from './chunk-space.ts';
import { chunkKeyAt, formatName, type VolumeMetadata } from './layout.ts';
import { defaultLeaseDuration, isDeadLocalHolder, WriterLease } from './lease.ts';
import { normalizeLocation } from './url.ts';
import {
  checkSnapshotName,
  clonesFolder,
  featuresFormatVersion,
  replyName,
  requestName,
  type SnapshotInfo,
  volumeIdOf,
} from './volume-features.ts';
import type { VolumeStore } from './volume-store.ts';

/** The description after taking snapshot `name`: it freezes the current generation; writes go to the next. */
export function withSnapshot(metadata: VolumeMetadata, name: string, where: string): VolumeMetadata {
  checkSnapshotName(name);
  const snapshots = metadata.snapshots ?? [];
  if (snapshots.some((s) => s.name === name)) {
    throw new BackendError(BackendErrorCode.InvalidArgument, `${where}: a snapshot "${name}" exists already`);
  }
  const generation = metadata.generation ?? 0;
  const snapshot: SnapshotInfo = { name, generation, created: new Date().toISOString(), size: metadata.size };
  return {
    ...metadata,
    version: featuresFormatVersion,
    generation: generation + 1,
    snapshots: [...snapshots, snapshot],
  };
}

/** A request to the process serving a volume read-write, and its answer. */
export interface ControlRequest {
  readonly id: string;
  readonly action: 'snapshot';
  readonly name: string;
}
export interface ControlReply {
  readonly id: string;
  readonly ok: boolean;
  readonly message?: string;
  readonly snapshot?: SnapshotInfo;
}

/**
 * Runs in the serving process: every `interval` ms looks for `tcmu-request.json`, deletes it, hands
 * it to `handle`, and writes the answer as `tcmu-reply-ID.json`. One GET per interval while idle.
 */
export class ControlPoller {
  readonly #volume: VolumeStore;
  readonly #handle: (request: ControlRequest) => Promise<SnapshotInfo>;
  readonly #interval: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(
    volume: VolumeStore,
    interval: number,
    handle: (request: ControlRequest) => Promise<SnapshotInfo>,
  ) {
    this.#volume = volume;
    this.#interval = interval;
    this.#handle = handle;
  }

  start(): void {
    if (this.#interval <= 0 || this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.#poll().finally(() => {
        this.#running = undefined;
        this.start();
      });
    }, this.#interval);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
  }

  async #poll(): Promise<void> {
    let request: ControlRequest;
    try {
      const body = await this.#volume.getFile(requestName);
      if (body === null || this.#stopped) return;
      request = JSON.parse(Buffer.from(body).toString('utf8')) as ControlRequest;
      await this.#volume.deleteObject(`${this.#volume.location.prefix}${requestName}`, requestName);
    } catch {
      return; // unreadable or unreachable now: the next poll tries again
    }
    let reply: ControlReply;
    try {
      if (request.action !== 'snapshot' || typeof request.name !== 'string') {
        throw new Error(`unknown request ${JSON.stringify(request.action)}`);
      }
      reply = { id: String(request.id), ok: true, snapshot: await this.#handle(request) };
    } catch (error) {
      reply = { id: String(request.id), ok: false, message: (error as Error).message };
    }
    await this.#volume
      .putFile(replyName(reply.id), Buffer.from(`${JSON.stringify(reply)}\n`))
      .catch(() => {});
  }
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Holds the lease for `body` (the volume must not be served read-write: `TCMU_ERR_BACKEND_LOCKED`
 * while another process holds it; a dead local holder's lease is taken over), releasing it after.
 * The description is changed only while the lease still holds.
 */
async function underLease<T>(volume: VolumeStore, body: () => Promise<T>): Promise<T> {
  const lease = await WriterLease.acquire(volume, { duration: defaultLeaseDuration, force: false });
  try {
    const result = await body();
    lease.check();
    return result;
  } finally {
    await lease.release().catch(() => {});
  }
}

/**
 * Takes snapshot `name` of a volume. Not served: under the lease, the description is rewritten (no
 * data is copied). Served read-write: the serving process is asked (`tcmu-request.json`); it stops
 * admitting writes, flushes, records the snapshot, and answers; this waits up to `timeout` ms.
 */
export async function takeSnapshot(
  volume: VolumeStore,
  name: string,
  timeout = 30_000,
): Promise<SnapshotInfo> {
  checkSnapshotName(name);
  const where = volume.where;
  const metadata = await volume.readMetadata();
  if (!metadata) throw new BackendError(BackendErrorCode.NotFound, `${where}: no volume there`);
  if (metadata.snapshots?.some((s) => s.name === name)) {
    throw new BackendError(BackendErrorCode.InvalidArgument, `${where}: a snapshot "${name}" exists already`);
  }
  const holder = await volume.readLease();
  // Nobody serves it (no lease, or the lease of a process of this machine that is gone): change it here.
  if (!holder || isDeadLocalHolder(holder)) {
    return underLease(volume, async () => {
      const current = await volume.readMetadata();
      if (!current) throw new BackendError(BackendErrorCode.NotFound, `${where}: no volume there`);
      const next = withSnapshot(current, name, where);
      await volume.writeMetadata(next, false);
      return next.snapshots!.at(-1)!;
    });
  }
  const id = randomUUID();
  const request: ControlRequest = { id, action: 'snapshot', name };
  if (!(await volume.putFile(requestName, Buffer.from(`${JSON.stringify(request)}\n`), true))) {
    throw new BackendError(
      BackendErrorCode.Locked,
      `${where}: another request to its server is pending (${requestName}); try again`,
    );
  }
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    await sleep(200);
    const body = await volume.getFile(replyName(id));
    if (body === null) continue;
    await volume.deleteObject(`${volume.location.prefix}${replyName(id)}`, 'the reply').catch(() => {});
    const reply = JSON.parse(Buffer.from(body).toString('utf8')) as ControlReply;
    if (!reply.ok || !reply.snapshot) {
      throw new BackendError(
        BackendErrorCode.Write,
        `${where}: the server refused the snapshot: ${reply.message}`,
      );
    }
    return reply.snapshot;
  }
  await volume.deleteObject(`${volume.location.prefix}${requestName}`, requestName).catch(() => {});
  throw new BackendError(
    BackendErrorCode.Locked,
    `${where} is served read-write by process ${holder.pid} on ${holder.host}, which did not answer the snapshot request within ${timeout / 1000} s (a server without snapshot support, or stopped); no snapshot was taken`,
  );
}

/** A clone's marker in its origin: `P/tcmu-clones/SNAP/encodeURIComponent(clone prefix)`. */
function markerName(snapshot: string, clonePrefix: string): string {
  return `${clonesFolder}${snapshot}/${encodeURIComponent(clonePrefix)}`;
}

/** The clones that still read this volume's snapshots (stale markers of deleted clones are removed). */
export async function liveClones(
  volume: VolumeStore,
  snapshot?: string,
): Promise<{ snapshot: string; prefix: string }[]> {
  const base = `${volume.location.prefix}${clonesFolder}`;
  const markers = await volume.listAll(snapshot === undefined ? base : `${base}${snapshot}/`);
  const live: { snapshot: string; prefix: string }[] = [];
  for (const { key } of markers) {
    const [snap, encoded] = key.slice(base.length).split('/');
    if (!snap || !encoded) continue;
    const prefix = decodeURIComponent(encoded);
    const metadata = await volume
      .sibling(prefix)
      .readMetadata()
      .catch(() => undefined);
    if (metadata?.origin?.prefix === volume.location.prefix && metadata.origin.snapshot === snap) {
      live.push({ snapshot: snap, prefix });
    } else if (metadata === null) {
      await volume.deleteObject(key, 'a stale clone marker').catch(() => {});
    }
  }
  return live;
}

/**
 * Creates a clone of `volume@snapshot` at `targetPrefix` in the same bucket: a description whose
 * origin is the snapshot (no data copied). The origin gets a marker so that deleting the snapshot
 * or the volume is refused while the clone exists.
 */
export async function cloneSnapshot(
  volume: VolumeStore,
  snapshot: string,
  targetPrefix: string,
): Promise<VolumeMetadata> {
  const where = volume.where;
  // The same checks as any volume's prefix (no `.`/`..` segments, no control characters).
  const target = normalizeLocation({ bucket: volume.location.bucket, prefix: targetPrefix }).prefix;
  const metadata = await volume.readMetadata();
  if (!metadata) throw new BackendError(BackendErrorCode.NotFound, `${where}: no volume there`);
  const found = metadata.snapshots?.find((s) => s.name === snapshot);
  if (!found) {
    throw new BackendError(BackendErrorCode.NotFound, `${where}: no snapshot "${snapshot}"`);
  }
  if (
    target === volume.location.prefix ||
    target.startsWith(volume.location.prefix) ||
    volume.location.prefix.startsWith(target)
  ) {
    throw new BackendError(
      BackendErrorCode.InvalidArgument,
      `${where}: a clone cannot be inside its origin or hold it`,
    );
  }
  const clone: VolumeMetadata = {
    format: formatName,
    version: featuresFormatVersion,
    size: found.size ?? metadata.size,
    chunkSize: metadata.chunkSize,
    blockSize: metadata.blockSize,
    created: new Date().toISOString(),
    volumeId: randomUUID(),
    generation: 0,
    snapshots: [],
    origin: {
      prefix: volume.location.prefix,
      snapshot,
      generation: found.generation,
      volumeId: volumeIdOf(metadata, volume.location.prefix),
    },
    ...(metadata.compression ? { compression: metadata.compression } : {}),
    ...(metadata.encryption ? { encryption: metadata.encryption } : {}),
  };
  // Volumes never nest (s3safe's rule): nor may a clone sit inside or around another volume.
  const cloneStore = volume.sibling(target);
  await cloneStore.checkNotNested();
  // The marker first: a clone never exists without it (a marker without a clone is cleaned up later).
  await volume.putFile(markerName(snapshot, target), Buffer.from(`${JSON.stringify({ prefix: target })}\n`));
  await cloneStore.writeMetadata(clone, true);
  return clone;
}

/**
 * Deletes snapshot `name` and the chunk objects only it needed. Refused while a clone reads it, and
 * while the volume is served read-write (the lease is taken for the change).
 */
export async function deleteSnapshot(volume: VolumeStore, name: string): Promise<{ objectsDeleted: number }> {
  const where = volume.where;
  const clones = await liveClones(volume, name);
  if (clones.length > 0) {
    throw new BackendError(
      BackendErrorCode.Locked,
      `${where}@${name} is the origin of ${clones.map((c) => `s3://${volume.location.bucket}/${c.prefix}`).join(', ')}: those clones read its chunks; delete them first`,
    );
  }
  return underLease(volume, async () => {
    const metadata = await volume.readMetadata();
    if (!metadata) throw new BackendError(BackendErrorCode.NotFound, `${where}: no volume there`);
    const snapshots = metadata.snapshots ?? [];
    if (!snapshots.some((s) => s.name === name)) {
      throw new BackendError(BackendErrorCode.NotFound, `${where}: no snapshot "${name}"`);
    }
    const remaining = snapshots.filter((s) => s.name !== name);
    await volume.writeMetadata({ ...metadata, snapshots: remaining }, false);
    const prefix = volume.location.prefix;
    const objects = await listChunkObjects(volume, prefix);
    const keys: string[] = [];
    for (const [index, generations] of objects) {
      for (const g of unneededGenerations(generations, metadata.generation ?? 0, remaining)) {
        keys.push(chunkKeyAt(prefix, index, g));
      }
    }
    await volume.deleteKeys(keys);
    return { objectsDeleted: keys.length };
  });
}

/**
 * Checks before a volume is deleted: refused while clones read its snapshots. Returns what to run
 * after the delete (a clone's marker in its origin is removed). `metadata`: null when there is none.
 */
export async function beforeVolumeDelete(
  volume: VolumeStore,
  metadata: VolumeMetadata | null,
): Promise<() => Promise<void>> {
  const clones = await liveClones(volume);
  if (clones.length > 0) {
    throw new BackendError(
      BackendErrorCode.Locked,
      `${volume.where} has clones that read its chunks (${clones.map((c) => `s3://${volume.location.bucket}/${c.prefix} from @${c.snapshot}`).join(', ')}); delete them first`,
    );
  }
  const origin = metadata?.origin;
  return async () => {
    if (!origin) return;
    const marker = `${origin.prefix}${markerName(origin.snapshot, volume.location.prefix)}`;
    await volume.deleteObject(marker, 'the clone marker in its origin');
  };
}
