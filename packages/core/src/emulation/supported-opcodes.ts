import {
  type CommandTimeouts,
  encodeSupportedOperationCodes,
  type ReportSupportedOperationCodesCdb,
  type SupportedCommand,
} from '@tcmu/scsi';
import { checkCondition } from '../response';
import type { ScsiCommand, ScsiResponse } from '../types';
import { respondWithData } from './inquiry';

/** What REPORT SUPPORTED OPERATION CODES needs of a dispatch table row. */
export interface ReportableCommand {
  readonly opcode: number;
  readonly serviceAction?: number;
  /** CDB USAGE DATA; default: @tcmu/scsi's layout of the command. */
  readonly cdbUsage?: Uint8Array;
  /** Reported with RCTD. */
  readonly timeouts?: CommandTimeouts;
}

/**
 * REPORT SUPPORTED OPERATION CODES generated from the dispatch table rows offered on the device:
 * all commands (reporting options 0) or one command (1, 2, 3) with its CDB usage data, with command
 * timeouts descriptors when RCTD is set. Truncated to the allocation length.
 */
export function emulateReportSupportedOperationCodes(
  command: ScsiCommand<ReportSupportedOperationCodesCdb>,
  commands: readonly ReportableCommand[],
): ScsiResponse {
  const cdb = command.decoded;
  const supported: SupportedCommand[] = commands.map((row) => {
    const entry: SupportedCommand = { opcode: row.opcode };
    if (row.serviceAction !== undefined) entry.serviceAction = row.serviceAction;
    if (row.cdbUsage) entry.cdbUsage = row.cdbUsage;
    entry.timeouts = row.timeouts ?? { nominal: 0, recommended: 30 };
    return entry;
  });
  const result = encodeSupportedOperationCodes(supported, cdb);
  if (!result.ok) return checkCondition(result.sense);
  return respondWithData(command, result.data);
}
