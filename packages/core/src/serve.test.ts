import { BackendErrorCode, withFaults } from '@tcmu/backend';
import { openMemoryBackend } from '@tcmu/backend-memory';
import { ScsiStatus } from '@tcmu/scsi';
import { afterEach, describe, expect, it } from 'vitest';
import { emulate } from './emulation/handler';
import { good } from './response';
import { type Harness, harness, pattern, senseCode } from './test-support';
import { handlerFunction } from './types';
import { withFaultInjection, withMetrics, withReadOnly } from './wrappers';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

/** A promise with its resolver, to hold handlers until the test lets them go. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => {
    open = r;
  });
  return { open, opened };
}

describe('concurrency', () => {
  it('runs many commands at once and completes them out of order', async () => {
    const order: number[] = [];
    const gates = Array.from({ length: 8 }, gate);
    const memory = await openMemoryBackend({ size: 1024 * 1024 });
    const emulation = emulate(memory);
    let started = 0;
    const handler = handlerFunction(async (command) => {
      if (command.decoded.name !== 'READ(10)') return emulation.handle(command);
      const index = Number((command.decoded as { lba: bigint }).lba);
      started++;
      await gates[index]!.opened;
      order.push(index);
      return emulation.handle(command);
    });
    h = await harness({ handler, backend: memory, size: memory.size });
    const pending = gates.map((_, i) =>
      h.send({ name: 'READ(10)', lba: BigInt(i), transferLength: 1 }, { inLength: 512 }),
    );
    while (started < 8) await new Promise((r) => setImmediate(r));
    expect(h.served.stats.inFlight).toBe(8);
    for (const i of [5, 2, 7, 0, 1, 6, 3, 4]) {
      gates[i]!.open();
      await new Promise((r) => setTimeout(r, 1));
    }
    const results = await Promise.all(pending);
    expect(results.every((r) => r.status === 0)).toBe(true);
    expect(order).toEqual([5, 2, 7, 0, 1, 6, 3, 4]);
    expect(h.served.stats.maxInFlight).toBe(8);
  });

  it('never runs more than queueDepth commands at once, and serves the rest in order', async () => {
    let running = 0;
    let peak = 0;
    const memory = await openMemoryBackend({ size: 1024 * 1024 });
    const slow = {
      size: memory.size,
      read: async (o: number, l: number, into: readonly Uint8Array[]) => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 3));
        running--;
        return memory.read(o, l, into);
      },
      write: memory.write.bind(memory),
    };
    h = await harness({ backend: slow, size: memory.size, queueDepth: 4 });
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        h.send({ name: 'READ(10)', lba: BigInt(i), transferLength: 1 }, { inLength: 512 }),
      ),
    );
    expect(results.every((r) => r.status === 0)).toBe(true);
    expect(peak).toBe(4);
    expect(h.served.stats.maxInFlight).toBe(4);
    expect(h.served.stats.completed).toBe(40);
  });

  it('keeps data intact under a random mixed load with a slow, reordering backend', async () => {
    const memory = await openMemoryBackend({ size: 4 * 1024 * 1024 });
    const jitter = () => new Promise((r) => setTimeout(r, Math.floor(Math.random() * 3)));
    const backend = {
      size: memory.size,
      read: async (o: number, l: number, into: readonly Uint8Array[]) => {
        await jitter();
        return memory.read(o, l, into);
      },
      write: async (o: number, d: readonly Uint8Array[]) => {
        await jitter();
        return memory.write(o, d);
      },
      flush: () => memory.flush(),
    };
    h = await harness({ backend, size: memory.size, queueDepth: 32 });
    // Each 8-block slot is written once with a known pattern, then everything is read back concurrently.
    const writes = Array.from({ length: 200 }, (_, i) =>
      h.send({ name: 'WRITE(16)', lba: BigInt(i * 8), transferLength: 8 }, { out: pattern(8 * 512, i) }),
    );
    expect((await Promise.all(writes)).every((r) => r.status === 0)).toBe(true);
    const reads = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        h.send({ name: 'READ(16)', lba: BigInt(i * 8), transferLength: 8 }, { inLength: 8 * 512 }),
      ),
    );
    reads.forEach((r, i) => {
      expect(Buffer.from(r.dataIn).equals(Buffer.from(pattern(8 * 512, i)))).toBe(true);
    });
  });
});

describe('errors become sense, and the device keeps serving', () => {
  it('maps backend errors: read 03/11 00, write 03/0C 00, others by code', async () => {
    const memory = await openMemoryBackend({ size: 1024 * 1024 });
    const faulty = withFaults(memory);
    h = await harness({ backend: faulty, size: memory.size });
    faulty.faults.add({ operation: 'read', error: BackendErrorCode.Read, times: 1 });
    faulty.faults.add({ operation: 'write', error: BackendErrorCode.Write, times: 1 });
    faulty.faults.add({ operation: 'write', error: BackendErrorCode.NoSpace, times: 1 });
    faulty.faults.add({ operation: 'flush', error: BackendErrorCode.Timeout, times: 1 });
    faulty.faults.add({ operation: 'read', error: new Error('a bug in the backend'), times: 1 });
    const r = await h.send({ name: 'READ(10)', lba: 7n, transferLength: 1 }, { inLength: 512 });
    expect(senseCode(r)).toBe('03/11/00');
    const w = await h.send({ name: 'WRITE(10)', lba: 7n, transferLength: 1 }, { out: pattern(512, 1) });
    expect(senseCode(w)).toBe('03/0c/00');
    const full = await h.send({ name: 'WRITE(10)', lba: 7n, transferLength: 1 }, { out: pattern(512, 1) });
    expect(senseCode(full)).toBe('07/27/07');
    const sync = await h.send({ name: 'SYNCHRONIZE CACHE(16)', lba: 0n, transferLength: 0 });
    expect(senseCode(sync)).toBe('0b/00/00');
    const bug = await h.send({ name: 'READ(10)', lba: 7n, transferLength: 1 }, { inLength: 512 });
    expect(senseCode(bug)).toBe('04/44/00');
    const ok = await h.send({ name: 'READ(10)', lba: 7n, transferLength: 1 }, { inLength: 512 });
    expect(ok.status).toBe(0);
    // Mapped inside the emulation, and counted all the same (the generic Error is a handler failure).
    expect(h.served.stats.backendErrors).toBe(4);
  });

  it('answers 04/44 00 when a handler throws, rejects or returns garbage', async () => {
    const memory = await openMemoryBackend({ size: 1024 * 1024 });
    let call = 0;
    const handler = handlerFunction((command) => {
      call++;
      if (call === 1) throw new Error('sync throw');
      if (call === 2) return Promise.reject(new TypeError('async rejection'));
      if (call === 3) return undefined as never;
      return emulate(memory).handle(command);
    });
    h = await harness({ handler, size: 1024 * 1024 });
    for (let i = 0; i < 3; i++) expect(senseCode(await h.send({ name: 'TEST UNIT READY' }))).toBe('04/44/00');
    expect((await h.send({ name: 'TEST UNIT READY' })).status).toBe(0);
    expect(h.served.stats.handlerFailures).toBe(3);
  });
});

describe('task management', () => {
  it('aborts commands in flight (TASK ABORTED once the handler settles) and waiting ones at once', async () => {
    const release = gate();
    const seen: AbortSignal[] = [];
    const handler = handlerFunction(async (command) => {
      seen.push(command.signal);
      await Promise.race([
        release.opened,
        new Promise((r) => command.signal.addEventListener('abort', r, { once: true })),
      ]);
      return good();
    });
    h = await harness({ handler, size: 1024 * 1024, queueDepth: 2 });
    const sent = [0, 1, 2].map(() => h.send({ name: 'TEST UNIT READY' }));
    while (h.kernel.commandsInRing().length < 3 || seen.length < 2) await new Promise((r) => setImmediate(r));
    expect(h.served.stats.queued).toBe(1);
    h.kernel.taskManagement('lun-reset', 'all');
    const results = await Promise.all(sent);
    expect(results.map((r) => r.aborted)).toEqual([true, true, true]);
    expect(seen.every((s) => s.aborted)).toBe(true);
    expect(h.served.stats.aborted).toBe(3);
    expect(h.kernel.broken).toBeUndefined();
    release.open();
    h.served.device.unitAttentions.clear();
    expect((await h.send({ name: 'INQUIRY', allocationLength: 36 }, { inLength: 36 })).status).toBe(0);
  });
});

describe('lifecycle', () => {
  it('close() drains commands in flight and answers later ones BUSY', async () => {
    const release = gate();
    const handler = handlerFunction(async () => {
      await release.opened;
      return good();
    });
    h = await harness({ handler, size: 1024 * 1024, closeRing: false });
    const inFlight = h.send({ name: 'TEST UNIT READY' });
    while (h.served.stats.inFlight < 1) await new Promise((r) => setImmediate(r));
    const closing = h.served.close();
    expect(h.served.close()).toBe(closing);
    const late = await h.send({ name: 'TEST UNIT READY' });
    expect(late.status).toBe(ScsiStatus.Busy);
    let closed = false;
    void closing.then(() => {
      closed = true;
    });
    await new Promise((r) => setTimeout(r, 5));
    expect(closed).toBe(false);
    release.open();
    expect((await inFlight).status).toBe(0);
    await closing;
    expect(closed).toBe(true);
  });

  it('resize() changes the capacity and queues 06/2A 09 CAPACITY DATA HAS CHANGED', async () => {
    h = await harness({ size: 1024 * 1024 });
    await h.served.resize(2 * 1024 * 1024);
    const tur = await h.send({ name: 'TEST UNIT READY' });
    expect(senseCode(tur)).toBe('06/2a/09');
    const cap = await h.send({ name: 'READ CAPACITY(10)' }, { inLength: 8 });
    expect(new DataView(cap.dataIn.buffer, cap.dataIn.byteOffset).getUint32(0)).toBe(4095);
    const far = await h.send({ name: 'WRITE(10)', lba: 4000n, transferLength: 1 }, { out: pattern(512, 1) });
    expect(far.status).toBe(0);
    await expect(h.served.resize(1000)).rejects.toMatchObject({ code: 'TCMU_ERR_CORE_RESIZE' });
  });
});

describe('wrappers', () => {
  it('withReadOnly, withMetrics and withFaultInjection compose over the emulation', async () => {
    const memory = await openMemoryBackend({ size: 1024 * 1024 });
    const metrics = withMetrics(
      withFaultInjection(withReadOnly(emulate(memory)), [
        { match: 'READ CAPACITY(10)', respond: { key: 3, asc: 0x11, ascq: 0 }, times: 1 },
      ]),
    );
    h = await harness({ handler: metrics, backend: memory, size: memory.size });
    expect(
      senseCode(
        await h.send({ name: 'WRITE(10)', lba: 0n, transferLength: 1 }, { out: new Uint8Array(512) }),
      ),
    ).toBe('07/27/00');
    expect(senseCode(await h.send({ name: 'READ CAPACITY(10)' }, { inLength: 8 }))).toBe('03/11/00');
    expect((await h.send({ name: 'READ CAPACITY(10)' }, { inLength: 8 })).status).toBe(0);
    expect(metrics.metrics.commands['READ CAPACITY(10)']).toBe(2);
    expect(metrics.metrics.statuses[2]).toBe(2);
  });

  it('serves custom vendor opcodes from a row added to the dispatch table', async () => {
    const memory = await openMemoryBackend({ size: 1024 * 1024 });
    const emulation = emulate(memory, {
      commands: [
        {
          name: 'VENDOR PING',
          opcode: 0xc0,
          cdbUsage: Uint8Array.from([0xc0, 0, 0, 0, 0, 0]),
          handle: () => good(),
        },
      ],
    });
    h = await harness({ handler: emulation, backend: memory, size: memory.size });
    expect((await h.send(Uint8Array.from([0xc0, 0, 0, 0, 0, 0]))).status).toBe(0);
    expect(senseCode(await h.send(Uint8Array.from([0xc1, 0, 0, 0, 0, 0])))).toBe('05/20/00');
  });
});
