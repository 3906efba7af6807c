// The idle spin window set through serveRing: in a file of its own, because the ring spins only
// while it is the process's only one, and other test files' rings would share the process-wide waiter.
import { openMemoryBackend } from '@tcmu/backend-memory';
import { SimulatedKernel } from '@tcmu/ring/testing';
import { buildCdb, ScsiStatus } from '@tcmu/scsi';
import { describe, expect, it } from 'vitest';
import { planServe, serveRing } from './serve';

describe('idle spin window', () => {
  /** Serves a memory disk on a simulated ring with `settings`, sends 6 READs one after another. */
  async function spinsWith(
    environment: string,
    settings: { idleSpinMicroseconds?: number },
  ): Promise<number> {
    process.env.TCMU_RING_SPIN_US = environment;
    const kernel = new SimulatedKernel({});
    const ring = await kernel.openRing();
    try {
      const backend = await openMemoryBackend({ size: 1024 * 1024 });
      const served = serveRing(ring, { backend, powerOnUnitAttention: false, ...settings });
      for (let i = 0; i < 6; i++) {
        const result = await kernel.submit({
          cdb: buildCdb({ name: 'READ(10)', lba: BigInt(i), transferLength: 1 }),
          dataInLength: 512,
        });
        expect(result.status).toBe(ScsiStatus.Good);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      await served.close();
      return ring.statistics.spins;
    } finally {
      delete process.env.TCMU_RING_SPIN_US;
      await kernel.close();
    }
  }

  it('idleSpinMicroseconds reaches the ring and wins over TCMU_RING_SPIN_US', async () => {
    expect(await spinsWith('300', { idleSpinMicroseconds: 0 })).toBe(0);
    expect(await spinsWith('0', { idleSpinMicroseconds: 300 })).toBeGreaterThan(0);
    expect(await spinsWith('300', {})).toBeGreaterThan(0);
  });

  it('refuses a window out of range (TCMU_ERR_CORE_INVALID_OPTION)', async () => {
    const backend = await openMemoryBackend({ size: 4096 });
    for (const idleSpinMicroseconds of [-1, 0.5, 10_001])
      expect(() => planServe({ backend, idleSpinMicroseconds })).toThrow(
        expect.objectContaining({ code: 'TCMU_ERR_CORE_INVALID_OPTION' }),
      );
  });
});
