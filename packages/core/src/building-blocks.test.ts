// The building blocks as a custom target composes them: typed (misuse does not compile; `pnpm
// typecheck` checks the @ts-expect-error lines), given their backend explicitly, and served with the
// one ServeTarget shape serveRing and openDevice share.
import type { Backend } from '@tcmu/backend';
import { BackendError, BackendErrorCode } from '@tcmu/backend';
import { openMemoryBackend } from '@tcmu/backend-memory';
import { SimulatedKernel } from '@tcmu/ring/testing';
import type { DecodedCdb, ReadCdb, TestUnitReadyCdb } from '@tcmu/scsi';
import { buildCdb, decodeCdb, invalidFieldInCdb, lbaOutOfRange } from '@tcmu/scsi';
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import { checkLbaRange, fail, respondOnError } from './emulation/common';
import { emulateTestUnitReady } from './emulation/control';
import { defineCommand, emulate } from './emulation/handler';
import { emulateRead } from './emulation/io';
import { isCoreError } from './errors';
import { good } from './response';
import { serveRing } from './serve';
import { type Harness, harness, pattern, senseCode } from './test-support';
import { handlerFunction, isCommand, type ScsiCommand } from './types';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Never called: holds the lines whose misuse must not compile. */
function misuse(command: ScsiCommand<TestUnitReadyCdb>, raw: ScsiCommand, backend: Backend, ring: never) {
  // @ts-expect-error READ's block on a TEST UNIT READY.
  void emulateRead(command, backend);
  // @ts-expect-error a command not narrowed yet (any CDB).
  void emulateRead(raw, backend);
  // @ts-expect-error the backend left out.
  void emulateRead(raw as ScsiCommand<ReadCdb>);
  // @ts-expect-error emulate() needs its backend.
  void emulate();
  // @ts-expect-error an emulation served without the backend it emulates over.
  void serveRing(ring, { handler: emulate(backend), size: 1 << 20 });
  // @ts-expect-error nothing to serve.
  void serveRing(ring, { name: 'nothing' });
  // @ts-expect-error a row named READ(10) gets READ's CDB: TEST UNIT READY's block does not take it.
  void defineCommand({ name: 'READ(10)', opcode: 0x28, handle: (c) => emulateTestUnitReady(c) });
}

describe('typed building blocks', () => {
  it('take the narrowed command and the backend; isCommand narrows', () => {
    expect(misuse).toBeTypeOf('function');
    expectTypeOf(emulateRead).parameter(0).toEqualTypeOf<ScsiCommand<ReadCdb>>();
    expectTypeOf(emulateRead).parameter(1).toEqualTypeOf<Backend>();
    expectTypeOf<ScsiCommand['decoded']>().toEqualTypeOf<DecodedCdb>();
    const row = defineCommand({
      name: 'READ(16)',
      opcode: 0x88,
      handle: (c, e) => emulateRead(c, e.backend),
    });
    expectTypeOf(row.handle).parameter(0).toEqualTypeOf<ScsiCommand<ReadCdb>>();
    const cdb = buildCdb({ name: 'READ(16)', lba: 0n, transferLength: 1 });
    const command = { cdb, decoded: decodeCdb(cdb) } as ScsiCommand;
    expect(isCommand(command, 'READ(10)', 'READ(16)')).toBe(true);
    expect(isCommand(command, 'READ(10)', 'WRITE(16)')).toBe(false);
    if (isCommand(command, 'READ(10)', 'READ(16)')) expectTypeOf(command.decoded).toEqualTypeOf<ReadCdb>();
  });

  it('a custom handler composes isCommand, checkLbaRange, fail and emulateRead over its backend', async () => {
    const backend = await openMemoryBackend({ size: 1024 * 1024 });
    const standard = emulate(backend);
    // Reads of the first 16 blocks only; a vendor command (C0h) that always fails with 05/24 00.
    const handler = handlerFunction((command) => {
      if (isCommand(command, 'READ(10)'))
        return respondOnError(() => {
          checkLbaRange(command.device, command.decoded.lba, 0);
          if (command.decoded.lba + BigInt(command.decoded.transferLength) > 16n)
            fail(lbaOutOfRange(command.decoded.lba));
          return emulateRead(command, backend);
        });
      if (command.cdb[0] === 0xc0) return respondOnError(() => fail(invalidFieldInCdb(1)));
      return standard.handle(command);
    });
    h = await harness({ handler, backend, size: backend.size });
    const data = pattern(512, 3);
    expect((await h.send({ name: 'WRITE(10)', lba: 15n, transferLength: 1 }, { out: data })).status).toBe(0);
    const read = await h.send({ name: 'READ(10)', lba: 15n, transferLength: 1 }, { inLength: 512 });
    expect(Buffer.from(read.dataIn).equals(Buffer.from(data))).toBe(true);
    const far = await h.send({ name: 'READ(10)', lba: 16n, transferLength: 1 }, { inLength: 512 });
    expect(senseCode(far)).toBe('05/21/00');
    expect(senseCode(await h.send(Uint8Array.of(0xc0, 0, 0, 0, 0, 0)))).toBe('05/24/00');
    expect(h.served.stats.handlerFailures).toBe(0);
  });

  it('refuses a row named like a standard command with another opcode', async () => {
    const backend = await openMemoryBackend({ size: 1024 * 1024 });
    const build = () =>
      emulate(backend, {
        commands: [defineCommand({ name: 'READ(10)', opcode: 0x2a, handle: () => good() })],
      });
    expect(() => build()).toThrow(expect.objectContaining({ code: 'TCMU_ERR_CORE_INVALID_OPTION' }));
  });
});

describe('one serve shape', () => {
  it('serves { backend } with the standard emulation and { backend, handler } with the handler', async () => {
    const backend = await openMemoryBackend({ size: 1024 * 1024 });
    const kernel = new SimulatedKernel();
    const plain = serveRing(await kernel.openRing(), { backend, powerOnUnitAttention: false });
    expect((await kernel.submit({ cdb: Uint8Array.of(0xc0, 0, 0, 0, 0, 0) })).status).toBe(2);
    await plain.close();
    const handler = emulate(backend, {
      commands: [
        { name: 'PING', opcode: 0xc0, cdbUsage: Uint8Array.of(0xc0, 0, 0, 0, 0, 0), handle: () => good() },
      ],
    });
    const custom = serveRing(await kernel.openRing(), { backend, handler, powerOnUnitAttention: false });
    expect((await kernel.submit({ cdb: Uint8Array.of(0xc0, 0, 0, 0, 0, 0) })).status).toBe(0);
    await custom.close();
    await kernel.close();
  });

  it('refuses (TCMU_ERR_CORE_INVALID_OPTION) an emulation over another backend, or nothing to serve', async () => {
    const backend = await openMemoryBackend({ size: 1024 * 1024 });
    const other = await openMemoryBackend({ size: 1024 * 1024 });
    const kernel = new SimulatedKernel();
    const ring = await kernel.openRing();
    for (const options of [{ backend, handler: emulate(other) }, { name: 'nothing' }]) {
      let error: unknown;
      try {
        serveRing(ring, options as never);
      } catch (e) {
        error = e;
      }
      expect(isCoreError(error, 'TCMU_ERR_CORE_INVALID_OPTION'), String(error)).toBe(true);
    }
    await kernel.close();
  });

  it('counts a BackendError a custom handler throws in stats.backendErrors, like the emulation’s', async () => {
    const handler = handlerFunction(() => {
      throw new BackendError(BackendErrorCode.NoSpace, 'full');
    });
    h = await harness({ handler, size: 1024 * 1024 });
    expect(senseCode(await h.send({ name: 'TEST UNIT READY' }))).toBe('07/27/07');
    expect(h.served.stats.backendErrors).toBe(1);
    expect(h.served.stats.handlerFailures).toBe(0);
  });
});
