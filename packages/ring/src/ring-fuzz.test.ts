// Whatever the kernel writes into an entry, the ring must neither crash nor touch memory outside
// the mapping: it serves the command, completes it with UNKNOWN_OP, or reports the ring corrupt.

import { scatterCopyFrom } from '@tcmu/backend';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isRingError, type RingError } from './errors';
import { SimulatedKernel, type SubmitResult } from './testing/index';

describe('the ring against corrupted entries', () => {
  it('never crashes and reports every problem with a coded error', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(31), // which 32-bit word of the entry (128 bytes: header, counts, cdb_off, one iovec, CDB)
        fc.oneof(fc.constant(0), fc.constant(0xffffffff), fc.nat(0xffffffff), fc.nat(4096)),
        fc.integer({ min: 0, max: 3 }), // iovecs worth of data (blocks)
        async (word, value, blocks) => {
          const kernel = new SimulatedKernel({ commandRingSize: 16 * 1024 - 128, dataBlocks: 64 });
          const ring = await kernel.openRing();
          const errors: RingError[] = [];
          const thrown: unknown[] = [];
          ring.start({
            onCommand: (command) => {
              try {
                scatterCopyFrom(command.iovecs, 0, new Uint8Array(command.dataLength).fill(1));
                ring.complete(command.id, { status: 0 });
              } catch (error) {
                thrown.push(error);
              }
            },
            onError: (error) => errors.push(error),
          });
          const stderr = console.error;
          console.error = () => {};
          let settled: SubmitResult | Error | undefined;
          try {
            // A few good commands first, so the corrupted one is not at position 0.
            for (let i = 0; i < 3; i++)
              await kernel.submit({ cdb: Uint8Array.of(0x28, i, 0, 0, 0, 0, 0, 0, 1, 0), dataInLength: 512 });
            kernel
              .submitCorrupted(
                { cdb: Uint8Array.of(0x28, 9, 0, 0, 0, 0, 0, 0, 1, 0), dataInLength: blocks * 4096 },
                (view, at) => {
                  if (at + 4 * word + 4 <= view.byteLength && 4 * word < 512)
                    view.setUint32(at + 4 * word, value, true);
                },
              )
              .then(
                (result) => {
                  settled = result;
                },
                (error: Error) => {
                  settled = error;
                },
              );
            // Event-loop turns, not time: enough for a wake-up, a consume, a kick and a reap.
            for (let turn = 0; turn < 400 && settled === undefined && !ring.corrupt && !kernel.broken; turn++)
              await new Promise((resolve) => setImmediate(resolve));
          } finally {
            console.error = stderr;
          }
          expect(thrown).toEqual([]);
          for (const error of errors) expect(isRingError(error)).toBe(true);
          if (settled instanceof Error) expect(isRingError(settled)).toBe(true);
          await ring.close({ abandonInFlight: true });
          await kernel.close();
        },
      ),
      { numRuns: 150 },
    );
  });
});
