import { describe, expect, it } from 'vitest';
import { RangeLock } from './range-lock';

const tick = () => new Promise((r) => setImmediate(r));

describe('RangeLock', () => {
  it('grants non-overlapping ranges at once', async () => {
    const lock = new RangeLock();
    const a = await lock.acquire({ lba: 0n, blocks: 8n });
    const b = await lock.acquire({ lba: 8n, blocks: 8n });
    expect(lock.heldCount).toBe(2);
    a();
    b();
    expect(lock.heldCount).toBe(0);
  });

  it('makes an overlapping range wait until release, in arrival order', async () => {
    const lock = new RangeLock();
    const order: string[] = [];
    const first = await lock.acquire({ lba: 4n, blocks: 4n });
    const second = lock.acquire({ lba: 6n, blocks: 1n }).then((r) => {
      order.push('second');
      return r;
    });
    const third = lock.acquire({ lba: 0n, blocks: 16n }).then((r) => {
      order.push('third');
      return r;
    });
    const unrelated = lock.acquire({ lba: 100n, blocks: 1n }).then((r) => {
      order.push('unrelated');
      return r;
    });
    await tick();
    expect(order).toEqual(['unrelated']);
    first();
    const releaseSecond = await second;
    await tick();
    expect(order).toEqual(['unrelated', 'second']);
    releaseSecond();
    (await third)();
    (await unrelated)();
    expect(order).toEqual(['unrelated', 'second', 'third']);
    expect(lock.waitingCount).toBe(0);
  });

  it('does not let a later small range overtake an earlier waiter it overlaps', async () => {
    const lock = new RangeLock();
    const held = await lock.acquire({ lba: 0n, blocks: 1n });
    const order: string[] = [];
    const note = (name: string) => (release: () => void) => {
      order.push(name);
      return release;
    };
    const big = lock.acquire({ lba: 0n, blocks: 10n }).then(note('big'));
    const small = lock.acquire({ lba: 5n, blocks: 1n }).then(note('small'));
    await tick();
    expect(order).toEqual([]);
    held();
    (await big)();
    (await small)();
    expect(order).toEqual(['big', 'small']);
  });

  it('ignores a second release and grants empty ranges at once', async () => {
    const lock = new RangeLock();
    const r = await lock.acquire({ lba: 0n, blocks: 0n });
    r();
    r();
    expect(lock.heldCount).toBe(0);
  });
});
