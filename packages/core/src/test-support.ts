// Shared by the unit tests: a device served through the simulated kernel, and helpers to send
// commands as an initiator would. Not exported from the package.
import type { Backend } from '@tcmu/backend';
import { openMemoryBackend } from '@tcmu/backend-memory';
import { SimulatedKernel, type SubmitResult } from '@tcmu/ring/testing';
import { buildCdb, type CdbFields, type DecodedSense, decodeSense } from '@tcmu/scsi';
import { type ServedDevice, type ServeSettings, serveRing } from './serve';
import type { ScsiHandler } from './types';

export interface Harness {
  kernel: SimulatedKernel;
  served: ServedDevice;
  backend: Backend | undefined;
  /** Sends a CDB (fields or raw bytes) with optional data-out / data-in length. */
  send(cdb: CdbFields | Uint8Array, data?: { out?: Uint8Array; inLength?: number }): Promise<SubmitResult>;
  close(): Promise<void>;
}

export interface HarnessOptions extends ServeSettings {
  size?: number;
  blockSize?: number;
  backend?: Backend;
  handler?: ScsiHandler;
  poison?: number;
}

export async function harness(options: HarnessOptions = {}): Promise<Harness> {
  const blockSize = options.blockSize ?? 512;
  const size = options.size ?? 8 * 1024 * 1024;
  const kernel = new SimulatedKernel({ poisonDataIn: options.poison ?? 0xa5 });
  const ring = await kernel.openRing();
  const backend =
    options.backend ??
    (options.handler ? undefined : await openMemoryBackend({ size, blockSize, pageSize: 4096 }));
  const settings = { powerOnUnitAttention: false, ...options, name: options.name ?? 'test', size, blockSize };
  const served = backend
    ? serveRing(ring, { ...settings, backend, ...(options.handler ? { handler: options.handler } : {}) })
    : serveRing(ring, { ...settings, handler: options.handler! });
  return {
    kernel,
    served,
    backend,
    send(cdb, data = {}) {
      return kernel.submit({
        cdb: cdb instanceof Uint8Array ? cdb : buildCdb(cdb),
        ...(data.out ? { dataOut: data.out } : {}),
        ...(data.inLength !== undefined ? { dataInLength: data.inLength } : {}),
      });
    },
    async close() {
      await served.close();
      await kernel.close();
    },
  };
}

/** The decoded sense of a result (throws when there is none). */
export function senseOf(result: SubmitResult): DecodedSense {
  const sense = decodeSense(result.sense);
  if (!sense) throw new Error(`no sense data (status ${result.status})`);
  return sense;
}

/** `key/asc/ascq` in hex, e.g. `05/21/00`, for compact expectations. */
export function senseCode(result: SubmitResult): string {
  const s = senseOf(result);
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  return `${hex(s.key)}/${hex(s.asc)}/${hex(s.ascq)}`;
}

/** Deterministic bytes for block `lba` of a write pattern. */
export function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}
