import type { Backend } from '@tcmu/backend';
import { isBackendError, scatterZero } from '@tcmu/backend';
import {
  MAX_SPIN_MICROSECONDS,
  type RingCloseOptions,
  type RingCommand,
  type RingCompletion,
  type RingHandlers,
  type RingStartOptions,
  type RingTaskManagement,
} from '@tcmu/ring';
import {
  type DecodedCdb,
  decodeCdb,
  encodeSense,
  hardwareError,
  maximumSenseLength,
  ScsiStatus,
} from '@tcmu/scsi';
import { DeviceContext, type DeviceContextOptions, type DeviceStats } from './device';
import { Emulation, emulate, emulatedBackend } from './emulation/handler';
import { CoreError, CoreErrorCode } from './errors';
import { responseForError } from './response';
import type { Logger, ScsiCommand, ScsiHandler, ScsiResponse } from './types';
import { createWarnOnce, describeBackendFailure, type WarnOnce } from './warn-once';

/** What serveRing needs from a ring (a `Ring` from @tcmu/ring, or the simulated kernel's). */
export interface ServableRing {
  /** `options.spinMicroseconds` comes from `idleSpinMicroseconds`; a ring may ignore it. */
  start(handlers: RingHandlers, options?: RingStartOptions): void;
  complete(id: number, completion: RingCompletion): void;
  flush?(): void;
  close(options?: RingCloseOptions): Promise<void>;
}

/**
 * What a device serves; the same in {@link serveRing} and `openDevice`:
 * - `{ backend }`: the full SBC emulation over it (`emulate(backend)`);
 * - `{ backend, handler }`: a custom handler, e.g. `emulate(backend, { commands })` or one that calls
 *   the building blocks with that backend. The device's capacity, block size, capabilities (what it
 *   advertises), resize and close come from `backend`; an `emulate()` handler must be over this same
 *   backend (TCMU_ERR_CORE_INVALID_OPTION otherwise);
 * - `{ handler, size }`: a handler with no storage behind it (an `Emulation` is not one: it has its
 *   backend, so pass that backend too; leaving it out does not compile).
 */
export type ServeTarget =
  | { readonly backend: Backend; readonly handler?: ScsiHandler }
  | {
      readonly backend?: undefined;
      readonly handler: ScsiHandler & { readonly backend?: undefined };
      /** Capacity in bytes (no backend to take it from). */
      readonly size: number;
    };

/** How a device is served (everything but what it serves): shared by serveRing and openDevice. */
export interface ServeSettings extends Omit<DeviceContextOptions, 'backend' | 'size' | 'blockSize' | 'name'> {
  /** Device name (default 'tcmu'). */
  readonly name?: string;
  /** Capacity in bytes; default the backend's `size`. Required when serving a handler without a backend. */
  readonly size?: number;
  /** Logical block size; default the backend's `blockSize`, else 512. */
  readonly blockSize?: number;
  /**
   * Commands handled at once (default 128, like the kernel's hw_queue_depth). Commands beyond it wait
   * in arrival order for a slot; they are never refused.
   */
  readonly queueDepth?: number;
  /** Where warnings (handler failures, ring errors) go. Default: nowhere. */
  readonly logger?: Logger;
  /** Close the ring when the served device is closed (default true). */
  readonly closeRing?: boolean;
  /**
   * How long close() lets commands in flight finish, in ms from the close() call (default 10000;
   * `Infinity` waits for ever). Then it abandons them: each is answered (04/44 00, or TASK ABORTED when
   * a task management function had aborted it) without waiting for the backend, its `signal` is
   * aborted, its late result is dropped, and commands that arrive afterwards get 04/44 00 at once.
   * So a backend whose calls never settle cannot keep a device from being torn down.
   */
  readonly drainTimeoutMs?: number;
  /**
   * Microseconds the ring watches for the next command after it goes idle, before it sleeps
   * (0: never; at most 10000). A command caught in the window needs no thread wake-up, which is
   * what low queue depths wait for; a window that finds nothing costs that much CPU, and after
   * four misses in a row the ring tries only now and then. Default: `TCMU_RING_SPIN_US` when set,
   * else 1000 (docs/performance.md, sections 7 and 8).
   */
  readonly idleSpinMicroseconds?: number;
  /**
   * Observer called synchronously after each command is completed to the ring (metrics, tracing).
   * Must be cheap and must not throw (a throw is logged and ignored). Costs nothing when unset.
   * Commands answered BUSY because the device is closing are not reported.
   */
  readonly onCommandDone?: (info: CommandDoneInfo) => void;
}

/** Options of {@link serveRing}: what is served and how. */
export type ServeOptions = ServeSettings & ServeTarget;

/** Options of {@link ServedDevice.close}. */
export interface ServedCloseOptions {
  /**
   * Keep handling commands normally until this settles (e.g. while the kernel removes the disk and
   * sends SYNCHRONIZE CACHE), then answer new ones BUSY and drain. The drain timeout counts from the
   * close() call all the same.
   */
  readonly servingUntil?: Promise<unknown>;
}

/** What {@link ServeOptions.onCommandDone} receives: a fresh object per command. */
export interface CommandDoneInfo {
  /** The command's CDB (a copy: safe to keep). Byte 0 is the opcode. */
  readonly cdb: Uint8Array;
  /** Bytes in the command's data buffer (read or written for READ/WRITE; 0 without data). */
  readonly dataLength: number;
  /** The SCSI status completed to the kernel (TASK ABORTED for aborted commands). */
  readonly status: number;
  /** The sense key (0-15) for CHECK CONDITION, else undefined. */
  readonly senseKey: number | undefined;
  /** Milliseconds (fractional) from the command's arrival from the ring to its completion. */
  readonly latencyMs: number;
}

/** The sense key of fixed (70h/71h) or descriptor (72h/73h) sense bytes. */
function senseKeyOf(sense: Uint8Array | undefined): number | undefined {
  if (!sense || sense.length < 3) return undefined;
  const format = sense[0]! & 0x7f;
  if (format === 0x72 || format === 0x73) return sense[1]! & 0x0f;
  return sense[2]! & 0x0f;
}

/** A ring being served. */
export interface ServedDevice {
  /** The device state every command sees (identity, capacity, mode parameters, stats). */
  readonly device: DeviceContext;
  /** Counters (live object). */
  readonly stats: DeviceStats;
  /** True once close() was called. */
  readonly closed: boolean;
  /**
   * Resizes the backend to `bytes` (a whole number of blocks): new commands wait while the
   * commands in flight finish, the backend is resized, the capacity changes and the CAPACITY DATA
   * HAS CHANGED unit attention (06/2A 09) is queued; then the waiting commands run.
   * Errors: TCMU_ERR_CORE_UNSUPPORTED (no backend resize), TCMU_ERR_CORE_RESIZE, TCMU_ERR_CORE_CLOSED.
   */
  resize(bytes: number): Promise<void>;
  /**
   * Stops serving: commands that arrive from now on (or once `servingUntil` settles) are answered
   * BUSY, the commands in flight finish (drain) for at most `drainTimeoutMs` and are then abandoned
   * (see {@link ServeOptions.drainTimeoutMs}), then the ring is closed. Idempotent: every call returns
   * the same promise; never rejects (problems go to the logger), so it is safe from signal handlers.
   */
  close(options?: ServedCloseOptions): Promise<void>;
}

interface Slot {
  readonly ring: RingCommand;
  /** Created on the first read of `command.signal` (an AbortSignal costs tens of µs and GC). */
  controller: AbortController | undefined;
  abortReason: Error | undefined;
  started: boolean;
  aborted: boolean;
  /** Answered by close() after the drain timeout; the handler's late result is dropped. */
  abandoned: boolean;
  /** performance.now() at arrival, only when an onCommandDone observer is set (else 0). */
  arrived: number;
}

function signalOf(slot: Slot): AbortSignal {
  if (!slot.controller) {
    slot.controller = new AbortController();
    if (slot.aborted || slot.abandoned) slot.controller.abort(slot.abortReason);
  }
  return slot.controller.signal;
}

/**
 * The command a handler gets. A class rather than an object literal with a `signal` getter: V8
 * builds a literal with an accessor through a runtime call, a measurable share of a 4 KiB READ.
 */
class SlotCommand implements ScsiCommand {
  readonly id: number;
  readonly data: readonly Uint8Array[];
  readonly dataLength: number;
  readonly #slot: Slot;

  constructor(
    slot: Slot,
    readonly cdb: Uint8Array,
    readonly decoded: DecodedCdb,
    readonly device: DeviceContext,
  ) {
    this.#slot = slot;
    this.id = slot.ring.id;
    this.data = slot.ring.iovecs;
    this.dataLength = slot.ring.dataLength;
  }

  get signal(): AbortSignal {
    return signalOf(this.#slot);
  }
}

const defaultQueueDepth = 128;
export const defaultDrainTimeoutMs = 10_000;

/** A serve request checked by {@link planServe}: everything serveRing needs, nothing created yet. */
export interface ServePlan {
  readonly device: DeviceContext;
  readonly handler: ScsiHandler;
  readonly backend: Backend | undefined;
  readonly queueDepth: number;
  readonly drainTimeoutMs: number;
  readonly settings: ServeSettings;
}

const invalidOption = (message: string) => new CoreError(CoreErrorCode.InvalidOption, message);

/**
 * The one validation of serve options (serveRing, and openDevice before it creates anything): what
 * is served, capacity and block size, queue depth, drain timeout, and the device's own options
 * (name, serial, identity strings, limits). Throws TCMU_ERR_CORE_INVALID_OPTION naming the option.
 */
export function planServe(options: ServeOptions): ServePlan {
  const { backend, handler } = options as { backend?: Backend; handler?: ScsiHandler };
  if (!backend && !handler) throw invalidOption('give a backend or a handler');
  const emulated = handler ? emulatedBackend(handler) : undefined;
  if (emulated && emulated !== backend)
    throw invalidOption('the handler emulates over another backend than the one given as `backend`');
  const blockSize = options.blockSize ?? backend?.blockSize ?? 512;
  const size = options.size ?? backend?.size;
  if (size === undefined) throw invalidOption('size is required when serving a handler without a backend');
  if (backend && size > backend.size)
    throw invalidOption(`size (${size}) is larger than the backend (${backend.size} bytes)`);
  const queueDepth = options.queueDepth ?? defaultQueueDepth;
  if (!Number.isInteger(queueDepth) || queueDepth < 1 || queueDepth > 65535)
    throw invalidOption(`queueDepth must be an integer 1..65535, got ${queueDepth}`);
  const drainTimeoutMs = options.drainTimeoutMs ?? defaultDrainTimeoutMs;
  if (!(drainTimeoutMs >= 0))
    throw invalidOption(`drainTimeoutMs must be a number of ms >= 0 (or Infinity), got ${drainTimeoutMs}`);
  const spin = options.idleSpinMicroseconds;
  if (spin !== undefined && (!Number.isSafeInteger(spin) || spin < 0 || spin > MAX_SPIN_MICROSECONDS))
    throw invalidOption(`idleSpinMicroseconds must be an integer 0..${MAX_SPIN_MICROSECONDS}, got ${spin}`);
  const device = new DeviceContext({
    ...options,
    name: options.name ?? 'tcmu',
    blockSize,
    size,
    ...(backend ? { backend } : {}),
  });
  return {
    device,
    handler: handler ?? emulate(backend!),
    backend,
    queueDepth,
    drainTimeoutMs,
    settings: options,
  };
}

/**
 * Serves a ring: every command from the ring is decoded, handed to the handler (by default the full
 * SBC emulation over the backend), and completed with the response, out of order, at most
 * `queueDepth` at a time. Nothing a handler or backend does stops the device: a throw becomes
 * 04/44 00 (or the mapped sense of a BackendError). Task management aborts complete the aborted
 * commands with TASK ABORTED. Works with any ring: a real one from @tcmu/ring or `SimulatedKernel`
 * from `@tcmu/ring/testing`. Options are checked first (TCMU_ERR_CORE_INVALID_OPTION).
 */
export function serveRing(ring: ServableRing, options: ServeOptions): ServedDevice {
  return new RingServer(ring, planServe(options));
}

/** Serves a ring with a request {@link planServe} already checked (openDevice). */
export function servePlanned(ring: ServableRing, plan: ServePlan): ServedDevice {
  return new RingServer(ring, plan);
}

class RingServer implements ServedDevice {
  readonly device: DeviceContext;
  #ring: ServableRing;
  #handler: ScsiHandler;
  /** The handler when it is an emulation: dispatched without its async wrapper (the hot path). */
  #emulation: Emulation | undefined;
  #backend: Backend | undefined;
  #logger: Logger | undefined;
  #queueDepth: number;
  #slots = new Map<number, Slot>();
  #waiting: Slot[] = [];
  #paused = 0;
  #idleWaiters: (() => void)[] = [];
  #closePromise: Promise<void> | undefined;
  #closing = false;
  #closeRing: boolean;
  #drainTimeoutMs: number;
  #abandoning = false;
  #warnOnce: WarnOnce;
  #onCommandDone: ((info: CommandDoneInfo) => void) | undefined;

  constructor(ring: ServableRing, plan: ServePlan) {
    const options = plan.settings;
    this.device = plan.device;
    this.#ring = ring;
    this.#handler = plan.handler;
    this.#emulation = plan.handler instanceof Emulation ? plan.handler : undefined;
    this.#backend = plan.backend;
    this.#logger = options.logger;
    this.#queueDepth = plan.queueDepth;
    this.#closeRing = options.closeRing !== false;
    this.#drainTimeoutMs = plan.drainTimeoutMs;
    this.#warnOnce = createWarnOnce(options.logger);
    this.#onCommandDone = options.onCommandDone;
    ring.start(
      {
        onCommand: (command) => this.#onCommand(command),
        onTaskManagement: (request) => this.#onTaskManagement(request),
        onError: (error) => this.#logger?.warn?.({ err: error, device: this.device.name }, 'ring problem'),
      },
      options.idleSpinMicroseconds === undefined
        ? undefined
        : { spinMicroseconds: options.idleSpinMicroseconds },
    );
  }

  get stats(): DeviceStats {
    return this.device.stats;
  }

  get closed(): boolean {
    return this.#closePromise !== undefined;
  }

  #onCommand(command: RingCommand): void {
    const stats = this.device.stats;
    stats.received++;
    if (this.#closing) {
      if (this.#abandoning) {
        this.#complete(command.id, this.#completion(command, { status: ScsiStatus.CheckCondition }));
        stats.checkCondition++;
      } else {
        this.#complete(command.id, { status: ScsiStatus.Busy });
        stats.busy++;
      }
      stats.completed++;
      return;
    }
    const slot: Slot = {
      ring: command,
      controller: undefined,
      abortReason: undefined,
      started: false,
      aborted: false,
      abandoned: false,
      arrived: this.#onCommandDone ? performance.now() : 0,
    };
    this.#slots.set(command.id, slot);
    if (this.#paused === 0 && stats.inFlight < this.#queueDepth && this.#waiting.length === 0)
      this.#start(slot);
    else {
      this.#waiting.push(slot);
      stats.queued = this.#waiting.length;
    }
  }

  #start(slot: Slot): void {
    const stats = this.device.stats;
    slot.started = true;
    stats.inFlight++;
    if (stats.inFlight > stats.maxInFlight) stats.maxInFlight = stats.inFlight;
    this.#run(slot);
  }

  /**
   * Decodes and dispatches one command. A handler that answers synchronously (the emulation for
   * commands without I/O) is completed at once; otherwise one `then` on its promise completes it.
   */
  #run(slot: Slot): void {
    const { ring } = slot;
    let result: Promise<ScsiResponse> | ScsiResponse;
    try {
      const decoded = decodeCdb(ring.cdb);
      const length = decoded.cdbLength;
      const command = new SlotCommand(
        slot,
        length !== undefined && length <= ring.cdb.length ? ring.cdb.subarray(0, length) : ring.cdb,
        decoded,
        this.device,
      );
      result = this.#emulation ? this.#emulation.dispatch(command) : this.#handler.handle(command);
    } catch (error) {
      this.#failed(slot, error);
      return;
    }
    if (result instanceof Promise || typeof (result as { then?: unknown } | undefined)?.then === 'function')
      (result as PromiseLike<ScsiResponse>).then(
        (response) => this.#settled(slot, response),
        (error: unknown) => this.#failed(slot, error),
      );
    else this.#settled(slot, result);
  }

  #settled(slot: Slot, response: ScsiResponse): void {
    if (!response || typeof response.status !== 'number' || response.status < 0 || response.status > 255) {
      this.#failed(slot, new TypeError('handler returned no valid response (an object with a status byte)'));
      return;
    }
    if (response.error !== undefined) this.#backendFailed(response.error);
    this.#finish(slot, response);
  }

  /** A handler threw or rejected: a BackendError is answered like a returned one, anything else is a bug. */
  #failed(slot: Slot, error: unknown): void {
    if (isBackendError(error)) {
      this.#settled(slot, responseForError(error));
      return;
    }
    this.device.stats.handlerFailures++;
    this.#logger?.error?.(
      { err: error, device: this.device.name, cdb: Buffer.from(slot.ring.cdb).toString('hex') },
      'handler failed; answered 04/44 00',
    );
    this.#finish(slot, responseForError(error));
  }

  /** Counts a backend failure and warns once per kind (ENOSPC, EIO, EROFS…) for this device, with advice. */
  #backendFailed(error: unknown): void {
    this.device.stats.backendErrors++;
    const { kind, advice } = describeBackendFailure(error);
    this.#warnOnce(
      kind,
      { err: error, device: this.device.name, kind },
      `backend error (${kind}): ${advice}; further errors of this kind are only counted (stats.backendErrors)`,
    );
  }

  #finish(slot: Slot, response: ScsiResponse): void {
    if (slot.abandoned) return;
    const stats = this.device.stats;
    const { ring } = slot;
    this.#slots.delete(ring.id);
    if (slot.started) stats.inFlight--;
    let completion: RingCompletion;
    if (slot.aborted) {
      completion = { status: ScsiStatus.TaskAborted };
      stats.aborted++;
    } else {
      completion = this.#completion(ring, response);
      if (completion.status === ScsiStatus.Good) stats.good++;
      else if (completion.status === ScsiStatus.CheckCondition) stats.checkCondition++;
      else if (completion.status === ScsiStatus.Busy) stats.busy++;
    }
    this.#complete(ring.id, completion);
    stats.completed++;
    if (this.#onCommandDone) this.#notifyDone(slot, completion);
    this.#pump();
  }

  #notifyDone(slot: Slot, completion: RingCompletion): void {
    try {
      this.#onCommandDone!({
        cdb: slot.ring.cdb,
        dataLength: slot.ring.dataLength,
        status: completion.status,
        senseKey: completion.status === ScsiStatus.CheckCondition ? senseKeyOf(completion.sense) : undefined,
        latencyMs: performance.now() - slot.arrived,
      });
    } catch (error) {
      this.#logger?.warn?.({ err: error, device: this.device.name }, 'onCommandDone observer threw');
    }
  }

  #completion(ring: RingCommand, response: ScsiResponse): RingCompletion {
    const completion: RingCompletion = { status: response.status };
    if (response.sense !== undefined) {
      let bytes: Uint8Array;
      try {
        bytes =
          response.sense instanceof Uint8Array
            ? response.sense
            : encodeSense(response.sense, { descriptor: this.device.descriptorSense });
      } catch {
        bytes = encodeSense(hardwareError(), { descriptor: this.device.descriptorSense });
        completion.status = ScsiStatus.CheckCondition;
      }
      completion.sense = bytes.length > maximumSenseLength ? bytes.subarray(0, maximumSenseLength) : bytes;
    } else if (response.status === ScsiStatus.CheckCondition) {
      completion.sense = encodeSense(hardwareError(), { descriptor: this.device.descriptorSense });
    }
    if (response.dataInLength !== undefined && completion.status === ScsiStatus.Good) {
      const valid = Math.max(0, Math.min(ring.dataLength, Math.floor(response.dataInLength) || 0));
      if (valid < ring.dataLength) scatterZero(ring.iovecs, valid);
      completion.readLength = valid;
    }
    return completion;
  }

  #complete(id: number, completion: RingCompletion): void {
    try {
      this.#ring.complete(id, completion);
    } catch (error) {
      this.#logger?.error?.({ err: error, device: this.device.name, id }, 'completing a command failed');
    }
  }

  #pump(): void {
    const stats = this.device.stats;
    while (this.#paused === 0 && this.#waiting.length > 0 && stats.inFlight < this.#queueDepth) {
      this.#start(this.#waiting.shift()!);
    }
    stats.queued = this.#waiting.length;
    if (stats.inFlight === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  #onTaskManagement(request: RingTaskManagement): void {
    this.device.stats.taskManagement++;
    this.#logger?.info?.(
      { device: this.device.name, type: request.name, ids: request.ids },
      'task management: aborting commands',
    );
    for (const id of request.ids) {
      const slot = this.#slots.get(id);
      if (!slot || slot.aborted) continue;
      slot.aborted = true;
      slot.abortReason = new CoreError(CoreErrorCode.Closed, `command ${id} aborted by ${request.name}`);
      slot.controller?.abort(slot.abortReason);
      if (!slot.started) {
        const i = this.#waiting.indexOf(slot);
        if (i >= 0) this.#waiting.splice(i, 1);
        this.#finish(slot, { status: ScsiStatus.TaskAborted });
      }
    }
  }

  /** Resolves when nothing is in flight and (when `all`, or not paused) nothing waits for a slot. */
  async #idle(all = false): Promise<void> {
    const stats = this.device.stats;
    while (!(stats.inFlight === 0 && (this.#waiting.length === 0 || (!all && this.#paused > 0)))) {
      await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    }
  }

  async resize(bytes: number): Promise<void> {
    if (this.#closing) throw new CoreError(CoreErrorCode.Closed, 'the device is closed');
    const backend = this.#backend;
    if (!backend?.resize) throw new CoreError(CoreErrorCode.Unsupported, 'the backend cannot resize');
    const blockSize = this.device.blockSize;
    if (!Number.isSafeInteger(bytes) || bytes < blockSize || bytes % blockSize !== 0)
      throw new CoreError(
        CoreErrorCode.Resize,
        `size must be a positive multiple of ${blockSize} bytes, got ${bytes}`,
      );
    this.#paused++;
    try {
      await this.#idle();
      try {
        await backend.resize(bytes);
      } catch (error) {
        throw new CoreError(CoreErrorCode.Resize, `the backend refused to resize to ${bytes} bytes`, {
          cause: error,
        });
      }
      this.device.setSize(bytes);
    } finally {
      this.#paused--;
      this.#pump();
    }
  }

  close(options: ServedCloseOptions = {}): Promise<void> {
    if (!this.#closePromise) {
      if (options.servingUntil === undefined) this.#closing = true;
      this.#closePromise = this.#close(options.servingUntil);
    }
    return this.#closePromise;
  }

  async #close(servingUntil: Promise<unknown> | undefined): Promise<void> {
    const ms = this.#drainTimeoutMs;
    const deadline = Number.isFinite(ms) ? setTimeout(() => this.#abandon(), ms) : undefined;
    try {
      if (servingUntil)
        await servingUntil.then(
          () => undefined,
          () => undefined,
        );
      this.#closing = true;
      // Commands already waiting for a slot run as usual; new ones are answered BUSY.
      await this.#idle(true);
      // Abandoned commands may still be written to by their handlers: keep their memory addressable.
      if (this.#closeRing) await this.#ring.close(this.#abandoning ? { abandonInFlight: true } : undefined);
    } catch (error) {
      this.#logger?.error?.({ err: error, device: this.device.name }, 'closing the ring failed');
    } finally {
      clearTimeout(deadline);
    }
  }

  /** The drain timeout passed: answer every command still in flight or waiting, without the backend. */
  #abandon(): void {
    if (this.#abandoning) return;
    this.#abandoning = true;
    this.#closing = true;
    const stuck = [...this.#slots.values()];
    if (stuck.length > 0)
      this.#logger?.warn?.(
        { device: this.device.name, commands: stuck.length, drainTimeoutMs: this.#drainTimeoutMs },
        `${stuck.length} command(s) did not finish within ${this.#drainTimeoutMs} ms of close: answered without waiting for the backend (04/44 00)`,
      );
    this.#waiting = [];
    for (const slot of stuck) {
      const reason = new CoreError(CoreErrorCode.Closed, `command ${slot.ring.id} abandoned at close`);
      if (!slot.aborted) {
        slot.abortReason = reason;
        slot.controller?.abort(reason);
      }
      // Finish it now (TASK ABORTED if a TMR aborted it, else 04/44 00), then drop the late result.
      this.#finish(slot, { status: ScsiStatus.CheckCondition });
      slot.abandoned = true;
    }
    this.#pump();
  }
}
