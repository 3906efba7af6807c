import { describe, expect, it } from 'vitest';
import { canWatchFd, EFD_CLOEXEC, EFD_NONBLOCK, libc, watchFd } from './index';

const tick = () => new Promise((resolve) => setTimeout(resolve, 20));

// node on Linux exports libuv's symbols: the binding works here (the ring's waiter depends on it).
describe('watchFd: an fd watched from the event loop (libuv uv_poll)', () => {
  it('wakes once per start while the fd is readable, pauses until started again, and closes', async () => {
    expect(canWatchFd()).toBe(true);
    const c = libc();
    const fd = c.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    const one = new Uint8Array(new BigUint64Array([1n]).buffer);
    const calls: number[] = [];
    const watch = watchFd(fd, (status) => calls.push(status));
    try {
      watch.start();
      expect(watch.active).toBe(true);
      await tick();
      expect(calls).toEqual([]); // nothing to read yet
      c.write(fd, one, 8);
      await tick();
      // One wake-up, then paused although the eventfd is still readable (level-triggered).
      expect(calls).toEqual([0]);
      expect(watch.active).toBe(false);
      await tick();
      expect(calls).toEqual([0]);
      watch.start();
      await tick();
      expect(calls).toEqual([0, 0]); // still readable: wakes again at once
      c.read(fd, new Uint8Array(8), 8); // consumed
      watch.start();
      await tick();
      expect(calls).toEqual([0, 0]);
      watch.stop();
      c.write(fd, one, 8);
      await tick();
      expect(calls).toEqual([0, 0]); // stopped: no wake-up
    } finally {
      await watch.close();
      c.close(fd);
    }
    expect(watch.active).toBe(false);
  });
});
