import { type Backend, firstDifference, isAllZero, scatterCopyTo, scatterSlice } from '@tcmu/backend';
import type {
  CompareAndWriteCdb,
  ReadCdb,
  SynchronizeCacheCdb,
  UnmapCdb,
  VerifyCdb,
  WriteAndVerifyCdb,
  WriteCdb,
  WriteSameCdb,
} from '@tcmu/scsi';
import {
  invalidFieldInCdb,
  lbaOutOfRange,
  miscompare,
  parseUnmapParameterList,
  writeError,
} from '@tcmu/scsi';
import { good } from '../response';
import type { ScsiCommand, ScsiResponse } from '../types';
import {
  blockRange,
  checkDataLength,
  checkLbaRange,
  checkTransferLimit,
  checkWritable,
  chunkBytes,
  fail,
  flushIfNeeded,
  needsFlush,
  respondOnError,
  responseForThrown,
} from './common';

/**
 * READ(6/10/12/16): range check, then the backend reads straight into the ring's iovecs. The checks
 * run synchronously and only the backend's promise is awaited (one `then`, no async wrappers): this
 * is the hot path. A backend with `tryReadSync` that answers at once (memory, tmpfs, a page-cache
 * hit) is answered synchronously: no promise at all.
 */
export function emulateRead(
  command: ScsiCommand<ReadCdb>,
  backend: Backend,
): Promise<ScsiResponse> | ScsiResponse {
  const cdb = command.decoded;
  try {
    const { device } = command;
    checkLbaRange(device, cdb.lba, cdb.transferLength);
    checkTransferLimit(command, cdb.transferLength, device.limits.maxTransferBlocks);
    const bytes = cdb.transferLength * device.blockSize;
    if (bytes === 0) return good(0);
    checkDataLength(command, bytes);
    const data = bytes === command.dataLength ? command.data : scatterSlice(command.data, 0, bytes);
    const offset = Number(cdb.lba) * device.blockSize;
    if (backend.tryReadSync?.(offset, bytes, data) === true) {
      device.stats.bytesRead += bytes;
      return good(bytes);
    }
    return backend.read(offset, bytes, data).then(
      () => {
        device.stats.bytesRead += bytes;
        return good(bytes);
      },
      (error: unknown) => responseForThrown(error, cdb.lba),
    );
  } catch (error) {
    return settledResponse(error, cdb.lba);
  }
}

/** A synchronous throw of a building block as its (promised) response; bugs become rejections. */
function settledResponse(error: unknown, lba?: bigint): Promise<ScsiResponse> {
  try {
    return Promise.resolve(responseForThrown(error, lba));
  } catch (bug) {
    return Promise.reject(bug);
  }
}

async function writeRange(
  command: ScsiCommand,
  backend: Backend,
  lba: bigint,
  blocks: number,
): Promise<void> {
  const { device } = command;
  const bytes = blocks * device.blockSize;
  await backend.write(Number(lba) * device.blockSize, scatterSlice(command.data, 0, bytes));
  device.stats.bytesWritten += bytes;
}

/**
 * WRITE(6/10/12/16): read-only and range checks, the range lock (so COMPARE AND WRITE stays atomic),
 * the backend write from the iovecs, then a flush when FUA is set or the write cache is disabled.
 */
export function emulateWrite(
  command: ScsiCommand<WriteCdb>,
  backend: Backend,
): Promise<ScsiResponse> | ScsiResponse {
  return lockedWrite(command, backend, command.decoded.fua);
}

/**
 * What WRITE and WRITE AND VERIFY share: the checks, then under the range lock the write, a flush
 * (`fua`, or the write cache disabled) and `afterWrite` (the verification).
 *
 * The common case (a free range, no flush, no verification) is the hot path: the checks and the lock
 * are synchronous and only the backend's promise is awaited, as in {@link emulateRead}. Everything
 * else takes the general path; both answer alike for every outcome.
 */
function lockedWrite(
  command: ScsiCommand<WriteCdb | WriteAndVerifyCdb>,
  backend: Backend,
  fua: boolean,
  afterWrite?: () => Promise<void>,
): Promise<ScsiResponse> | ScsiResponse {
  const cdb = command.decoded;
  const { device } = command;
  let release: (() => void) | undefined;
  try {
    checkWritable(device);
    checkLbaRange(device, cdb.lba, cdb.transferLength);
    checkTransferLimit(command, cdb.transferLength, device.limits.maxTransferBlocks);
    if (cdb.transferLength === 0) return good();
    const bytes = cdb.transferLength * device.blockSize;
    checkDataLength(command, bytes);
    if (afterWrite || needsFlush(device, backend, fua))
      return lockedWriteInGeneral(command, backend, fua, afterWrite);
    release = device.locks.tryAcquire(blockRange(cdb.lba, cdb.transferLength));
    if (!release) return lockedWriteInGeneral(command, backend, fua, afterWrite);
    const data = bytes === command.dataLength ? command.data : scatterSlice(command.data, 0, bytes);
    const offset = Number(cdb.lba) * device.blockSize;
    if (backend.tryWriteSync?.(offset, data) === true) {
      release();
      device.stats.bytesWritten += bytes;
      return good();
    }
    const held = release;
    return backend.write(offset, data).then(
      () => {
        held();
        device.stats.bytesWritten += bytes;
        return good();
      },
      (error: unknown) => {
        held();
        return responseForThrown(error, cdb.lba);
      },
    );
  } catch (error) {
    release?.();
    return settledResponse(error, cdb.lba);
  }
}

/** {@link lockedWrite} when the range is busy, or a flush or verification follows the write. */
function lockedWriteInGeneral(
  command: ScsiCommand<WriteCdb | WriteAndVerifyCdb>,
  backend: Backend,
  fua: boolean,
  afterWrite?: () => Promise<void>,
): Promise<ScsiResponse> {
  const cdb = command.decoded;
  return respondOnError(async () => {
    const { device } = command;
    await device.locks.with(blockRange(cdb.lba, cdb.transferLength), async () => {
      await writeRange(command, backend, cdb.lba, cdb.transferLength);
      await flushIfNeeded(device, backend, fua);
      await afterWrite?.();
    });
    return good();
  }, cdb.lba);
}

/**
 * Reads `blocks` blocks of the medium at `lba` chunk by chunk and, when `expected` is given, compares
 * them with `expected(offset, into)`;
 * fails with 0E/1D 00 and the byte offset of the first difference (counted from the start of the
 * compared data) in INFORMATION.
 */
async function compareMedium(
  command: ScsiCommand,
  backend: Backend,
  lba: bigint,
  blocks: number,
  expected?: (offset: number, into: Uint8Array) => void,
): Promise<void> {
  const { device } = command;
  const total = blocks * device.blockSize;
  const step = Math.min(total, Math.max(device.blockSize, chunkBytes - (chunkBytes % device.blockSize)));
  const medium = new Uint8Array(step);
  const wanted = new Uint8Array(step);
  const base = Number(lba) * device.blockSize;
  for (let done = 0; done < total; done += step) {
    if (command.signal.aborted) return;
    const n = Math.min(step, total - done);
    const m = medium.subarray(0, n);
    await backend.read(base + done, n, [m]);
    device.stats.bytesRead += n;
    if (!expected) continue;
    const w = wanted.subarray(0, n);
    expected(done, w);
    const at = firstDifference(w, m);
    if (at >= 0) fail(miscompare(done + at));
  }
}

/**
 * VERIFY(10/16). BYTCHK 0: the range is read back from the medium (a read error is 03/11 00);
 * 1: the data-out blocks are compared with the medium; 3: the single data-out block is compared with
 * every block of the range. A miscompare is 0E/1D 00 with the offset in INFORMATION.
 */
export function emulateVerify(command: ScsiCommand<VerifyCdb>, backend: Backend): Promise<ScsiResponse> {
  const cdb = command.decoded;
  return respondOnError(async () => {
    const { device } = command;
    checkLbaRange(device, cdb.lba, cdb.transferLength);
    if (cdb.transferLength === 0) return good();
    const blockSize = device.blockSize;
    if (cdb.bytchk === 0) {
      await compareMedium(command, backend, cdb.lba, cdb.transferLength);
      return good();
    }
    if (cdb.bytchk === 1) {
      checkTransferLimit(command, cdb.transferLength, device.limits.maxTransferBlocks);
      checkDataLength(command, cdb.transferLength * blockSize);
      await compareMedium(command, backend, cdb.lba, cdb.transferLength, (offset, into) => {
        scatterCopyTo(command.data, offset, into);
      });
      return good();
    }
    if (cdb.bytchk === 3) {
      checkDataLength(command, blockSize);
      const block = new Uint8Array(blockSize);
      scatterCopyTo(command.data, 0, block);
      await compareMedium(command, backend, cdb.lba, cdb.transferLength, (_offset, into) => {
        for (let i = 0; i < into.length; i += blockSize) into.set(block, i);
      });
      return good();
    }
    return fail(invalidFieldInCdb(1, 2));
  }, cdb.lba);
}

/**
 * WRITE AND VERIFY(10/16): the write is made durable (as with FUA), then BYTCHK 0 reads the range
 * back (medium verification) and BYTCHK 1 compares it with the data-out (0E/1D 00 on a difference).
 */
export function emulateWriteAndVerify(
  command: ScsiCommand<WriteAndVerifyCdb>,
  backend: Backend,
): Promise<ScsiResponse> | ScsiResponse {
  const { lba, transferLength } = command.decoded;
  return lockedWrite(command, backend, true, () =>
    compareMedium(command, backend, lba, transferLength, (offset, into) => {
      scatterCopyTo(command.data, offset, into);
    }),
  );
}

/**
 * SYNCHRONIZE CACHE(10/16): range check (0 blocks = to the end of the medium), then the backend's
 * flush; durable when GOOD is returned (IMMED is honoured by finishing the flush first anyway). The
 * first one after a take-over that lost the write cache (`DeviceContext.takeWriteCacheLoss`) flushes,
 * then fails with 03/0C 00 WRITE ERROR.
 */
export function emulateSynchronizeCache(
  command: ScsiCommand<SynchronizeCacheCdb>,
  backend: Backend,
): Promise<ScsiResponse> {
  const cdb = command.decoded;
  return respondOnError(async () => {
    const { device } = command;
    if (cdb.transferLength === 0) {
      if (cdb.lba >= device.blockCount) fail(lbaOutOfRange(cdb.lba));
    } else checkLbaRange(device, cdb.lba, cdb.transferLength);
    if (backend.flush) await backend.flush();
    if (device.takeWriteCacheLoss()) fail(writeError());
    return good();
  }, cdb.lba);
}

/** Writes zeros over a byte range with the cheapest operation the backend has. */
async function zeroRange(backend: Backend, offset: number, length: number, unmap: boolean): Promise<void> {
  if (unmap && backend.unmap) return backend.unmap(offset, length);
  if (backend.writeZeroes) return backend.writeZeroes(offset, length);
  const zeros = new Uint8Array(Math.min(length, chunkBytes));
  for (let done = 0; done < length; done += zeros.length) {
    const n = Math.min(zeros.length, length - done);
    await backend.write(offset + done, [zeros.subarray(0, n)]);
  }
}

/**
 * WRITE SAME(10/16): one block (or zeros with NDOB) written over the range. A zero block is written
 * with the backend's writeZeroes (or unmap when the UNMAP bit is set and the backend can
 * deallocate: unmapped blocks read as zeros); other data is replicated chunk by chunk. Number of
 * blocks 0 is rejected (WSNZ = 1); ANCHOR is not supported (05/24 00); UNMAP without a backend that
 * deallocates is 05/24 00 (the device reports LBPWS = 0).
 */
export function emulateWriteSame(
  command: ScsiCommand<WriteSameCdb>,
  backend: Backend,
): Promise<ScsiResponse> {
  const cdb = command.decoded;
  return respondOnError(async () => {
    const { device } = command;
    const lengthByte = cdb.cdbLength === 10 ? 7 : 10;
    if (cdb.anchor) fail(invalidFieldInCdb(1, 4));
    if (cdb.unmap && !device.capabilities.unmap) fail(invalidFieldInCdb(1, 3));
    checkWritable(device);
    if (cdb.transferLength === 0) fail(invalidFieldInCdb(lengthByte));
    checkLbaRange(device, cdb.lba, cdb.transferLength);
    if (cdb.transferLength > device.limits.maxWriteSameBlocks) fail(invalidFieldInCdb(lengthByte));
    const blockSize = device.blockSize;
    let block: Uint8Array | undefined;
    if (!cdb.ndob) {
      checkDataLength(command, blockSize);
      block = new Uint8Array(blockSize);
      scatterCopyTo(command.data, 0, block);
    }
    const offset = Number(cdb.lba) * blockSize;
    const total = cdb.transferLength * blockSize;
    await device.locks.with(blockRange(cdb.lba, cdb.transferLength), async () => {
      if (block === undefined || isAllZero(block)) await zeroRange(backend, offset, total, cdb.unmap);
      else {
        const step = Math.min(total, Math.max(blockSize, chunkBytes - (chunkBytes % blockSize)));
        const pattern = new Uint8Array(step);
        for (let i = 0; i < step; i += blockSize) pattern.set(block, i);
        for (let done = 0; done < total; done += step) {
          const n = Math.min(step, total - done);
          await backend.write(offset + done, [pattern.subarray(0, n)]);
        }
      }
      device.stats.bytesWritten += total;
      await flushIfNeeded(device, backend, false);
    });
    return good();
  }, cdb.lba);
}

/**
 * UNMAP: the parameter list is parsed and checked by @tcmu/scsi (LIO's mapping: length fields 05/1A 00,
 * too many descriptors or blocks 05/26 00, a range past the end 05/21 00) before anything is
 * deallocated; then each range is unmapped under its lock.
 */
export function emulateUnmap(command: ScsiCommand<UnmapCdb>, backend: Backend): Promise<ScsiResponse> {
  const cdb = command.decoded;
  return respondOnError(async () => {
    const { device } = command;
    if (!backend.unmap) fail(invalidFieldInCdb(0, 7));
    if (cdb.anchor) fail(invalidFieldInCdb(1, 0));
    checkWritable(device);
    const length = Math.min(cdb.parameterListLength, command.dataLength);
    const list = new Uint8Array(length);
    scatterCopyTo(command.data, 0, list);
    const parsed = parseUnmapParameterList(list, cdb.parameterListLength, {
      capacityBlocks: device.blockCount,
      maximumDescriptors: device.limits.maxUnmapDescriptors,
      maximumLbaCount: device.limits.maxUnmapBlocks,
    });
    if (!parsed.ok) fail(parsed.sense);
    const blockSize = device.blockSize;
    for (const d of parsed.descriptors) {
      if (d.count === 0) continue;
      await device.locks.with(blockRange(d.lba, d.count), () =>
        backend.unmap!(Number(d.lba) * blockSize, d.count * blockSize),
      );
    }
    await flushIfNeeded(device, backend, false);
    return good();
  });
}

/**
 * COMPARE AND WRITE: data-out holds the verify blocks then the write blocks (exactly: a data-out of
 * another length is 05/24 00, as is a length above MAXIMUM COMPARE AND WRITE LENGTH). Under the range lock
 * (no other write to these blocks can land in between) the medium is compared with the verify data
 * and, only when equal, the write data is written (FUA or WCE = 0 flushes). A difference is
 * 0E/1D 00 with the offset of the first differing byte in INFORMATION; nothing is written.
 */
export function emulateCompareAndWrite(
  command: ScsiCommand<CompareAndWriteCdb>,
  backend: Backend,
): Promise<ScsiResponse> {
  const cdb = command.decoded;
  return respondOnError(async () => {
    const { device } = command;
    checkWritable(device);
    const blocks = cdb.transferLength;
    if (blocks > device.limits.maxCompareAndWriteBlocks) fail(invalidFieldInCdb(13));
    checkLbaRange(device, cdb.lba, blocks);
    const bytes = blocks * device.blockSize;
    // The data-out must be exactly the verify then the write blocks; more or less is 05/24 00 at
    // NUMBER OF LOGICAL BLOCKS (as LIO answers; docs/conformance.md). NUMBER OF LOGICAL BLOCKS 0
    // with no data is GOOD, nothing done (SBC-4 §5.3).
    if (command.dataLength !== 2 * bytes) fail(invalidFieldInCdb(13));
    if (blocks === 0) return good();
    const offset = Number(cdb.lba) * device.blockSize;
    const verify = scatterSlice(command.data, 0, bytes);
    const data = scatterSlice(command.data, bytes, bytes);
    await device.locks.with(blockRange(cdb.lba, blocks), async () => {
      if (backend.compareAndWrite) await backend.compareAndWrite(offset, verify, data);
      else {
        const expected = new Uint8Array(bytes);
        scatterCopyTo(verify, 0, expected);
        const medium = new Uint8Array(bytes);
        await backend.read(offset, bytes, [medium]);
        const at = firstDifference(expected, medium);
        if (at >= 0) fail(miscompare(at));
        await backend.write(offset, data);
      }
      device.stats.bytesWritten += bytes;
      await flushIfNeeded(device, backend, cdb.fua);
    });
    return good();
  }, cdb.lba);
}
