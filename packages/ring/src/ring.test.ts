// The ring against the simulated kernel: the same koffi mapping, wake-up and kick path as a real
// device, with the kernel's entry layout, PADs, data blocks, id reuse, TMR and reaping.

import { scatterCopyFrom, scatterCopyTo, scatterLength } from '@tcmu/backend';
import { afterEach, describe, expect, it } from 'vitest';
import { isRingError, type RingError } from './errors';
import type { Ring } from './ring';
import { SimulatedKernel, type SimulatedKernelOptions, type SubmitResult } from './testing/index';
import type { RingCommand, RingHandlers, RingStartOptions, RingTaskManagement } from './types';
import { processWaiter } from './waiter';

const READ = 0x88; // opcodes only label commands here; the ring does not interpret them
const WRITE = 0x8a;

/** A CDB carrying a 32-bit tag in bytes 2..5, of `length` bytes. */
function cdbWithTag(opcode: number, tag: number, length = 16): Uint8Array {
  const cdb = new Uint8Array(length);
  cdb[0] = opcode;
  new DataView(cdb.buffer).setUint32(2, tag);
  return cdb;
}
const tagOf = (cdb: Uint8Array) => new DataView(cdb.buffer, cdb.byteOffset).getUint32(2);

/** Bytes a data-in command with this tag must return. */
function pattern(tag: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (tag * 31 + i) & 0xff;
  return out;
}

const open: { kernel: SimulatedKernel; ring: Ring }[] = [];

async function setUp(
  options: SimulatedKernelOptions,
  handlers: Partial<RingHandlers> & { onCommand: RingHandlers['onCommand'] },
  startOptions?: RingStartOptions,
): Promise<{ kernel: SimulatedKernel; ring: Ring; errors: RingError[] }> {
  const kernel = new SimulatedKernel(options);
  const ring = await kernel.openRing();
  const errors: RingError[] = [];
  ring.start({ onError: (error) => errors.push(error), ...handlers }, startOptions);
  open.push({ kernel, ring });
  return { kernel, ring, errors };
}

afterEach(async () => {
  for (const { kernel, ring } of open.splice(0)) {
    await ring.close({ abandonInFlight: true });
    await kernel.close();
  }
});

/** A handler that serves tagged READs with `pattern(tag)` and accepts WRITEs into `written`. */
function patternHandler(ringRef: () => Ring, written?: Map<number, Uint8Array>) {
  return (command: RingCommand) => {
    const tag = tagOf(command.cdb);
    if (command.cdb[0] === READ) scatterCopyFrom(command.iovecs, 0, pattern(tag, command.dataLength));
    if (command.cdb[0] === WRITE && written) {
      const data = new Uint8Array(command.dataLength);
      scatterCopyTo(command.iovecs, 0, data);
      written.set(tag, data);
    }
    ringRef().complete(command.id, { status: 0 });
  };
}

describe('Ring over the simulated kernel', () => {
  it('maps the kernel, reports the mailbox and serves reads and writes', async () => {
    let ring!: Ring;
    const written = new Map<number, Uint8Array>();
    ({ ring } = await setUp(
      { commandRingSize: 64 * 1024 - 128 },
      { onCommand: patternHandler(() => ring, written) },
    ));
    const kernel = open[0]!.kernel;
    expect(ring.capabilities).toEqual({
      outOfOrderCompletion: true,
      readLength: true,
      taskManagement: true,
      keepBuffer: true,
    });
    expect(ring.commandRingSize).toBe(64 * 1024 - 128);
    const read = await kernel.submit({ cdb: cdbWithTag(READ, 7), dataInLength: 10_000 });
    expect(read.status).toBe(0);
    expectBytes(read.dataIn, pattern(7, 10_000));
    const data = pattern(99, 12_345);
    const write = await kernel.submit({ cdb: cdbWithTag(WRITE, 8), dataOut: data });
    expect(write.status).toBe(0);
    expect(written.get(8)).toEqual(data);
    const none = await kernel.submit({ cdb: cdbWithTag(0x00, 9, 6) });
    expect(none).toMatchObject({ status: 0, readLength: 0, unknownOperation: false });
  });

  it('copies the CDB out (padded to 8 bytes) and hands out zero-copy iovecs inside the mapping', async () => {
    const seen: RingCommand[] = [];
    const { kernel, ring } = await setUp(
      {},
      {
        onCommand: (command) => {
          seen.push(command);
        },
      },
    );
    const pending = kernel.submit({ cdb: Uint8Array.of(0x12, 1, 2, 3, 4, 5), dataInLength: 5000 });
    await until(() => seen.length === 1);
    const command = seen[0]!;
    expect(Array.from(command.cdb)).toEqual([0x12, 1, 2, 3, 4, 5, 0, 0]);
    expect(command.dataLength).toBe(5000);
    // The views are the kernel's memory: what the handler writes is what the kernel's mapping holds.
    command.iovecs[0]![0] = 0x5a;
    const memory = kernel.sharedMemory;
    expect(command.iovecs[0]!.buffer.byteLength).toBe(kernel.mapSize);
    expect(memory[command.iovecs[0]!.byteOffset]).toBe(0x5a);
    expect(command.iovecs[0]!.byteOffset).toBeGreaterThanOrEqual(kernel.dataAreaOffset);
    ring.complete(command.id, { status: 0 });
    expect((await pending).dataIn[0]).toBe(0x5a);
  });

  it('delivers status and sense, and zeroes a short read without READ_LEN', async () => {
    let ring!: Ring;
    ({ ring } = await setUp(
      { capabilities: { readLength: false }, poisonDataIn: 0xa5 },
      {
        onCommand: (command) => {
          if (command.cdb[0] === 1) {
            ring.complete(command.id, {
              status: 2,
              sense: Uint8Array.of(0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24),
            });
          } else {
            scatterCopyFrom(command.iovecs, 0, new Uint8Array(100).fill(7));
            ring.complete(command.id, { status: 0, readLength: 100 });
          }
        },
      },
    ));
    const kernel = open[0]!.kernel;
    const failed = await kernel.submit({ cdb: Uint8Array.of(1, 0, 0, 0, 0, 0) });
    expect(failed.status).toBe(2);
    expect(failed.sense.length).toBe(96);
    expect(Array.from(failed.sense.subarray(0, 14))).toEqual([
      0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0,
    ]);
    expect(failed.sense.subarray(14).every((b) => b === 0)).toBe(true);
    const short = await kernel.submit({ cdb: Uint8Array.of(2, 0, 0, 0, 0, 0), dataInLength: 9000 });
    expect(short.readLength).toBe(9000); // no READ_LEN: the initiator gets the whole buffer…
    expect(short.dataIn.subarray(0, 100).every((b) => b === 7)).toBe(true);
    expect(short.dataIn.subarray(100).every((b) => b === 0)).toBe(true); // …with no poison leaking
  });

  it('uses READ_LEN for a short read when the kernel supports it, and zeroes an empty read', async () => {
    let ring!: Ring;
    ({ ring } = await setUp(
      { poisonDataIn: 0xa5 },
      {
        onCommand: (command) => {
          const length = command.cdb[1]!;
          scatterCopyFrom(command.iovecs, 0, new Uint8Array(length).fill(7));
          ring.complete(command.id, { status: 0, readLength: length });
        },
      },
    ));
    const kernel = open[0]!.kernel;
    const short = await kernel.submit({ cdb: Uint8Array.of(2, 100, 0, 0, 0, 0), dataInLength: 9000 });
    expect(short.readLength).toBe(100);
    expect(short.dataIn).toEqual(new Uint8Array(100).fill(7));
    const empty = await kernel.submit({ cdb: Uint8Array.of(2, 0, 0, 0, 0, 0), dataInLength: 4096 });
    // read_len 0 means "all" to the kernel, so the ring zeroes the buffer instead.
    expect(empty.readLength).toBe(4096);
    expect(empty.dataIn.every((b) => b === 0)).toBe(true);
  });

  it('wraps around the ring with PAD entries, for CDBs and iovec counts of every size', async () => {
    let ring!: Ring;
    ({ ring } = await setUp(
      { commandRingSize: 4096 - 128 + 8 * 13, dataBlocks: 64 },
      { onCommand: patternHandler(() => ring) },
    ));
    const kernel = open[0]!.kernel;
    const results: Promise<SubmitResult>[] = [];
    const expected: Uint8Array[] = [];
    for (let i = 0; i < 600; i++) {
      const length = 1 + ((i * 7919) % (3 * 4096));
      results.push(
        kernel.submit({ cdb: cdbWithTag(READ, i, [6, 10, 12, 16, 32][i % 5]!), dataInLength: length }),
      );
      expected.push(pattern(i, length));
    }
    const done = await Promise.all(results);
    done.forEach((result, i) => {
      expect(result.status).toBe(0);
      expectBytes(result.dataIn, expected[i]!);
    });
    expect(kernel.statistics.pads).toBeGreaterThan(10);
    expect(ring.statistics.pads).toBe(kernel.statistics.pads);
    expect(kernel.statistics.queuedForSpace).toBeGreaterThan(0); // back-pressure happened
    expect(kernel.broken).toBeUndefined();
  });

  it('completes thousands of commands in flight in random order, kicking once per batch', async () => {
    const held: RingCommand[] = [];
    const { kernel, ring } = await setUp(
      { commandRingSize: 4 * 1024 * 1024 - 128, dataBlocks: 8192 },
      { onCommand: (command) => held.push(command) },
    );
    const count = 5000;
    const results = Array.from({ length: count }, (_, i) =>
      kernel.submit({ cdb: cdbWithTag(READ, i, 10), dataInLength: 512 * (1 + (i % 8)) }),
    );
    await until(() => held.length === count);
    expect(ring.inFlight).toBe(count);
    expect(kernel.inRing).toBe(count);
    // Shuffle deterministically, then complete in that order, in bursts.
    let seed = 12345;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    for (let i = held.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [held[i], held[j]] = [held[j]!, held[i]!];
    }
    for (let start = 0; start < held.length; start += 500) {
      for (const command of held.slice(start, start + 500)) {
        scatterCopyFrom(command.iovecs, 0, pattern(tagOf(command.cdb), command.dataLength));
        ring.complete(command.id, { status: 0 });
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    const done = await Promise.all(results);
    done.forEach((result, i) => {
      expectBytes(result.dataIn, pattern(i, 512 * (1 + (i % 8))));
    });
    expect(ring.statistics.completions).toBe(count);
    expect(ring.statistics.kicks).toBeLessThanOrEqual(count / 100);
    expect(ring.inFlight).toBe(0);
    expect(kernel.inRing).toBe(0);
  });

  it('kicks a batch its handler answers from memory in the turn it arrived in, once for the batch', async () => {
    let ring!: Ring;
    let nextTurn = false;
    const kicks: boolean[] = [];
    const { kernel } = await setUp(
      {},
      {
        onCommand: (command) => {
          setImmediate(() => {
            nextTurn = true;
          });
          // A handler answering from memory: a resolved promise, completed two `then`s later.
          void Promise.resolve()
            .then(() => undefined)
            .then(() => ring.complete(command.id, { status: 0 }));
        },
      },
    );
    ring = open[0]!.ring;
    const kick = kernel.kick.bind(kernel);
    kernel.kick = () => {
      kicks.push(nextTurn);
      kick();
    };
    const results = Array.from({ length: 8 }, (_, i) =>
      kernel.submit({ cdb: cdbWithTag(READ, i), dataInLength: 512 }),
    );
    expect((await Promise.all(results)).map((result) => result.status)).toEqual(new Array(8).fill(0));
    // One consume took all eight; their completions reached the kernel before the loop turned.
    expect(ring.statistics.completions).toBe(8);
    expect(kicks[0]).toBe(false);
    expect(kicks.length).toBeLessThanOrEqual(ring.statistics.wakeups + 1);
    await until(() => processWaiter().polling);
  });

  it('spins when it goes idle, gives up after 4 misses in a row, then probes every 16th time, and sleeps in poll()', async () => {
    process.env.TCMU_RING_SPIN_US = '300';
    let ring!: Ring;
    try {
      ({ ring } = await setUp({}, { onCommand: patternHandler(() => ring) }));
    } finally {
      delete process.env.TCMU_RING_SPIN_US;
    }
    const kernel = open[0]!.kernel;
    // Asleep: poll() armed and the look at the ring that each kick schedules has run.
    const settled = async () => {
      await until(() => processWaiter().polling);
      for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve));
    };
    const read = async (tag: number) => {
      const result = await kernel.submit({ cdb: cdbWithTag(READ, tag), dataInLength: 512 });
      expectBytes(result.dataIn, pattern(tag, 512));
      await settled();
    };
    await settled();
    // Each command wakes the ring; going idle after it, the ring watches cmd_head first (in vain:
    // the submitter shares this thread).
    for (let tag = 0; tag < 4; tag++) await read(tag);
    expect(ring.statistics.wakeups).toBe(4);
    expect(ring.statistics.spins).toBe(4);
    // Four misses in a row: it sleeps at once, except every 16th time.
    for (let tag = 4; tag < 4 + 15; tag++) await read(tag);
    expect(ring.statistics.spins).toBe(4);
    await read(19);
    expect(ring.statistics.spins).toBe(5);
    expect(ring.statistics.spinHits).toBe(0);
    expect(ring.inFlight).toBe(0);
  });

  it('does not spin with TCMU_RING_SPIN_US=0, nor while it shares the process with another ring', async () => {
    process.env.TCMU_RING_SPIN_US = '0';
    let off!: Ring;
    try {
      ({ ring: off } = await setUp({}, { onCommand: patternHandler(() => off) }));
    } finally {
      delete process.env.TCMU_RING_SPIN_US;
    }
    let second!: Ring;
    ({ ring: second } = await setUp({}, { onCommand: patternHandler(() => second) }));
    for (const [index, { kernel }] of open.entries()) {
      for (let tag = 0; tag < 5; tag++) {
        const result = await kernel.submit({ cdb: cdbWithTag(READ, tag), dataInLength: 512 });
        expectBytes(result.dataIn, pattern(tag, 512));
      }
      expect(open[index]!.ring.statistics.spins).toBe(0);
    }
    await until(() => processWaiter().polling);
  });

  it("takes the spin window from start()'s options before TCMU_RING_SPIN_US, and refuses one out of range", async () => {
    process.env.TCMU_RING_SPIN_US = '300';
    let off!: Ring;
    try {
      ({ ring: off } = await setUp({}, { onCommand: patternHandler(() => off) }, { spinMicroseconds: 0 }));
    } finally {
      delete process.env.TCMU_RING_SPIN_US;
    }
    const { kernel } = open[0]!;
    for (let tag = 0; tag < 5; tag++) {
      const result = await kernel.submit({ cdb: cdbWithTag(READ, tag), dataInLength: 512 });
      expectBytes(result.dataIn, pattern(tag, 512));
      await until(() => processWaiter().polling);
    }
    expect(off.statistics.wakeups).toBeGreaterThan(0);
    expect(off.statistics.spins).toBe(0);
    await off.close();
    for (const spinMicroseconds of [-1, 1.5, 10_001, Number.NaN]) {
      const otherKernel = new SimulatedKernel({});
      const other = await otherKernel.openRing();
      try {
        expect(() => other.start({ onCommand: () => {} }, { spinMicroseconds })).toThrow(
          expect.objectContaining({ code: 'TCMU_ERR_RING_INVALID_ARGUMENT' }),
        );
        // Refused before anything started: the ring can still be started.
        other.start({ onCommand: () => {} }, { spinMicroseconds: 10_000 });
      } finally {
        await other.close();
        await otherKernel.close();
      }
    }
  });

  it('reuses cmd_ids 1..65535 cyclically across more than 65535 commands', async () => {
    const ids = new Set<number>();
    let wrapped = false;
    let previous = 0;
    let ring!: Ring;
    ({ ring } = await setUp(
      { commandRingSize: 256 * 1024 - 128 },
      {
        onCommand: (command) => {
          if (command.id < previous) wrapped = true;
          previous = command.id;
          ids.add(command.id);
          ring.complete(command.id, { status: 0 });
        },
      },
    ));
    const kernel = open[0]!.kernel;
    const total = 70_000;
    const batch = 1000;
    for (let sent = 0; sent < total; sent += batch) {
      const results = await Promise.all(
        Array.from({ length: batch }, (_, i) => kernel.submit({ cdb: cdbWithTag(0x00, sent + i, 6) })),
      );
      expect(results.every((result) => result.status === 0)).toBe(true);
    }
    expect(wrapped).toBe(true);
    expect(ids.size).toBe(65535);
    expect(Math.min(...ids)).toBe(1);
    expect(Math.max(...ids)).toBe(65535);
    expect(ring.statistics.completions).toBe(total);
    expect(kernel.broken).toBeUndefined();
  });

  it('surfaces task management entries; aborted commands are still completed and the ring moves on', async () => {
    const held: RingCommand[] = [];
    const requests: RingTaskManagement[] = [];
    const { kernel, ring } = await setUp(
      {},
      { onCommand: (command) => held.push(command), onTaskManagement: (request) => requests.push(request) },
    );
    const results = [0, 1, 2].map((i) => kernel.submit({ cdb: cdbWithTag(READ, i), dataInLength: 512 }));
    await until(() => held.length === 3);
    kernel.taskManagement('abort-task', [held[1]!.id]);
    await until(() => requests.length === 1);
    expect(requests[0]).toEqual({ type: 1, name: 'abort-task', ids: [held[1]!.id] });
    kernel.taskManagement('lun-reset', 'all');
    await until(() => requests.length === 2);
    expect(requests[1]!.name).toBe('lun-reset');
    expect([...requests[1]!.ids].sort()).toEqual(held.map((command) => command.id).sort());
    for (const command of [...held].reverse()) ring.complete(command.id, { status: 0 });
    const done = await Promise.all(results);
    expect(done.map((result) => result.aborted)).toEqual([true, true, true]);
    expect(ring.statistics.taskManagement).toBe(2);
    // The TMR entries were skipped and reclaimed: the ring keeps working.
    held.length = 0;
    const next = kernel.submit({ cdb: cdbWithTag(READ, 5), dataInLength: 512 });
    await until(() => held.length === 1);
    ring.complete(held[0]!.id, { status: 0 });
    expect((await next).status).toBe(0);
    expect(kernel.broken).toBeUndefined();
  });

  it('flags entries of unknown operation UNKNOWN_OP, reports them, and keeps serving', async () => {
    let ring!: Ring;
    const served = await setUp({}, { onCommand: patternHandler(() => ring) });
    ring = served.ring;
    const errors = served.errors;
    const kernel = open[0]!.kernel;
    kernel.injectEntry(5, 40);
    const result = await kernel.submit({ cdb: cdbWithTag(READ, 1), dataInLength: 100 });
    expectBytes(result.dataIn, pattern(1, 100));
    expect(ring.statistics.unknownEntries).toBe(1);
    expect(errors.map((error) => error.code)).toEqual(['TCMU_ERR_RING_UNKNOWN_ENTRY']);
    expect(kernel.broken).toBeUndefined();
  });

  it('completes malformed command entries with UNKNOWN_OP instead of reading outside the mapping', async () => {
    let ring!: Ring;
    const served = await setUp({}, { onCommand: patternHandler(() => ring) });
    ring = served.ring;
    const errors = served.errors;
    const kernel = open[0]!.kernel;
    const corruptions: ((view: DataView, at: number) => void)[] = [
      (view, at) => view.setBigUint64(at + 48, BigInt(kernel.mapSize - 10), true), // iovec past the end
      (view, at) => view.setBigUint64(at + 48, 0n, true), // iovec in the mailbox
      (view, at) => view.setBigUint64(at + 56, 2n ** 63n, true), // absurd length
      (view, at) => view.setUint32(at + 8, 0xffffffff, true), // iov_cnt far too large
      (view, at) => view.setBigUint64(at + 24, 0n, true), // cdb_off outside the entry
      (view, at) => view.setBigUint64(at + 24, 2n ** 60n, true),
    ];
    for (const corrupt of corruptions) {
      const result = await kernel.submitCorrupted({ cdb: cdbWithTag(READ, 1), dataInLength: 4096 }, corrupt);
      expect(result).toMatchObject({ status: 2, unknownOperation: true });
    }
    expect(errors.map((error) => error.code)).toEqual(corruptions.map(() => 'TCMU_ERR_RING_MALFORMED_ENTRY'));
    expect(ring.statistics.malformedEntries).toBe(corruptions.length);
    expect(ring.statistics.commands).toBe(0);
    const good = await kernel.submit({ cdb: cdbWithTag(READ, 2), dataInLength: 64 });
    expectBytes(good.dataIn, pattern(2, 64));
    expect(kernel.broken).toBeUndefined();
  });

  it('stops consuming, without crashing, at an entry it cannot walk past or a bad cmd_head', async () => {
    let ring!: Ring;
    const served = await setUp({}, { onCommand: patternHandler(() => ring) });
    ring = served.ring;
    const errors = served.errors;
    const kernel = open[0]!.kernel;
    const pending = kernel.submitCorrupted({ cdb: cdbWithTag(READ, 1), dataInLength: 64 }, (view, at) =>
      view.setUint32(at, 0x7ffffff8 | 1, true),
    );
    await until(() => errors.length > 0);
    expect(errors[0]!.code).toBe('TCMU_ERR_RING_CORRUPT');
    expect(ring.corrupt).toBe(true);
    void pending.catch(() => {});

    let ring2!: Ring;
    const second = await setUp({}, { onCommand: patternHandler(() => ring2) });
    ring2 = second.ring;
    second.kernel.corruptHead(12345);
    await until(() => second.errors.length > 0);
    expect(second.errors[0]!.code).toBe('TCMU_ERR_RING_CORRUPT');
    expect(second.errors[0]!.message).toContain('cmd_head 12345');
  });

  it('does not walk past its cursor when the kernel rewrites an entry it already consumed', async () => {
    const held: RingCommand[] = [];
    const { kernel, ring, errors } = await setUp({}, { onCommand: (command) => held.push(command) });
    const results = [1, 2].map((tag) => kernel.submit({ cdb: cdbWithTag(READ, tag), dataInLength: 512 }));
    results.forEach((result) => {
      void result.catch(() => {});
    });
    await until(() => held.length === 2);
    const view = new DataView(kernel.sharedMemory.buffer, kernel.sharedMemory.byteOffset);
    view.setUint32(128, 0, true); // the first entry's len_op, where the completion goes
    ring.complete(held[1]!.id, { status: 0 });
    expect(ring.corrupt).toBe(true);
    expect(errors.map((error) => error.code)).toContain('TCMU_ERR_RING_CORRUPT');
  });

  it('completes the command of a handler that throws, and reports the error', async () => {
    const { kernel, errors } = await setUp(
      {},
      {
        onCommand: () => {
          throw new Error('handler bug');
        },
      },
    );
    const result = await kernel.submit({ cdb: cdbWithTag(READ, 1), dataInLength: 64 });
    expect(result).toMatchObject({ status: 2, unknownOperation: true });
    expect(errors[0]!.code).toBe('TCMU_ERR_RING_HANDLER');
    expect((errors[0]!.cause as Error).message).toBe('handler bug');
  });

  it('refuses to complete an id that is not in flight (it would break the ring)', async () => {
    const held: RingCommand[] = [];
    const { kernel, ring } = await setUp({}, { onCommand: (command) => held.push(command) });
    const pending = kernel.submit({ cdb: cdbWithTag(READ, 1), dataInLength: 64 });
    await until(() => held.length === 1);
    expect(() => ring.complete(held[0]!.id + 1, { status: 0 })).toThrowError(
      expect.objectContaining({ code: 'TCMU_ERR_RING_UNKNOWN_COMMAND' }),
    );
    expect(() => ring.complete(held[0]!.id, { status: 300 })).toThrowError(
      expect.objectContaining({ code: 'TCMU_ERR_RING_INVALID_COMPLETION' }),
    );
    expect(() => ring.complete(held[0]!.id, { status: 2, sense: new Uint8Array(97) })).toThrowError(
      expect.objectContaining({ code: 'TCMU_ERR_RING_INVALID_COMPLETION' }),
    );
    ring.complete(held[0]!.id, { status: 0 });
    expect(() => ring.complete(held[0]!.id, { status: 0 })).toThrowError(
      expect.objectContaining({ code: 'TCMU_ERR_RING_UNKNOWN_COMMAND' }),
    );
    expect((await pending).status).toBe(0);
    expect(kernel.broken).toBeUndefined();
  });

  it('spans data over discontiguous blocks once the data area is fragmented', async () => {
    const held: RingCommand[] = [];
    const { kernel, ring } = await setUp({ dataBlocks: 32 }, { onCommand: (command) => held.push(command) });
    // Fill blocks 0..7 with eight one-block commands, free every other one, then ask for four blocks.
    const small = Array.from({ length: 8 }, (_, i) =>
      kernel.submit({ cdb: cdbWithTag(READ, i), dataInLength: 4096 }),
    );
    await until(() => held.length === 8);
    for (const command of held.filter((_, i) => i % 2 === 0)) ring.complete(command.id, { status: 0 });
    ring.flush();
    await Promise.all(small.filter((_, i) => i % 2 === 0));
    held.splice(0, held.length, ...held.filter((_, i) => i % 2 === 1));
    const big = kernel.submit({ cdb: cdbWithTag(READ, 100), dataInLength: 6 * 4096 });
    await until(() => held.length === 5);
    const command = held[4]!;
    expect(command.iovecs.length).toBeGreaterThan(1);
    expect(scatterLength(command.iovecs)).toBe(6 * 4096);
    scatterCopyFrom(command.iovecs, 0, pattern(100, 6 * 4096));
    for (const c of held) ring.complete(c.id, { status: 0 });
    expectBytes((await big).dataIn, pattern(100, 6 * 4096));
    await Promise.all(small);
  });

  it('serves commands that were in the ring before start()', async () => {
    const kernel = new SimulatedKernel();
    const ring = await kernel.openRing();
    open.push({ kernel, ring });
    const early = [1, 2, 3].map((tag) => kernel.submit({ cdb: cdbWithTag(READ, tag), dataInLength: 512 }));
    await new Promise((resolve) => setImmediate(resolve));
    expect(kernel.inRing).toBe(3);
    ring.start({ onCommand: patternHandler(() => ring) });
    const results = await Promise.all(early);
    results.forEach((result, i) => {
      expectBytes(result.dataIn, pattern(i + 1, 512));
    });
  });

  it('copies data-in into an initiator-owned buffer when asked (dataInto)', async () => {
    let ring!: Ring;
    ({ ring } = await setUp({}, { onCommand: patternHandler(() => ring) }));
    const kernel = open[0]!.kernel;
    const into = new Uint8Array(8192);
    const result = await kernel.submit({ cdb: cdbWithTag(READ, 4), dataInLength: 6000, dataInto: into });
    expect(result.dataIn.buffer).toBe(into.buffer);
    expectBytes(result.dataIn, pattern(4, 6000));
    await expect(
      kernel.submit({ cdb: cdbWithTag(READ, 4), dataInLength: 9000, dataInto: into }),
    ).rejects.toMatchObject({ code: 'TCMU_ERR_RING_INVALID_ARGUMENT' });
  });

  it('passes bidirectional commands with separate data-in iovecs', async () => {
    let ring!: Ring;
    ({ ring } = await setUp(
      {},
      {
        onCommand: (command) => {
          const input = new Uint8Array(command.dataLength);
          scatterCopyTo(command.iovecs, 0, input);
          scatterCopyFrom(
            command.bidirectionalIovecs,
            0,
            input.map((b) => b ^ 0xff),
          );
          ring.complete(command.id, { status: 0 });
        },
      },
    ));
    const kernel = open[0]!.kernel;
    const result = await kernel.submit({
      cdb: cdbWithTag(0x89, 1),
      dataOut: pattern(3, 1000),
      dataInLength: 1000,
    });
    expectBytes(
      result.dataIn,
      pattern(3, 1000).map((b) => b ^ 0xff),
    );
  });

  it('serves several devices from one waiter at once', async () => {
    const rings: Ring[] = [];
    const kernels: SimulatedKernel[] = [];
    for (let i = 0; i < 3; i++) {
      const index = i;
      const { kernel, ring } = await setUp(
        {},
        {
          onCommand: (command) => {
            scatterCopyFrom(command.iovecs, 0, pattern(index, command.dataLength));
            rings[index]!.complete(command.id, { status: 0 });
          },
        },
      );
      rings.push(ring);
      kernels.push(kernel);
    }
    const results = await Promise.all(
      kernels.flatMap((kernel) =>
        Array.from({ length: 50 }, () => kernel.submit({ cdb: cdbWithTag(READ, 0), dataInLength: 256 })),
      ),
    );
    results.forEach((result, i) => {
      expectBytes(result.dataIn, pattern(Math.floor(i / 50), 256));
    });
    // One waiter, one poll() for all of them: never one blocked call per device.
    expect(processWaiter().sourceCount).toBe(3);
    expect(processWaiter().polling).toBe(true);
  });

  it('close() waits for commands in flight, then unmaps once; a second open is refused while open', async () => {
    const held: RingCommand[] = [];
    const { kernel, ring } = await setUp({}, { onCommand: (command) => held.push(command) });
    await expect(kernel.openRing()).rejects.toMatchObject({ code: 'TCMU_ERR_RING_IO', errno: 'EBUSY' });
    const pending = kernel.submit({ cdb: cdbWithTag(READ, 1), dataInLength: 64 });
    await until(() => held.length === 1);
    let closed = false;
    const closing = ring.close().then(() => {
      closed = true;
    });
    expect(ring.close()).toBe(ring.close());
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(closed).toBe(false);
    scatterCopyFrom(held[0]!.iovecs, 0, pattern(1, 64));
    ring.complete(held[0]!.id, { status: 0 });
    await closing;
    expectBytes((await pending).dataIn, pattern(1, 64));
    expect(() => ring.start({ onCommand: () => {} })).toThrowError(
      expect.objectContaining({ code: 'TCMU_ERR_RING_CLOSED' }),
    );
    // After close the device can be opened again, like a uio device.
    const again = await kernel.openRing();
    await again.close();
  });

  it('notices a new command while another stays in flight and nothing completes (no completion re-checks the ring)', async () => {
    const held: RingCommand[] = [];
    const { kernel, ring } = await setUp({}, { onCommand: (command) => held.push(command) });
    const first = kernel.submit({ cdb: cdbWithTag(READ, 1), dataInLength: 64 });
    await until(() => held.length === 1);
    // The ring is busy (one command in flight): the second command must still be consumed.
    const second = kernel.submit({ cdb: cdbWithTag(READ, 2), dataInLength: 64 });
    await until(() => held.length === 2);
    for (const command of held) ring.complete(command.id, { status: 0 });
    expect((await first).status).toBe(0);
    expect((await second).status).toBe(0);
    // Idle again: the ring sleeps in the waiter's poll().
    await until(() => processWaiter().polling);
  });

  it('leaves no native call pending once every ring is closed', async () => {
    const { kernel, ring } = await setUp(
      {},
      { onCommand: (command) => ring.complete(command.id, { status: 0 }) },
    );
    await kernel.submit({ cdb: cdbWithTag(0, 1, 6) });
    expect(processWaiter().polling).toBe(true);
    open.splice(0);
    await ring.close();
    expect(processWaiter().sourceCount).toBe(0);
    expect(processWaiter().polling).toBe(false);
    await kernel.close();
  });

  it('close({ abandonInFlight }) returns at once and leaves stray views harmless', async () => {
    const held: RingCommand[] = [];
    const { kernel, ring } = await setUp({}, { onCommand: (command) => held.push(command) });
    void kernel.submit({ cdb: cdbWithTag(READ, 1), dataInLength: 64 }).catch(() => {});
    await until(() => held.length === 1);
    await ring.close({ abandonInFlight: true });
    held[0]!.iovecs[0]!.fill(1); // anonymous memory now: no crash
    expect(() => ring.complete(held[0]!.id, { status: 0 })).not.toThrow();
  });

  it('refuses a mailbox it does not understand', async () => {
    const wrongVersion = new SimulatedKernel({ mailboxVersion: 1 });
    await expect(wrongVersion.openRing()).rejects.toMatchObject({ code: 'TCMU_ERR_RING_UNSUPPORTED' });
    await wrongVersion.close();
    const noOutOfOrder = new SimulatedKernel({ capabilities: { outOfOrderCompletion: false } });
    await expect(noOutOfOrder.openRing()).rejects.toMatchObject({ code: 'TCMU_ERR_RING_UNSUPPORTED' });
    await noOutOfOrder.close();
  });
});

describe('SimulatedKernel reaping', () => {
  it('marks the ring broken, loudly, when a completion names an id it does not know', async () => {
    const kernel = new SimulatedKernel();
    const broken: RingError[] = [];
    kernel.onBroken((error) => broken.push(error));
    const pending = kernel.submit({ cdb: cdbWithTag(READ, 1), dataInLength: 64 });
    const other = kernel.submit({ cdb: cdbWithTag(READ, 2), dataInLength: 64 });
    // Play a buggy userspace: complete the first entry with a bogus id, move cmd_tail, kick.
    const memory = kernel.sharedMemory;
    const view = new DataView(memory.buffer, memory.byteOffset);
    const entry = 128 + view.getUint32(64, true);
    const length = view.getUint32(entry, true) & ~7;
    view.setUint16(entry + 4, 4242, true);
    view.setUint32(64, length, true);
    const stderr = console.error;
    console.error = () => {};
    try {
      kernel.kick();
    } finally {
      console.error = stderr;
    }
    await expect(pending).rejects.toMatchObject({ code: 'TCMU_ERR_RING_BROKEN' });
    await expect(other).rejects.toMatchObject({ code: 'TCMU_ERR_RING_BROKEN' });
    expect(kernel.broken?.message).toContain('cmd_id 4242 not found');
    expect(broken).toHaveLength(1);
    await expect(kernel.submit({ cdb: cdbWithTag(READ, 3) })).rejects.toMatchObject({
      code: 'TCMU_ERR_RING_BROKEN',
    });
    expect(isRingError(kernel.broken, 'TCMU_ERR_RING_BROKEN')).toBe(true);
    await kernel.close();
  });

  it('writes entries with the kernel layout: header, iovec counts, cdb_off, PAD to the end', async () => {
    const kernel = new SimulatedKernel({ commandRingSize: 1024 - 128 + 8 * 20 });
    const memory = kernel.sharedMemory;
    const view = new DataView(memory.buffer, memory.byteOffset);
    expect(view.getUint16(0, true)).toBe(2);
    expect(view.getUint16(2, true)).toBe(0xf);
    expect(view.getUint32(4, true)).toBe(128);
    expect(view.getUint32(8, true)).toBe(1024 - 128 + 160);
    void kernel
      .submit({ cdb: Uint8Array.of(0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0), dataInLength: 4096 })
      .catch(() => {});
    // One iovec: base size max(48 + 16, 112) = 112, CDB of 10 rounded to 16: 128 bytes.
    expect(view.getUint32(128, true)).toBe(128 | 1);
    expect(view.getUint16(132, true)).toBe(1);
    expect(view.getUint32(136, true)).toBe(1);
    expect(Number(view.getBigUint64(128 + 24, true))).toBe(128 + 112);
    expect(Number(view.getBigUint64(128 + 48, true))).toBe(kernel.dataAreaOffset);
    expect(Number(view.getBigUint64(128 + 56, true))).toBe(4096);
    expect(memory[128 + 112]).toBe(0x28);
    expect(view.getUint32(12, true)).toBe(128);
    await kernel.close();
  });
});

/** Byte equality without vitest's element-by-element diff (slow for large arrays). */
function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  const same = Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(
    Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength),
  );
  if (!same) expect(Buffer.from(actual).toString('hex')).toBe(Buffer.from(expected).toString('hex'));
}

/** Wait (on the event loop, no wall-clock limit) until `condition` holds. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}
