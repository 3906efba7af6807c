import { describe, expect, it } from 'vitest';
import { RangeLock } from './range-lock';

const tick = () => new Promise((r) => setImmediate(r));

describe('RangeLock (exclusive, in blocks as the core uses it)', () => {
  it('grants non-overlapping ranges at once', async () => {
    const lock = new RangeLock();
    const a = await lock.acquire({ start: 0n, length: 8n });
    const b = await lock.acquire({ start: 8n, length: 8n });
    expect(lock.heldCount).toBe(2);
    a();
    b();
    expect(lock.heldCount).toBe(0);
  });

  it('makes an overlapping range wait until release, in arrival order', async () => {
    const lock = new RangeLock();
    const order: string[] = [];
    const first = await lock.acquire({ start: 4n, length: 4n });
    const second = lock.acquire({ start: 6n, length: 1n }).then((r) => {
      order.push('second');
      return r;
    });
    const third = lock.acquire({ start: 0n, length: 16n }).then((r) => {
      order.push('third');
      return r;
    });
    const unrelated = lock.acquire({ start: 100n, length: 1n }).then((r) => {
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
    const held = await lock.acquire({ start: 0n, length: 1n });
    const order: string[] = [];
    const note = (name: string) => (release: () => void) => {
      order.push(name);
      return release;
    };
    const big = lock.acquire({ start: 0n, length: 10n }).then(note('big'));
    const small = lock.acquire({ start: 5n, length: 1n }).then(note('small'));
    await tick();
    expect(order).toEqual([]);
    held();
    (await big)();
    (await small)();
    expect(order).toEqual(['big', 'small']);
  });

  it('ignores a second release and grants empty ranges at once', async () => {
    const lock = new RangeLock();
    const r = await lock.acquire({ start: 0n, length: 0n });
    r();
    r();
    expect(lock.heldCount).toBe(0);
  });
});

describe('RangeLock (shared and exclusive, in bytes as the file backend uses it)', () => {
  it('lets overlapping shared holders run together', async () => {
    const lock = new RangeLock();
    const a = await lock.acquire({ start: 0, length: 4096, shared: true });
    const b = await lock.acquire({ start: 1024, length: 4096, shared: true });
    expect(lock.heldCount).toBe(2);
    a();
    b();
  });

  it('makes an exclusive request wait for overlapping shared holders, and later shared ones wait for it', async () => {
    const lock = new RangeLock();
    const order: string[] = [];
    const note = (name: string) => (release: () => void) => {
      order.push(name);
      return release;
    };
    const reader = await lock.acquire({ start: 0, length: 100, shared: true });
    const exclusive = lock.acquire({ start: 50, length: 100 }).then(note('exclusive'));
    const laterShared = lock.acquire({ start: 120, length: 10, shared: true }).then(note('later shared'));
    const disjointShared = lock.acquire({ start: 500, length: 10, shared: true }).then(note('disjoint'));
    await tick();
    expect(order).toEqual(['disjoint']);
    expect(lock.waitingCount).toBe(2);
    reader();
    const releaseExclusive = await exclusive;
    await tick();
    expect(order).toEqual(['disjoint', 'exclusive']); // the later shared one waits for the earlier exclusive
    releaseExclusive();
    (await laterShared)();
    (await disjointShared)();
    expect(order).toEqual(['disjoint', 'exclusive', 'later shared']);
    expect(lock.heldCount).toBe(0);
  });

  it('treats touching ranges as disjoint and mixes number and bigint units', async () => {
    const lock = new RangeLock();
    const a = await lock.acquire({ start: 0, length: 10 });
    const b = await lock.acquire({ start: 10n, length: 5n });
    const c = lock.acquire({ start: 9, length: 2n });
    let granted = false;
    void c.then(() => {
      granted = true;
    });
    await tick();
    expect(granted).toBe(false);
    a();
    await tick();
    expect(granted).toBe(false);
    b();
    (await c)();
    expect(lock.heldCount).toBe(0);
  });

  it('with() releases when the work throws', async () => {
    const lock = new RangeLock();
    await expect(
      lock.with({ start: 0, length: 8 }, async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(lock.heldCount).toBe(0);
    expect(await lock.with({ start: 0, length: 8 }, async () => 42)).toBe(42);
  });

  it('tryAcquire holds a free range at once and queues nothing when it cannot', async () => {
    const lock = new RangeLock();
    const a = lock.tryAcquire({ start: 0n, length: 8n });
    expect(a).toBeTypeOf('function');
    expect(lock.tryAcquire({ start: 4n, length: 1n })).toBeUndefined();
    expect(lock.waitingCount).toBe(0);
    // A waiter queued by acquire keeps its turn: tryAcquire does not jump ahead of it.
    const waiter = lock.acquire({ start: 6n, length: 4n });
    a!();
    expect(lock.tryAcquire({ start: 8n, length: 1n })).toBeUndefined();
    (await waiter)();
    const shared = lock.tryAcquire({ start: 0, length: 8, shared: true });
    expect(lock.tryAcquire({ start: 2, length: 2, shared: true })).toBeTypeOf('function');
    expect(lock.tryAcquire({ start: 2, length: 2 })).toBeUndefined();
    shared!();
    expect(lock.heldCount).toBe(1);
  });
});
