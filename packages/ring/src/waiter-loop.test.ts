// The waiter's loop mode (TCMU_RING_WAIT=loop: every ring's fd watched from the event loop through
// libuv's uv_poll). The mode is chosen once per process at the first ring, so this file sets it
// before any ring starts (vitest runs each test file in its own process).
import { afterAll, describe, expect, it } from 'vitest';
import type { Ring } from './ring';
import { SimulatedKernel } from './testing/index';
import type { RingCommand } from './types';
import { processWaiter } from './waiter';

process.env.TCMU_RING_WAIT = 'loop';
const READ = 0x28;
const cdb = (tag: number) => Uint8Array.from([READ, 0, 0, 0, 0, tag, 0, 0, 1, 0]);
const until = async (condition: () => boolean) => {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(condition()).toBe(true);
};

const opened: { kernel: SimulatedKernel; ring: Ring }[] = [];
afterAll(async () => {
  for (const { kernel, ring } of opened) {
    await ring.close({ abandonInFlight: true });
    await kernel.close();
  }
});

describe('the waiter in loop mode (TCMU_RING_WAIT=loop)', () => {
  it('serves several rings from the event loop: idle, busy with a command held, idle again; closing releases every watch', async () => {
    const rings: Ring[] = [];
    const held: RingCommand[] = [];
    const kernels: SimulatedKernel[] = [];
    for (let i = 0; i < 3; i++) {
      const kernel = new SimulatedKernel();
      const ring = await kernel.openRing();
      const index = i;
      ring.start({
        onCommand: (command) => {
          // Ring 0 holds tag-1 commands (one stays in flight); every other command completes at once.
          if (index === 0 && command.cdb[5] === 1) held.push(command);
          else rings[index]!.complete(command.id, { status: 0 });
        },
      });
      rings.push(ring);
      kernels.push(kernel);
      opened.push({ kernel, ring });
    }
    expect(processWaiter().mode).toBe('loop');
    const results = await Promise.all(
      kernels.flatMap((kernel) =>
        Array.from({ length: 20 }, () => kernel.submit({ cdb: cdb(0), dataInLength: 512 })),
      ),
    );
    expect(results.every((result) => result.status === 0)).toBe(true);
    await until(() => processWaiter().polling); // idle: watching again

    // Busy: one command held on ring 0; a second one must still be noticed and served.
    const first = kernels[0]!.submit({ cdb: cdb(1), dataInLength: 512 });
    await until(() => held.length === 1);
    expect((await kernels[0]!.submit({ cdb: cdb(0), dataInLength: 512 })).status).toBe(0);
    rings[0]!.complete(held[0]!.id, { status: 0 });
    expect((await first).status).toBe(0);
    await until(() => processWaiter().polling);

    for (const { kernel, ring } of opened.splice(0)) {
      await ring.close();
      await kernel.close();
    }
    expect(processWaiter().sourceCount).toBe(0);
    expect(processWaiter().polling).toBe(false);
  });
});
