import { type Backend, BackendError, BackendErrorCode } from '@tcmu/backend';
import { openMemoryBackend } from '@tcmu/backend-memory';
import { ScsiStatus } from '@tcmu/scsi';
import { afterEach, describe, expect, it } from 'vitest';
import { type Harness, harness, pattern, senseCode, senseOf } from '../test-support';
import { handlerFunction, isCommand } from '../types';
import { emulate } from './handler';
import { emulateRead } from './io';

let h: Harness;

/** Counts the backend's flush calls from now on. */
function countFlushes(backend: Backend): { count: number } {
  const counter = { count: 0 };
  const flush = backend.flush!.bind(backend);
  (backend as { flush: () => Promise<void> }).flush = () => {
    counter.count++;
    return flush();
  };
  return counter;
}
afterEach(async () => {
  await h?.close();
});

describe('READ/WRITE through the simulated kernel', () => {
  it('writes and reads back with every CDB size (6/10/12/16)', async () => {
    h = await harness();
    const sizes = [
      ['WRITE(6)', 'READ(6)'],
      ['WRITE(10)', 'READ(10)'],
      ['WRITE(12)', 'READ(12)'],
      ['WRITE(16)', 'READ(16)'],
    ] as const;
    for (const [i, [write, read]] of sizes.entries()) {
      const lba = BigInt(10 + i * 8);
      const data = pattern(4 * 512, i + 1);
      const w = await h.send({ name: write, lba, transferLength: 4 } as never, { out: data });
      expect(w.status).toBe(ScsiStatus.Good);
      const r = await h.send({ name: read, lba, transferLength: 4 } as never, { inLength: 4 * 512 });
      expect(r.status).toBe(ScsiStatus.Good);
      expect(Buffer.from(r.dataIn).equals(Buffer.from(data))).toBe(true);
    }
  });

  it('READ(6) with transfer length 0 reads 256 blocks', async () => {
    h = await harness();
    const data = pattern(256 * 512, 7);
    expect((await h.send({ name: 'WRITE(10)', lba: 0n, transferLength: 256 }, { out: data })).status).toBe(0);
    const r = await h.send(Uint8Array.from([0x08, 0, 0, 0, 0, 0]), { inLength: 256 * 512 });
    expect(r.status).toBe(0);
    expect(Buffer.from(r.dataIn).equals(Buffer.from(data))).toBe(true);
  });

  it('rejects a range past the end with 05/21 00 and leaves the medium alone', async () => {
    h = await harness({ size: 1024 * 512 });
    const r = await h.send({ name: 'READ(10)', lba: 1020n, transferLength: 8 }, { inLength: 8 * 512 });
    expect(r.status).toBe(ScsiStatus.CheckCondition);
    expect(senseCode(r)).toBe('05/21/00');
    const w = await h.send(
      { name: 'WRITE(16)', lba: 1024n, transferLength: 1 },
      { out: new Uint8Array(512) },
    );
    expect(senseCode(w)).toBe('05/21/00');
    const last = await h.send({ name: 'WRITE(10)', lba: 1023n, transferLength: 1 }, { out: pattern(512, 3) });
    expect(last.status).toBe(0);
  });

  it('rejects RDPROTECT/WRPROTECT with 05/24 00 and a field pointer', async () => {
    h = await harness();
    const cdb = Uint8Array.from([0x28, 0x20, 0, 0, 0, 0, 0, 0, 1, 0]);
    const r = await h.send(cdb, { inLength: 512 });
    expect(senseCode(r)).toBe('05/24/00');
    expect(senseOf(r).fieldPointer).toMatchObject({ commandData: true, byte: 1 });
  });

  it('a WRITE to a locked range waits for the lock; one beside it does not', async () => {
    h = await harness();
    const release = await h.served.device.locks.acquire({ start: 8, length: 8 });
    let overlapping = false;
    const waiting = h
      .send({ name: 'WRITE(16)', lba: 15n, transferLength: 2 }, { out: pattern(1024, 3) })
      .then((result) => {
        overlapping = true;
        return result;
      });
    const beside = await h.send({ name: 'WRITE(16)', lba: 17n, transferLength: 1 }, { out: pattern(512, 4) });
    expect(beside.status).toBe(ScsiStatus.Good);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(overlapping).toBe(false);
    release();
    expect((await waiting).status).toBe(ScsiStatus.Good);
    const back = await h.send({ name: 'READ(16)', lba: 15n, transferLength: 2 }, { inLength: 1024 });
    expect(Buffer.from(back.dataIn!)).toEqual(Buffer.from(pattern(1024, 3)));
    expect(h.served.device.locks.heldCount).toBe(0);
  });

  it('a failed WRITE answers the mapped sense with its LBA and releases its range', async () => {
    h = await harness();
    const backend = h.backend!;
    const write = backend.write.bind(backend);
    let failures = 1;
    (backend as { write: Backend['write'] }).write = (offset, data) => {
      if (failures-- > 0) return Promise.reject(new BackendError(BackendErrorCode.Write, 'pwrite: EIO'));
      return write(offset, data);
    };
    // The memory backend's synchronous fast path would bypass the patched write.
    (backend as { tryWriteSync?: unknown }).tryWriteSync = undefined;
    const failed = await h.send({ name: 'WRITE(16)', lba: 40n, transferLength: 1 }, { out: pattern(512, 5) });
    expect(senseCode(failed)).toBe('03/0c/00');
    expect(senseOf(failed).information).toBe(40n);
    expect(h.served.device.locks.heldCount).toBe(0);
    const again = await h.send({ name: 'WRITE(16)', lba: 40n, transferLength: 1 }, { out: pattern(512, 5) });
    expect(again.status).toBe(ScsiStatus.Good);
    expect(h.served.device.stats.bytesWritten).toBe(512);
  });

  it('FUA and a disabled write cache flush the backend', async () => {
    h = await harness();
    const flushes = countFlushes(h.backend!);
    await h.send({ name: 'WRITE(10)', lba: 0n, transferLength: 1 }, { out: pattern(512, 1) });
    expect(flushes.count).toBe(0);
    await h.send({ name: 'WRITE(10)', lba: 0n, transferLength: 1, fua: true }, { out: pattern(512, 1) });
    expect(flushes.count).toBe(1);
    h.served.device.writeCacheEnabled = false;
    await h.send({ name: 'WRITE(16)', lba: 0n, transferLength: 1 }, { out: pattern(512, 1) });
    expect(flushes.count).toBe(2);
    await h.send({ name: 'SYNCHRONIZE CACHE(10)', lba: 0n, transferLength: 0 });
    expect(flushes.count).toBe(3);
  });

  it('after a take-over that lost the write cache, the first SYNCHRONIZE CACHE flushes and fails with 03/0C 00; the next ones pass', async () => {
    h = await harness({ writeCacheLost: true });
    const flushes = countFlushes(h.backend!);
    // Writes and reads are untouched: only the durability barrier reports the loss.
    expect(
      (await h.send({ name: 'WRITE(10)', lba: 0n, transferLength: 1 }, { out: pattern(512, 3) })).status,
    ).toBe(ScsiStatus.Good);
    const first = await h.send({ name: 'SYNCHRONIZE CACHE(16)', lba: 0n, transferLength: 0 });
    expect(senseCode(first)).toBe('03/0c/00');
    expect(flushes.count).toBe(1);
    const second = await h.send({ name: 'SYNCHRONIZE CACHE(10)', lba: 0n, transferLength: 0 });
    expect(second.status).toBe(ScsiStatus.Good);
    expect(flushes.count).toBe(2);
  });

  it('a device served normally never reports a lost write cache', async () => {
    h = await harness();
    expect((await h.send({ name: 'SYNCHRONIZE CACHE(10)', lba: 0n, transferLength: 0 })).status).toBe(
      ScsiStatus.Good,
    );
  });
});

describe('the synchronous fast path (tryReadSync, tryWriteSync)', () => {
  /** A memory disk whose fast paths answer (or decline) as told, counting every call. */
  async function countingBackend(answer: boolean) {
    const memory = await openMemoryBackend({ size: 8 * 1024 * 1024, pageSize: 4096 });
    const calls = { read: 0, write: 0, tryReadSync: 0, tryWriteSync: 0 };
    const backend: Backend = {
      get size() {
        return memory.size;
      },
      read: (offset, length, into) => {
        calls.read++;
        return memory.read(offset, length, into);
      },
      write: (offset, data) => {
        calls.write++;
        return memory.write(offset, data);
      },
      tryReadSync: (offset, length, into) => {
        calls.tryReadSync++;
        return answer && memory.tryReadSync(offset, length, into);
      },
      tryWriteSync: (offset, data) => {
        calls.tryWriteSync++;
        return answer && memory.tryWriteSync(offset, data);
      },
    };
    return { backend, calls };
  }

  it('answers READ and WRITE without a promise when the backend answers at once', async () => {
    const { backend, calls } = await countingBackend(true);
    const standard = emulate(backend);
    const promised: boolean[] = [];
    const handler = handlerFunction((command) => {
      const response = standard.handle(command);
      if (isCommand(command, 'READ(10)', 'WRITE(10)')) {
        const direct = isCommand(command, 'READ(10)') ? emulateRead(command, backend) : undefined;
        if (direct) promised.push(direct instanceof Promise);
      }
      return response;
    });
    h = await harness({ backend, handler, size: backend.size });
    const data = pattern(8 * 512, 4);
    const w = await h.send({ name: 'WRITE(10)', lba: 100n, transferLength: 8 }, { out: data });
    expect(w.status).toBe(ScsiStatus.Good);
    const r = await h.send({ name: 'READ(10)', lba: 100n, transferLength: 8 }, { inLength: data.length });
    expect(r.status).toBe(ScsiStatus.Good);
    expect(Buffer.from(r.dataIn).equals(Buffer.from(data))).toBe(true);
    expect(calls).toEqual({ read: 0, write: 0, tryReadSync: 2, tryWriteSync: 1 });
    expect(promised).toEqual([false]);
    expect(h.served.device.locks.heldCount).toBe(0);
  });

  it('falls back to read and write when the backend declines', async () => {
    const { backend, calls } = await countingBackend(false);
    h = await harness({ backend, size: backend.size });
    const data = pattern(8 * 512, 5);
    expect((await h.send({ name: 'WRITE(16)', lba: 7n, transferLength: 8 }, { out: data })).status).toBe(0);
    const r = await h.send({ name: 'READ(16)', lba: 7n, transferLength: 8 }, { inLength: data.length });
    expect(Buffer.from(r.dataIn).equals(Buffer.from(data))).toBe(true);
    expect(calls).toEqual({ read: 1, write: 1, tryReadSync: 1, tryWriteSync: 1 });
    expect(h.served.device.stats.bytesRead).toBe(data.length);
    expect(h.served.device.stats.bytesWritten).toBe(data.length);
  });

  it('answers a throw of the fast path with its mapped sense and LBA, and releases the range', async () => {
    const { backend } = await countingBackend(true);
    (backend as { tryReadSync: Backend['tryReadSync'] }).tryReadSync = () => {
      throw new BackendError(BackendErrorCode.Read, 'pread: EIO');
    };
    (backend as { tryWriteSync: Backend['tryWriteSync'] }).tryWriteSync = () => {
      throw new BackendError(BackendErrorCode.Write, 'pwrite: EIO');
    };
    h = await harness({ backend, size: backend.size });
    const r = await h.send({ name: 'READ(16)', lba: 33n, transferLength: 1 }, { inLength: 512 });
    expect(senseCode(r)).toBe('03/11/00');
    expect(senseOf(r).information).toBe(33n);
    const w = await h.send({ name: 'WRITE(16)', lba: 34n, transferLength: 1 }, { out: pattern(512, 1) });
    expect(senseCode(w)).toBe('03/0c/00');
    expect(senseOf(w).information).toBe(34n);
    expect(h.served.device.locks.heldCount).toBe(0);
    expect(h.served.stats.handlerFailures).toBe(0);
  });
});
