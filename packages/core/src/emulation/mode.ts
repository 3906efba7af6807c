import { type Backend, scatterCopyTo } from '@tcmu/backend';
import {
  encodeModeSense,
  type ModePageSets,
  type ModeSelectCdb,
  type ModeSenseCdb,
  parseModeSelect,
} from '@tcmu/scsi';
import type { DeviceContext } from '../device';
import { checkCondition, good } from '../response';
import type { ScsiCommand, ScsiResponse } from '../types';
import { respondOnError } from './common';
import { respondWithData } from './inquiry';

/**
 * The mode pages of `device`: Read-Write Error Recovery (01h), Caching (08h: WCE, changeable only
 * when the backend can flush) and Control (0Ah: D_SENSE, QUEUE ALGORITHM MODIFIER 1 since commands
 * complete out of order, SWP for read-only devices). Saving is not supported.
 */
export function modePages(device: DeviceContext): ModePageSets {
  const control = { queueAlgorithmModifier: 1, swp: device.readOnly };
  return {
    current: {
      readWriteErrorRecovery: {},
      caching: { wce: device.writeCacheEnabled },
      control: { ...control, dSense: device.descriptorSense },
    },
    changeable: {
      readWriteErrorRecovery: {},
      caching: { wce: device.capabilities.flush },
      control: {},
    },
    default: {
      readWriteErrorRecovery: {},
      caching: { wce: device.capabilities.flush },
      control,
    },
  };
}

/**
 * MODE SENSE(6/10): pages 01h, 08h, 0Ah or all (3Fh), with page control current / changeable /
 * default (saved is 05/39 00), the block descriptor unless DBD (long with LLBAA), WP for read-only
 * devices and DPOFUA. Truncated to the allocation length, MODE DATA LENGTH unchanged.
 */
export function emulateModeSense(command: ScsiCommand<ModeSenseCdb>): ScsiResponse {
  const cdb = command.decoded;
  const { device } = command;
  const result = encodeModeSense(cdb, {
    pages: modePages(device),
    writeProtect: device.readOnly,
    dpoFua: true,
    blockDescriptor: { numberOfBlocks: device.blockCount, blockLength: device.blockSize },
  });
  if (!result.ok) return checkCondition(result.sense);
  return respondWithData(command, result.data);
}

/**
 * MODE SELECT(6/10): only WCE of the Caching page may change (and only when the backend can flush);
 * any other change, a different block length or SP = 1 is 05/26 00 / 05/24 00 with the field
 * pointer. Turning the write cache off flushes `backend` first.
 */
export function emulateModeSelect(
  command: ScsiCommand<ModeSelectCdb>,
  backend: Backend,
): Promise<ScsiResponse> {
  const cdb = command.decoded;
  return respondOnError(async () => {
    const { device } = command;
    const length = Math.min(cdb.parameterListLength, command.dataLength);
    const list = new Uint8Array(length);
    scatterCopyTo(command.data, 0, list);
    const pages = modePages(device);
    const result = parseModeSelect(cdb, list, {
      current: pages.current,
      changeable: pages.changeable,
      savable: false,
      blockDescriptor: { numberOfBlocks: device.blockCount, blockLength: device.blockSize },
    });
    if (!result.ok) return checkCondition(result.sense);
    const wce = result.pages.caching?.wce;
    if (wce !== undefined && wce !== device.writeCacheEnabled) {
      if (!wce && backend.flush) await backend.flush();
      device.writeCacheEnabled = wce;
    }
    return good();
  });
}
