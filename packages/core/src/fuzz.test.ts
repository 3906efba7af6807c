import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, harness } from './test-support';

let h: Harness;
beforeAll(async () => {
  h = await harness({ size: 4 * 1024 * 1024 });
});
afterAll(async () => {
  await h.close();
});

const knownOpcodes = [
  0x00, 0x03, 0x04, 0x08, 0x0a, 0x12, 0x15, 0x1a, 0x1b, 0x1e, 0x25, 0x28, 0x2a, 0x2e, 0x2f, 0x35, 0x41, 0x42,
  0x55, 0x5a, 0x88, 0x89, 0x8a, 0x8e, 0x8f, 0x91, 0x93, 0x9e, 0xa3, 0xa8, 0xaa,
];

describe('whatever the kernel sends', () => {
  it('every CDB and data buffer gets a SCSI answer; the emulation itself never throws', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.constantFrom(...knownOpcodes), fc.integer({ min: 0, max: 255 })),
        fc.uint8Array({ minLength: 0, maxLength: 31 }),
        fc.option(fc.uint8Array({ minLength: 1, maxLength: 4096 }), { nil: undefined }),
        fc.option(fc.integer({ min: 1, max: 8192 }), { nil: undefined }),
        async (opcode, rest, dataOut, dataInLength) => {
          const cdb = Uint8Array.from([opcode, ...rest]);
          const result = await h.send(cdb, {
            ...(dataOut ? { out: dataOut } : {}),
            ...(dataInLength !== undefined && !dataOut ? { inLength: dataInLength } : {}),
          });
          expect([0x00, 0x02, 0x08]).toContain(result.status);
          if (result.status === 0x02) expect(result.sense[0]! & 0x7f).toBeGreaterThanOrEqual(0x70);
        },
      ),
      { numRuns: 400 },
    );
    expect(h.served.stats.handlerFailures).toBe(0);
    expect(h.kernel.broken).toBeUndefined();
    h.served.device.stopped = false;
    h.served.device.unitAttentions.clear();
    expect((await h.send({ name: 'TEST UNIT READY' })).status).toBe(0);
  });
});
