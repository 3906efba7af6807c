import { type Backend, BackendError, BackendErrorCode, withFaults } from '@tcmu/backend';
import { openMemoryBackend } from '@tcmu/backend-memory';
import { ScsiStatus } from '@tcmu/scsi';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type Harness, harness, pattern, senseCode } from './test-support';
import type { Logger } from './types';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function capture() {
  const warnings: Array<{ context: Record<string, unknown>; message: string }> = [];
  const logger: Logger = {
    warn: (context, message) => warnings.push({ context: context as Record<string, unknown>, message }),
  };
  return { logger, warnings };
}

/** A memory backend whose writes and flushes never settle (reads still work). */
async function hungBackend(): Promise<{ backend: Backend; calls: { writes: number } }> {
  const memory = await openMemoryBackend({ size: 1024 * 1024 });
  const calls = { writes: 0 };
  const backend: Backend = {
    size: memory.size,
    blockSize: memory.blockSize,
    read: (offset, length, into) => memory.read(offset, length, into),
    write: () => {
      calls.writes++;
      return new Promise<void>(() => {});
    },
    flush: () => new Promise<void>(() => {}),
  };
  return { backend, calls };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('a backend whose calls never settle', () => {
  it('gets task management aborts, and close() abandons what is still in flight after drainTimeoutMs', async () => {
    const { backend, calls } = await hungBackend();
    const { logger, warnings } = capture();
    h = await harness({ backend, size: backend.size, drainTimeoutMs: 20, logger });
    const first = h.send({ name: 'WRITE(10)', lba: 0n, transferLength: 1 }, { out: pattern(512, 1) });
    const second = h.send({ name: 'WRITE(10)', lba: 8n, transferLength: 1 }, { out: pattern(512, 2) });
    while (calls.writes < 2) await nextTurn();

    // The initiator's timeout handling: a LUN reset reaches the core as TMR; the handler's signal is
    // aborted, but the command is only answered once its handler settles, which this one never does.
    h.kernel.taskManagement('lun-reset', [h.kernel.commandsInRing()[0]!]);
    // The TMR is seen on the server's next wake-up, which a loaded machine may delay past one turn.
    const served = h.served;
    await vi.waitFor(() => expect(served.stats.taskManagement).toBe(1), { timeout: 10_000 });
    expect(h.served.stats.inFlight).toBe(2);

    // Still responsive: reads are served meanwhile.
    const read = await h.send({ name: 'READ(10)', lba: 16n, transferLength: 1 }, { inLength: 512 });
    expect(read.status).toBe(ScsiStatus.Good);

    await h.served.close({});
    const [a, b] = await Promise.all([first, second]);
    expect(a.aborted).toBe(true);
    expect(senseCode(b)).toBe('04/44/00');
    expect(h.served.stats.inFlight).toBe(0);
    expect(h.kernel.broken).toBeUndefined();
    expect(warnings.map((w) => w.message)).toContainEqual(
      expect.stringContaining('2 command(s) did not finish within 20 ms of close'),
    );
  });

  it('answers commands that arrive after the drain timeout at once with 04/44 00', async () => {
    const { backend, calls } = await hungBackend();
    h = await harness({ backend, size: backend.size, drainTimeoutMs: 10, closeRing: false });
    const stuck = h.send({ name: 'SYNCHRONIZE CACHE(10)' });
    let release!: () => void;
    const detached = new Promise<void>((resolve) => {
      release = resolve;
    });
    // Like OpenedDevice.close(): keep serving while the kernel removes the disk.
    const closing = h.served.close({ servingUntil: detached });
    expect(senseCode(await stuck)).toBe('04/44/00');
    const late = await h.send({ name: 'WRITE(10)', lba: 0n, transferLength: 1 }, { out: pattern(512, 3) });
    expect(senseCode(late)).toBe('04/44/00');
    expect(calls.writes).toBe(0);
    release();
    await closing;
  });

  it('serves normally until servingUntil settles, then answers BUSY', async () => {
    const memory = await openMemoryBackend({ size: 1024 * 1024 });
    h = await harness({ backend: memory, size: memory.size, closeRing: false });
    let release!: () => void;
    const detached = new Promise<void>((resolve) => {
      release = resolve;
    });
    const closing = h.served.close({ servingUntil: detached });
    expect(h.served.closed).toBe(true);
    const during = await h.send({ name: 'WRITE(10)', lba: 0n, transferLength: 1 }, { out: pattern(512, 4) });
    expect(during.status).toBe(ScsiStatus.Good);
    release();
    await closing;
    expect((await h.send({ name: 'TEST UNIT READY' })).status).toBe(ScsiStatus.Busy);
  });
});

describe('backend errors are never silent', () => {
  const errno = (code: string) => Object.assign(new Error(`pwrite: ${code}`), { code });

  it('warns once per kind per device with advice, and answers each with its sense', async () => {
    const memory = await openMemoryBackend({ size: 1024 * 1024 });
    const faulty = withFaults(memory);
    const { logger, warnings } = capture();
    h = await harness({ backend: faulty, size: memory.size, logger });
    const write = (lba: bigint) =>
      h!.send({ name: 'WRITE(10)', lba, transferLength: 1 }, { out: pattern(512, Number(lba)) });
    const fail = (error: Error, times: number) => faulty.faults.add({ operation: 'write', error, times });

    fail(new BackendError(BackendErrorCode.NoSpace, 'pwrite: ENOSPC', { cause: errno('ENOSPC') }), 3);
    for (let i = 0; i < 3; i++) expect(senseCode(await write(BigInt(i)))).toBe('07/27/07');
    fail(new BackendError(BackendErrorCode.Write, 'pwrite: EIO', { cause: errno('EIO') }), 2);
    for (let i = 0; i < 2; i++) expect(senseCode(await write(BigInt(i)))).toBe('03/0c/00');
    fail(new BackendError(BackendErrorCode.ReadOnly, 'pwrite: EROFS', { cause: errno('EROFS') }), 2);
    for (let i = 0; i < 2; i++) expect(senseCode(await write(BigInt(i)))).toBe('07/27/00');
    expect((await write(9n)).status).toBe(ScsiStatus.Good);

    expect(warnings.map((w) => w.context.kind)).toEqual(['no-space', 'io-error', 'read-only']);
    expect(warnings[0]!.message).toMatch(/file system is full.*free space or grow it/);
    expect(warnings[1]!.message).toMatch(/I\/O errors.*dmesg/);
    expect(warnings[2]!.message).toMatch(/read-only.*remount/);
    expect(warnings.every((w) => w.context.device === 'test' && w.context.err instanceof Error)).toBe(true);
    expect(h.served.stats.backendErrors).toBe(7);

    // Per device: another device warns again.
    const other = capture();
    const second = await harness({ backend: faulty, size: memory.size, logger: other.logger, name: 'other' });
    try {
      fail(new BackendError(BackendErrorCode.NoSpace, 'pwrite: ENOSPC', { cause: errno('ENOSPC') }), 1);
      await second.send({ name: 'WRITE(10)', lba: 0n, transferLength: 1 }, { out: pattern(512, 0) });
      expect(other.warnings.map((w) => w.context.kind)).toEqual(['no-space']);
    } finally {
      await second.close();
    }
  });
});
