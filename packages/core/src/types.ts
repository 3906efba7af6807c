import type { CommandName, DecodedCdb, DecodedCommand, SenseInfo } from '@tcmu/scsi';
import type { DeviceContext } from './device';

/**
 * One SCSI command as a handler sees it. Valid until the handler's promise settles: after that the
 * ring reuses the memory behind `data`, so a handler must not keep the views.
 *
 * `C` is what the CDB decoded to: any `DecodedCdb` for a command fresh from the ring; one command
 * family (e.g. `ReadCdb`) once narrowed with {@link isCommand}, which is what the building blocks
 * (`emulateRead`…) take.
 */
export interface ScsiCommand<C extends DecodedCdb = DecodedCdb> {
  /** The ring's command id (1..65535), unique among the commands in flight on this device. */
  readonly id: number;
  /** The raw CDB, copied out of the ring (safe to keep). */
  readonly cdb: Uint8Array;
  /**
   * The CDB decoded by @tcmu/scsi. `ok: false` for an unknown opcode or an invalid field; it then
   * carries the sense to answer with (custom handlers may still serve vendor opcodes from `cdb`).
   */
  readonly decoded: C;
  /**
   * The data buffer as the ring's iovec views, in order (zero copy). For data-out commands (WRITE,
   * MODE SELECT, UNMAP…) it holds the initiator's bytes; for data-in commands the handler fills it
   * and says how many bytes are valid with `dataInLength`. Empty for commands without data.
   */
  readonly data: readonly Uint8Array[];
  /** Total bytes in `data` (the buffer the kernel allocated for the command). */
  readonly dataLength: number;
  /** The device the command is addressed to: identity, capacity, mode state, locks, unit attentions. */
  readonly device: DeviceContext;
  /**
   * Aborted when a task management function (ABORT TASK, LUN RESET…) aborts this command. The
   * command is then completed with TASK ABORTED once the handler settles, whatever it answers.
   */
  readonly signal: AbortSignal;
}

/** What a handler answers. Build it with `good()`, `checkCondition()` or `statusOnly()`. */
export interface ScsiResponse {
  /** The SCSI status byte (`ScsiStatus` from @tcmu/scsi). */
  readonly status: number;
  /**
   * Sense data for CHECK CONDITION: either fields (the core encodes them in the format the device
   * currently uses: fixed, or descriptor when the control mode page's D_SENSE is set) or raw bytes
   * (at most 96, sent as they are).
   */
  readonly sense?: SenseInfo | Uint8Array;
  /**
   * For data-in commands: how many bytes at the start of `data` are valid. The core zeroes the rest
   * of the buffer (no stale memory reaches the initiator) and reports the residual to the kernel.
   * Leave undefined for commands without data-in.
   */
  readonly dataInLength?: number;
  /**
   * The failure this response reports, when it reports one (`responseForError` sets it to the
   * BackendError): the core counts it in `stats.backendErrors` and logs the first of each kind per
   * device with advice (ENOSPC, EIO, EROFS…). Not sent to the kernel.
   */
  readonly error?: unknown;
}

/**
 * The one interface a SCSI target implements (like net/http's Handler). Concurrency: the core calls
 * `handle` for many commands at once (up to the queue depth) and completes them in the order their
 * promises settle. A handler that throws or rejects is answered with 04/44 00 (internal target
 * failure), or with the mapped sense when it threw a BackendError; the device keeps serving.
 */
export interface ScsiHandler {
  handle(command: ScsiCommand): Promise<ScsiResponse>;
}

/** A handler written as a function. */
export type ScsiHandlerFunction = (command: ScsiCommand) => Promise<ScsiResponse> | ScsiResponse;

/** Turns a function into a {@link ScsiHandler}. Synchronous throws become rejections. */
export function handlerFunction(fn: ScsiHandlerFunction): ScsiHandler {
  return {
    handle: async (command) => fn(command),
  };
}

/** The members of the union `C` one of whose names is in `N` (`ReadCdb` for `'READ(10)'`). */
type FamilyNamed<C, N> = C extends { name: infer M } ? ([Extract<M, N>] extends [never] ? never : C) : never;

/** The decoded CDB of the commands named `N` (`'READ(10)'` → `ReadCdb`); any other name: any CDB. */
export type DecodedNamed<N extends string> = string extends N
  ? DecodedCdb
  : [FamilyNamed<DecodedCommand, N>] extends [never]
    ? DecodedCdb
    : FamilyNamed<DecodedCommand, N>;

/** A command whose CDB decoded as one of the commands named `N` (what {@link isCommand} narrows to). */
export type CommandNamed<N extends CommandName> = ScsiCommand<FamilyNamed<DecodedCommand, N>>;

/**
 * Type guard: true when the CDB decoded (`ok`) as one of `names`. Narrows `command` to the type the
 * building blocks take, e.g. `if (isCommand(command, 'READ(10)', 'READ(16)')) return emulateRead(command, backend)`.
 */
export function isCommand<N extends CommandName>(
  command: ScsiCommand,
  ...names: readonly N[]
): command is CommandNamed<N> {
  const { decoded } = command;
  return decoded.ok && (names as readonly string[]).includes(decoded.name);
}

/**
 * Minimal structured logger (pino, console-like adapters). Every method takes a context object and a
 * message.
 */
export interface Logger {
  debug?(context: object, message: string): void;
  info?(context: object, message: string): void;
  warn?(context: object, message: string): void;
  error?(context: object, message: string): void;
}
