import { type Backend, scatterCopyTo } from '@tcmu/backend';
import {
  encodeRequestSense,
  type FormatUnitCdb,
  formatCommandFailed,
  initializingCommandRequired,
  invalidFieldInCdb,
  noSense,
  type PreventAllowMediumRemovalCdb,
  parseFormatUnitParameterList,
  type RequestSenseCdb,
  type StartStopUnitCdb,
  type TestUnitReadyCdb,
} from '@tcmu/scsi';
import type { DeviceContext } from '../device';
import { checkCondition, good } from '../response';
import type { ScsiCommand, ScsiResponse } from '../types';
import { blockRange, checkWritable, chunkBytes, fail, respondOnError } from './common';
import { respondWithData } from './inquiry';

export { emulateReadCapacity10, emulateReadCapacity16 } from './capacity';
export { emulateInquiry } from './inquiry';
export { emulateModeSelect, emulateModeSense } from './mode';

/** TEST UNIT READY: GOOD when ready (unit attentions, FORMAT in progress and a stopped unit are reported before). */
export function emulateTestUnitReady(command: ScsiCommand<TestUnitReadyCdb>): ScsiResponse {
  if (command.device.stopped) return checkCondition(initializingCommandRequired());
  return good();
}

/**
 * REQUEST SENSE: the FORMAT UNIT progress (02/04 04 with the progress indication), else the oldest
 * pending unit attention (which is then cleared), else 02/04 02 for a stopped unit, else NO SENSE.
 * In descriptor format when DESC is set, truncated to the allocation length; status GOOD.
 */
export function emulateRequestSense(command: ScsiCommand<RequestSenseCdb>): ScsiResponse {
  const cdb = command.decoded;
  const { device } = command;
  const info = device.format
    ? formatInProgressSense(device)
    : (device.unitAttentions.take() ?? (device.stopped ? initializingCommandRequired() : noSense()));
  return respondWithData(command, encodeRequestSense(info, cdb));
}

function formatInProgressSense(device: DeviceContext) {
  const progress = Math.max(0, Math.min(0xffff, Math.floor((device.format?.progress ?? 0) * 65536)));
  return { key: 0x02, asc: 0x04, ascq: 0x04, progress };
}

/**
 * START STOP UNIT: START = 0 stops the unit (media access then gets 02/04 02; `backend` is flushed
 * first unless NO_FLUSH), START = 1 starts it. Power conditions other than START_VALID are accepted
 * without effect; LOEJ is 05/24 00 (the medium is not removable).
 */
export function emulateStartStopUnit(
  command: ScsiCommand<StartStopUnitCdb>,
  backend: Backend,
): Promise<ScsiResponse> {
  const cdb = command.decoded;
  return respondOnError(async () => {
    const { device } = command;
    if (cdb.powerCondition !== 0) return good();
    if (cdb.loej) fail(invalidFieldInCdb(4, 1));
    if (!cdb.start && !cdb.noFlush && backend.flush) await backend.flush();
    device.stopped = !cdb.start;
    return good();
  });
}

/** PREVENT ALLOW MEDIUM REMOVAL: PREVENT 0 or 1 is accepted (nothing to lock); 2 and 3 are 05/24 00. */
export function emulatePreventAllowMediumRemoval(
  command: ScsiCommand<PreventAllowMediumRemovalCdb>,
): ScsiResponse {
  const cdb = command.decoded;
  if (cdb.prevent > 1) return checkCondition(invalidFieldInCdb(4, 1));
  return good();
}

/** Zeroes the whole medium, reporting progress into `device.format` (fraction done). */
async function zeroMedium(device: DeviceContext, backend: Backend, signal: AbortSignal): Promise<void> {
  const total = device.size;
  const fast = Boolean(backend.unmap || backend.writeZeroes);
  const step = fast ? 64 * chunkBytes : chunkBytes;
  const zeros = fast ? undefined : new Uint8Array(step);
  for (let done = 0; done < total; done += step) {
    if (signal.aborted) return;
    const n = Math.min(step, total - done);
    if (backend.unmap) await backend.unmap(done, n);
    else if (backend.writeZeroes) await backend.writeZeroes(done, n);
    else await backend.write(done, [zeros!.subarray(0, n)]);
    if (device.format) device.format.progress = (done + n) / total;
  }
  if (backend.flush) await backend.flush();
}

/**
 * FORMAT UNIT: zeroes the medium (unmap, writeZeroes or writes of zeros, whichever the backend
 * has), holding the whole range so no write interleaves. While it runs, commands other than
 * INQUIRY, REQUEST SENSE and REPORT LUNS get 02/04 04 with the progress in the sense key-specific
 * bytes. With FMTDATA the short or long parameter list header is checked: IMMED answers GOOD at once
 * and formats in the background (a failure is then reported as 03/31 01 to the next command); a
 * defect list, an initialization pattern (IP) or FOV = 0 with option bits set is 05/26 00.
 */
export function emulateFormatUnit(
  command: ScsiCommand<FormatUnitCdb>,
  backend: Backend,
): Promise<ScsiResponse> {
  const cdb = command.decoded;
  return respondOnError(async () => {
    const { device } = command;
    checkWritable(device);
    let immediate = false;
    if (cdb.fmtdata) {
      const header = new Uint8Array(Math.min(command.dataLength, cdb.longList ? 8 : 4));
      scatterCopyTo(command.data, 0, header);
      const parsed = parseFormatUnitParameterList(header, cdb.longList);
      if (!parsed.ok) fail(parsed.sense);
      immediate = parsed.header.immed;
    }
    if (device.format) fail(formatInProgressSense(device));
    device.format = { progress: 0 };
    const release = await device.locks.acquire(blockRange(0, device.blockCount));
    const run = zeroMedium(device, backend, command.signal).finally(() => {
      release();
      device.format = undefined;
    });
    if (immediate) {
      run.catch(() => device.unitAttentions.establish(formatCommandFailed()));
      return good();
    }
    try {
      await run;
    } catch {
      fail(formatCommandFailed());
    }
    return good();
  });
}
