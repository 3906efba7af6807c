import type { Backend } from '@tcmu/backend';
import type { DecodedCdb, SenseInfo } from '@tcmu/scsi';
import type { DeviceContext } from './device';

/**
 * One SCSI command as a handler sees it. Valid until the handler's promise settles: after that the
 * ring reuses the memory behind `data`, so a handler must not keep the views.
 */
export interface ScsiCommand {
  /** The ring's command id (1..65535), unique among the commands in flight on this device. */
  readonly id: number;
  /** The raw CDB, copied out of the ring (safe to keep). */
  readonly cdb: Uint8Array;
  /**
   * The CDB decoded by @tcmu/scsi. `ok: false` for an unknown opcode or an invalid field; it then
   * carries the sense to answer with (custom handlers may still serve vendor opcodes from `cdb`).
   */
  readonly decoded: DecodedCdb;
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

/** What serveRing/openDevice serve: a handler, or a backend (served by the full SBC emulation). */
export type ServeTarget = ScsiHandler | Backend;

/** True when `target` is a handler rather than a backend. */
export function isScsiHandler(target: ServeTarget): target is ScsiHandler {
  return typeof (target as { handle?: unknown }).handle === 'function';
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
