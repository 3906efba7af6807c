// REPORT SUPPORTED OPERATION CODES parameter data (SPC-5 §6.35), generated from the caller's command table.
import { fit, writeUint } from './bytes';
import type { ReportSupportedOperationCodesCdb } from './cdb-types';
import { commandSpecs, serviceActionOpcodes, specsForOpcode, usageMask } from './command-table';
import { ScsiError, ScsiErrorCode } from './errors';
import type { EncodeResult } from './mode-pages';
import { invalidFieldInCdb } from './sense';

/** Command timeouts (the command timeouts descriptor), in seconds; 0 = not specified. */
export interface CommandTimeouts {
  nominal: number;
  recommended: number;
}

/** One command the device serves. */
export interface SupportedCommand {
  opcode: number;
  /** For commands with service actions. */
  serviceAction?: number;
  /** CDB USAGE DATA (its length is the CDB SIZE); default: derived from this package's layout of the command. */
  cdbUsage?: Uint8Array;
  /** Reported when the initiator sets RCTD. */
  timeouts?: CommandTimeouts;
}

/** A command this package can decode: what a dispatch table is built from. */
export interface KnownCommand {
  opcode: number;
  serviceAction?: number;
  name: string;
  cdbLength: number;
}

/** Every command decodeCdb decodes, in opcode/service action order. */
export function knownCommands(): KnownCommand[] {
  return commandSpecs.map((s) => {
    const k: KnownCommand = { opcode: s.opcode, name: s.name, cdbLength: s.length };
    if (s.serviceAction !== undefined) k.serviceAction = s.serviceAction;
    return k;
  });
}

/**
 * The CDB USAGE DATA of a command: byte 0 the opcode, then per byte the bits decodeCdb interprets
 * (the SERVICE ACTION field carries the service action; CONTROL byte 0: NACA/LINK unsupported).
 * Undefined for a command this package does not know.
 */
export function cdbUsageData(opcode: number, serviceAction?: number): Uint8Array | undefined {
  const spec = specsForOpcode(opcode)?.find((s) => s.serviceAction === serviceAction);
  return spec ? usageMask(spec) : undefined;
}

function usageOf(command: SupportedCommand): Uint8Array {
  const usage = command.cdbUsage ?? cdbUsageData(command.opcode, command.serviceAction);
  if (!usage)
    throw new ScsiError(
      ScsiErrorCode.UnknownCommand,
      `no CDB usage data for opcode ${command.opcode}; pass cdbUsage`,
    );
  return usage;
}

function timeoutsDescriptor(t: CommandTimeouts | undefined): Uint8Array {
  const out = new Uint8Array(12);
  out[1] = 0x0a;
  writeUint(out, 4, 4, t?.nominal ?? 0, 'nominal timeout');
  writeUint(out, 8, 4, t?.recommended ?? 0, 'recommended timeout');
  return out;
}

export type SupportedOperationCodesRequest = Pick<
  ReportSupportedOperationCodesCdb,
  'rctd' | 'reportingOptions' | 'requestedOpcode' | 'requestedServiceAction' | 'allocationLength'
>;

/**
 * REPORT SUPPORTED OPERATION CODES data for `commands`.
 * - REPORTING OPTIONS 0: all commands (4-byte header, 8-byte descriptors, +12-byte timeouts with RCTD).
 * - 1/2/3: one command (SUPPORT 3 = supported, 1 = not supported with CDB SIZE 0).
 * Errors: option 1 naming an opcode with service actions, or option 2 naming one without →
 * 05/24 00 at CDB byte 3 (REQUESTED OPERATION CODE).
 */
export function encodeSupportedOperationCodes(
  commands: readonly SupportedCommand[],
  request: SupportedOperationCodesRequest,
): EncodeResult {
  const sorted = [...commands].sort(
    (a, b) => a.opcode - b.opcode || (a.serviceAction ?? -1) - (b.serviceAction ?? -1),
  );
  if (request.reportingOptions === 0) {
    const size = request.rctd ? 20 : 8;
    const out = new Uint8Array(4 + size * sorted.length);
    writeUint(out, 0, 4, size * sorted.length, 'command data length');
    sorted.forEach((c, i) => {
      const at = 4 + size * i;
      out[at] = c.opcode;
      if (c.serviceAction !== undefined) {
        writeUint(out, at + 2, 2, c.serviceAction, 'serviceAction');
        out[at + 5]! |= 0x01; // SERVACTV
      }
      if (request.rctd) out[at + 5]! |= 0x02; // CTDP
      writeUint(out, at + 6, 2, usageOf(c).length, 'cdb length');
      if (request.rctd) out.set(timeoutsDescriptor(c.timeouts), at + 8);
    });
    return { ok: true, data: fit(out, request.allocationLength) };
  }
  const opcode = request.requestedOpcode;
  const hasServiceActions =
    serviceActionOpcodes.has(opcode) ||
    sorted.some((c) => c.opcode === opcode && c.serviceAction !== undefined);
  if (request.reportingOptions === 1 && hasServiceActions)
    return { ok: false, sense: invalidFieldInCdb(3, 7) };
  if (request.reportingOptions === 2 && !hasServiceActions)
    return { ok: false, sense: invalidFieldInCdb(3, 7) };
  if (request.reportingOptions > 3) return { ok: false, sense: invalidFieldInCdb(2, 2) };
  const serviceAction = hasServiceActions ? request.requestedServiceAction : undefined;
  const found = sorted.find((c) => c.opcode === opcode && c.serviceAction === serviceAction);
  if (!found) {
    const out = new Uint8Array(4);
    out[1] = 0x01; // SUPPORT: not supported
    return { ok: true, data: fit(out, request.allocationLength) };
  }
  const usage = usageOf(found);
  const out = new Uint8Array(4 + usage.length + (request.rctd ? 12 : 0));
  out[1] = 0x03 | (request.rctd ? 0x80 : 0);
  writeUint(out, 2, 2, usage.length, 'cdb size');
  out.set(usage, 4);
  if (request.rctd) out.set(timeoutsDescriptor(found.timeouts), 4 + usage.length);
  return { ok: true, data: fit(out, request.allocationLength) };
}
