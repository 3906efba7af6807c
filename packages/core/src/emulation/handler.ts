import type { Backend } from '@tcmu/backend';
import type { CommandName, CommandTimeouts } from '@tcmu/scsi';
import { formatInProgress, initializingCommandRequired, invalidFieldInCdb, invalidOpcode } from '@tcmu/scsi';
import { limitConcurrency } from '../backend-queue';
import type { DeviceContext } from '../device';
import { CoreError, CoreErrorCode } from '../errors';
import { checkCondition } from '../response';
import type { DecodedNamed, ScsiCommand, ScsiHandler, ScsiResponse } from '../types';
import {
  emulateFormatUnit,
  emulateInquiry,
  emulateModeSelect,
  emulateModeSense,
  emulatePreventAllowMediumRemoval,
  emulateReadCapacity10,
  emulateReadCapacity16,
  emulateRequestSense,
  emulateStartStopUnit,
  emulateTestUnitReady,
} from './control';
import {
  emulateCompareAndWrite,
  emulateRead,
  emulateSynchronizeCache,
  emulateUnmap,
  emulateVerify,
  emulateWrite,
  emulateWriteAndVerify,
  emulateWriteSame,
} from './io';
import { emulateGetLbaStatus } from './lba-status';
import { emulateReportSupportedOperationCodes } from './supported-opcodes';

/**
 * One row of the dispatch table: which command, how it is served, and when it is offered. `N` is the
 * command's name; for a name @tcmu/scsi decodes (`'READ(10)'`) `handle` gets the command narrowed to
 * that CDB type (so it can call `emulateRead`), for any other name (a vendor command) the raw one.
 * Write rows with {@link defineCommand} to get that narrowing inferred.
 */
export interface CommandDefinition<N extends string = string> {
  /** The name decodeCdb gives the command (e.g. `'READ(10)'`), or any name for a vendor command. */
  readonly name: N;
  readonly opcode: number;
  readonly serviceAction?: number;
  /** CDB USAGE DATA reported by REPORT SUPPORTED OPERATION CODES; default: @tcmu/scsi's layout. */
  readonly cdbUsage?: Uint8Array;
  /** Command timeouts (seconds) reported with RCTD; default nominal 0, recommended 30. */
  readonly timeouts?: CommandTimeouts;
  /** Accesses the medium: answered 02/04 02 while the unit is stopped (START STOP UNIT). */
  readonly mediumAccess?: boolean;
  /** Offered only when this returns true for the device (e.g. UNMAP needs a backend that deallocates). */
  readonly available?: (device: DeviceContext) => boolean;
  /**
   * Serves the command; `emulation.backend` is the storage the building blocks take. Runs
   * concurrently with other commands.
   */
  readonly handle: (
    command: ScsiCommand<DecodedNamed<N>>,
    emulation: Emulation,
  ) => Promise<ScsiResponse> | ScsiResponse;
}

/** A row of any command (what the table holds). */
// biome-ignore lint/suspicious/noExplicitAny: rows of different commands share one table.
export type AnyCommandDefinition = CommandDefinition<any>;

/** Returns `row` as it is, with `handle`'s command narrowed by `row.name` (type inference only). */
export function defineCommand<const N extends string>(row: CommandDefinition<N>): CommandDefinition<N> {
  return row;
}

/** Commands that are never answered with a pending unit attention (SAM-5 §5.14): INQUIRY, REPORT LUNS, REQUEST SENSE. */
const unitAttentionExempt = new Set([0x12, 0xa0, 0x03]);
/** Commands served while a FORMAT UNIT runs (the others get 02/04 04 with the progress). */
const allowedDuringFormat = new Set([0x12, 0xa0, 0x03]);

const canUnmap = (device: DeviceContext) => device.capabilities.unmap;

const row = defineCommand;

/** A row whose block reaches the medium through the emulation's backend (02/04 02 while stopped). */
function mediumRow<const N extends string>(
  name: N,
  opcode: number,
  block: (command: ScsiCommand<DecodedNamed<N>>, backend: Backend) => Promise<ScsiResponse> | ScsiResponse,
  more: Partial<Pick<CommandDefinition<N>, 'serviceAction' | 'available'>> = {},
): CommandDefinition<N> {
  return { name, opcode, mediumAccess: true, ...more, handle: (command, e) => block(command, e.backend) };
}

/** The standard SBC/SPC command set served by {@link emulate}. */
export const standardCommands: readonly AnyCommandDefinition[] = [
  row({ name: 'TEST UNIT READY', opcode: 0x00, handle: emulateTestUnitReady }),
  row({ name: 'REQUEST SENSE', opcode: 0x03, handle: emulateRequestSense }),
  mediumRow('FORMAT UNIT', 0x04, emulateFormatUnit),
  mediumRow('READ(6)', 0x08, emulateRead),
  mediumRow('WRITE(6)', 0x0a, emulateWrite),
  row({ name: 'INQUIRY', opcode: 0x12, handle: emulateInquiry }),
  row({ name: 'MODE SELECT(6)', opcode: 0x15, handle: (c, e) => emulateModeSelect(c, e.backend) }),
  row({ name: 'MODE SENSE(6)', opcode: 0x1a, handle: emulateModeSense }),
  row({ name: 'START STOP UNIT', opcode: 0x1b, handle: (c, e) => emulateStartStopUnit(c, e.backend) }),
  row({ name: 'PREVENT ALLOW MEDIUM REMOVAL', opcode: 0x1e, handle: emulatePreventAllowMediumRemoval }),
  row({ name: 'READ CAPACITY(10)', opcode: 0x25, handle: emulateReadCapacity10 }),
  mediumRow('READ(10)', 0x28, emulateRead),
  mediumRow('WRITE(10)', 0x2a, emulateWrite),
  mediumRow('WRITE AND VERIFY(10)', 0x2e, emulateWriteAndVerify),
  mediumRow('VERIFY(10)', 0x2f, emulateVerify),
  mediumRow('SYNCHRONIZE CACHE(10)', 0x35, emulateSynchronizeCache),
  mediumRow('WRITE SAME(10)', 0x41, emulateWriteSame),
  mediumRow('UNMAP', 0x42, emulateUnmap, { available: canUnmap }),
  row({ name: 'MODE SELECT(10)', opcode: 0x55, handle: (c, e) => emulateModeSelect(c, e.backend) }),
  row({ name: 'MODE SENSE(10)', opcode: 0x5a, handle: emulateModeSense }),
  mediumRow('READ(16)', 0x88, emulateRead),
  mediumRow('COMPARE AND WRITE', 0x89, emulateCompareAndWrite),
  mediumRow('WRITE(16)', 0x8a, emulateWrite),
  mediumRow('WRITE AND VERIFY(16)', 0x8e, emulateWriteAndVerify),
  mediumRow('VERIFY(16)', 0x8f, emulateVerify),
  mediumRow('SYNCHRONIZE CACHE(16)', 0x91, emulateSynchronizeCache),
  mediumRow('WRITE SAME(16)', 0x93, emulateWriteSame),
  row({ name: 'READ CAPACITY(16)', opcode: 0x9e, serviceAction: 0x10, handle: emulateReadCapacity16 }),
  mediumRow('GET LBA STATUS', 0x9e, emulateGetLbaStatus, { serviceAction: 0x12 }),
  row({
    name: 'REPORT SUPPORTED OPERATION CODES',
    opcode: 0xa3,
    serviceAction: 0x0c,
    handle: (c, e) => emulateReportSupportedOperationCodes(c, e.commandsFor(c.device)),
  }),
  mediumRow('READ(12)', 0xa8, emulateRead),
  mediumRow('WRITE(12)', 0xaa, emulateWrite),
];

/** Options of {@link emulate}. */
export interface EmulationOptions {
  /**
   * Rows that replace the standard row with the same opcode and service action, or add new
   * commands (REPORT SUPPORTED OPERATION CODES lists them too). A row whose `handle` is omitted is
   * impossible; to remove a command, use `exclude`. A row named like a standard command must have
   * that command's opcode and service action (TCMU_ERR_CORE_INVALID_OPTION otherwise): its `handle`
   * is typed for that command.
   */
  readonly commands?: readonly AnyCommandDefinition[];
  /** Names of standard commands not to serve (answered 05/20 00 and not reported as supported). */
  readonly exclude?: readonly CommandName[];
}

const key = (opcode: number, serviceAction?: number) =>
  serviceAction === undefined ? opcode : opcode * 256 + serviceAction + 0x10000;

/** The backend each emulation was built over, as given (serveRing checks its `backend` option against it). */
const givenBackends = new WeakMap<Emulation, Backend>();

/** The backend `handler` emulates over when it is an {@link Emulation}, else undefined. */
export function emulatedBackend(handler: ScsiHandler): Backend | undefined {
  return handler instanceof Emulation ? givenBackends.get(handler) : undefined;
}

const standardByName = new Map(standardCommands.map((row) => [row.name, row]));

/**
 * The standard emulation over one backend, as a handler: checks that apply to every command
 * (pending unit attentions, FORMAT UNIT in progress, a stopped unit, unknown or unsupported
 * opcodes), then the dispatch table. Custom targets add or replace rows (`commands`), or serve their
 * own opcodes and fall back to `emulation.handle`. Build it with {@link emulate}.
 */
export class Emulation implements ScsiHandler {
  /**
   * The storage the rows read and write: the backend given to {@link emulate}, behind a queue when
   * it declares a `concurrencyLimit` (calls above the limit wait their turn).
   */
  readonly backend: Backend;
  readonly commands: readonly AnyCommandDefinition[];
  #byKey = new Map<number, AnyCommandDefinition>();
  #opcodesWithServiceActions = new Set<number>();

  constructor(backend: Backend, options: EmulationOptions = {}) {
    givenBackends.set(this, backend);
    this.backend = limitConcurrency(backend);
    const excluded = new Set<string>(options.exclude ?? []);
    const rows = new Map<number, AnyCommandDefinition>();
    for (const row of standardCommands)
      if (!excluded.has(row.name)) rows.set(key(row.opcode, row.serviceAction), row);
    for (const row of options.commands ?? []) {
      const standard = standardByName.get(row.name);
      if (standard && (standard.opcode !== row.opcode || standard.serviceAction !== row.serviceAction))
        throw new CoreError(
          CoreErrorCode.InvalidOption,
          `command ${row.name} is opcode ${standard.opcode}${standard.serviceAction === undefined ? '' : ` service action ${standard.serviceAction}`}, not ${row.opcode}${row.serviceAction === undefined ? '' : ` service action ${row.serviceAction}`}`,
        );
      rows.set(key(row.opcode, row.serviceAction), row);
    }
    this.commands = [...rows.values()].sort(
      (a, b) => a.opcode - b.opcode || (a.serviceAction ?? -1) - (b.serviceAction ?? -1),
    );
    for (const row of this.commands) {
      this.#byKey.set(key(row.opcode, row.serviceAction), row);
      if (row.serviceAction !== undefined) this.#opcodesWithServiceActions.add(row.opcode);
    }
  }

  /** The rows offered on `device` (those whose `available` passes), in opcode order. */
  commandsFor(device: DeviceContext): AnyCommandDefinition[] {
    return this.commands.filter((row) => row.available === undefined || row.available(device));
  }

  /** The row serving an opcode (and service action), if offered on `device`. */
  lookup(device: DeviceContext, opcode: number, serviceAction?: number): AnyCommandDefinition | undefined {
    const row = this.#byKey.get(key(opcode, serviceAction));
    if (!row || (row.available && !row.available(device))) return undefined;
    return row;
  }

  async handle(command: ScsiCommand): Promise<ScsiResponse> {
    return this.dispatch(command);
  }

  /**
   * What `handle` does, without the async wrapper: answers synchronously when the command needs no
   * I/O (sense, unsupported opcodes, INQUIRY…), else returns the row's promise. The core serves
   * through this to spare a promise per command; a throw is a bug, as a rejection of `handle` is.
   */
  dispatch(command: ScsiCommand): Promise<ScsiResponse> | ScsiResponse {
    const { device, decoded } = command;
    const opcode = decoded.opcode;
    if (!unitAttentionExempt.has(opcode)) {
      const attention = device.unitAttentions.take();
      if (attention) return checkCondition(attention);
    }
    if (!decoded.ok) {
      // Rows for opcodes @tcmu/scsi does not know (vendor commands) get the raw CDB.
      const custom = decoded.sense.asc === 0x20 ? this.lookup(device, opcode) : undefined;
      if (!custom) return checkCondition(decoded.sense);
      return custom.handle(command, this);
    }
    const row = this.lookup(device, opcode, decoded.serviceAction);
    if (!row) {
      if (this.#opcodesWithServiceActions.has(opcode)) return checkCondition(invalidFieldInCdb(1, 4));
      return checkCondition(invalidOpcode());
    }
    if (device.format && !allowedDuringFormat.has(opcode))
      return checkCondition(formatInProgress(device.format.progress));
    if (device.stopped && (row.mediumAccess || opcode === 0x00))
      return checkCondition(initializingCommandRequired());
    return row.handle(command, this);
  }
}

/**
 * The full SBC/SPC emulation over `backend` (see {@link Emulation}): what serveRing and openDevice
 * serve when given a backend and no handler, and what a custom handler extends with `commands`.
 */
export function emulate(backend: Backend, options: EmulationOptions = {}): Emulation {
  return new Emulation(backend, options);
}
