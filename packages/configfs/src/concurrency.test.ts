import { afterEach, describe, expect, it, vi } from 'vitest';
import type { SystemAccess } from './system';
import { createFakeKernel, type FakeKernel } from './testing/index';
import type { UserDevice } from './types';

/**
 * Several processes sharing one configfs, simulated by separate copies of this package (each with its
 * own module state: in-process lock, owned targets, live devices) over one fake kernel. Barriers make
 * the copies reach the shared folders (the HBA `core/user_0`, `loopback`) at the same moment, which is
 * what `tcmu serve` started N times at once does.
 */
type ConfigfsModule = typeof import('./index');

let kernel: FakeKernel | undefined;
afterEach(async () => {
  await kernel?.dispose();
  kernel = undefined;
});

async function processes(count: number): Promise<ConfigfsModule[]> {
  const copies: ConfigfsModule[] = [];
  for (let i = 0; i < count; i++) {
    vi.resetModules();
    copies.push(await import('./index'));
  }
  return copies;
}

/** The first `parties` calls that touch `path` (any operation) wait until all of them have arrived. */
function barrier(system: SystemAccess, path: string, parties: number) {
  let arrived = 0;
  let release!: () => void;
  const all = new Promise<void>((resolve) => {
    release = resolve;
  });
  const gate = async (touched: string) => {
    if (touched !== path || arrived >= parties) return;
    arrived++;
    if (arrived === parties) release();
    await all;
  };
  const gated: SystemAccess = {
    ...system,
    async kind(p) {
      await gate(p);
      return system.kind(p);
    },
    async mkdir(p) {
      await gate(p);
      return system.mkdir(p);
    },
  };
  return gated;
}

const size = 8 * 1024 * 1024;
const blockSize = 512;

async function startAll(copies: ConfigfsModule[], fake: FakeKernel): Promise<UserDevice[]> {
  const hba = `${fake.configfsRoot}/target/core/user_0`;
  const fabric = `${fake.configfsRoot}/target/loopback`;
  const system = barrier(barrier(fake.system, hba, copies.length), fabric, copies.length);
  return Promise.all(
    copies.map(async (configfs, i) => {
      const device = await configfs.createUserDevice({
        ...fake.roots,
        system,
        hba: 0,
        name: `d${i}`,
        size,
        blockSize,
        serial: `serial-${i}`,
      });
      await device.attachLoopback();
      return device;
    }),
  );
}

describe('shared configfs folders under concurrent processes', () => {
  it('two processes creating at once both succeed, and removal in creation order leaves nothing', async () => {
    kernel = await createFakeKernel();
    const before = await kernel.snapshot();
    const copies = await processes(2);
    const [a, b] = await startAll(copies, kernel);
    expect(a!.attachments).toHaveLength(1);
    expect(b!.attachments).toHaveLength(1);
    // Both saw user_0 and loopback missing; one mkdir won, the other's EEXIST was taken as success.
    const mkdirs = kernel.operations.filter(
      (op) => op.operation === 'mkdir' && /target\/(core\/user_0|loopback)$/.test(op.path),
    );
    expect(mkdirs).toHaveLength(4);
    await a!.remove();
    await b!.remove();
    expect(await kernel.snapshot()).toEqual(before);
  });

  it.each([
    ['creation order', (n: number) => [...Array(n).keys()]],
    ['reverse order', (n: number) => [...Array(n).keys()].reverse()],
    ['all at once', (_n: number) => 'parallel' as const],
  ])('eight processes at once come up and leave configfs as it was when removed in %s', async (_, order) => {
    kernel = await createFakeKernel();
    const before = await kernel.snapshot();
    const copies = await processes(8);
    const devices = await startAll(copies, kernel);
    expect(new Set(devices.map((device) => device.attachments[0]?.devicePath)).size).toBe(8);
    const plan = order(8);
    if (plan === 'parallel') await Promise.all(devices.map((device) => device.remove()));
    else for (const i of plan) await devices[i]!.remove();
    expect(await kernel.snapshot()).toEqual(before);
  });

  it('a create that meets the last remover of the HBA tries again instead of failing', async () => {
    kernel = await createFakeKernel();
    const before = await kernel.snapshot();
    const [first, second] = await processes(2);
    const fake = kernel;
    const existing = await first!.createUserDevice({
      ...fake.roots,
      hba: 0,
      name: 'old',
      size,
      blockSize,
      serial: 'old',
    });
    const hba = `${fake.configfsRoot}/target/core/user_0`;
    // Right after the second process finds user_0 already there, the first removes its last device
    // and with it the HBA: the second's mkdir of its device then fails with ENOENT.
    let removedMeanwhile = false;
    const system: SystemAccess = {
      ...fake.system,
      async mkdir(path) {
        try {
          await fake.system.mkdir(path);
        } finally {
          if (path === hba && !removedMeanwhile) {
            removedMeanwhile = true;
            await existing.remove();
          }
        }
      },
    };
    const device = await second!.createUserDevice({
      ...fake.roots,
      system,
      hba: 0,
      name: 'new',
      size,
      blockSize,
      serial: 'new',
    });
    expect(removedMeanwhile).toBe(true);
    expect((await fake.snapshot()).some((p) => p.endsWith('core/user_0/new'))).toBe(true);
    await device.remove();
    expect(await fake.snapshot()).toEqual(before);
  });

  it('stale removal by another process leaves the shared folders to the last user', async () => {
    kernel = await createFakeKernel();
    const before = await kernel.snapshot();
    const copies = await processes(3);
    const [a, b] = await startAll(copies.slice(0, 2), kernel);
    // A third process removes a's device as if its owner were gone (force), while b still runs.
    await copies[2]!.removeDevice({ ...kernel.roots, name: a!.name, force: true });
    const middle = await kernel.snapshot();
    expect(middle.some((p) => p.endsWith('core/user_0'))).toBe(true);
    expect(middle.some((p) => p.endsWith('target/loopback'))).toBe(true);
    await b!.remove();
    await a!.remove(); // the owner notices late: everything is already gone, which is fine
    expect(await kernel.snapshot()).toEqual(before);
  });
});
