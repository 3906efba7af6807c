import type { CommandDoneInfo } from '@tcmu/core';
import { decodeCdb } from '@tcmu/scsi';
import { senseKeyName, statusName } from './command-kinds.js';
import type { Logger } from './logger.js';

export interface CommandTracerOptions {
  /** At most this many command lines per second; the rest are counted and reported once a second. */
  readonly maxPerSecond?: number;
  /** Clock in milliseconds (tests). */
  readonly now?: () => number;
}

/**
 * An `onCommandDone` observer that logs each command at level `trace`: opcode name, LBA, length,
 * status, sense key and latency. Sampled: past `maxPerSecond` lines in a second the rest are only
 * counted and one line says how many were skipped, so a slow terminal or pipe on stderr (the logger
 * writes synchronously) cannot stall the disk.
 */
export function createCommandTracer(
  logger: Logger,
  options: CommandTracerOptions = {},
): (info: CommandDoneInfo) => void {
  const budget = options.maxPerSecond ?? 200;
  const now = options.now ?? (() => performance.now());
  let windowStart = now();
  let traced = 0;
  let skipped = 0;
  return (info) => {
    const time = now();
    if (time - windowStart >= 1000) {
      if (skipped > 0)
        logger.trace(
          { skipped, maxPerSecond: budget },
          `trace: ${skipped} commands not traced (sampling at ${budget}/s)`,
        );
      windowStart = time;
      traced = 0;
      skipped = 0;
    }
    if (traced >= budget) {
      skipped++;
      return;
    }
    traced++;
    const decoded = decodeCdb(info.cdb);
    const status = statusName(info.status);
    const sense = info.senseKey === undefined ? undefined : senseKeyName(info.senseKey);
    const lba = decoded.ok && decoded.lba !== undefined ? Number(decoded.lba) : undefined;
    const blocks = decoded.ok ? decoded.transferLength : undefined;
    const ms = Math.round(info.latencyMs * 1000) / 1000;
    logger.trace(
      { op: decoded.name, opcode: info.cdb[0], lba, blocks, bytes: info.dataLength, status, sense, ms },
      `${decoded.name}${lba === undefined ? '' : ` lba ${lba}`}${blocks === undefined ? '' : ` blocks ${blocks}`} ${status}${sense ? ` (${sense})` : ''} ${ms} ms`,
    );
  };
}
