import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { libc, O_CLOEXEC, O_NONBLOCK, O_RDWR, POLLERR, POLLHUP, POLLIN, POLLNVAL } from '@tcmu/libc';
import { RingError, systemError } from './errors';
import {
  CAPABILITY,
  COMMAND_RING_OFFSET,
  ENTRY,
  MAILBOX,
  MAILBOX_VERSION,
  OP,
  TASK_MANAGEMENT_TYPES,
  USER_FLAG,
} from './layout';
import { SharedMapping } from './mapping';
import type {
  RingCapabilities,
  RingCloseOptions,
  RingCommand,
  RingCompletion,
  RingHandlers,
  RingLocation,
  RingStartOptions,
  RingStatistics,
  RingTaskManagement,
} from './types';
import { processWaiter, type WaitSource } from './waiter';

const MAX_COMMAND_ID = 0xffff;
const TWO_TO_32 = 2 ** 32;
const MAX_SENSE = ENTRY.senseSize;
const CHECK_CONDITION = 2;
/** While commands are in flight and none completes, how long before poll() is armed again. */
const busyRecheckMs = 2;
/**
 * How many microtask turns after a consume the ring waits for completions before kicking: a
 * command its handler answers from memory (a resolved promise, a few `then`s deep) is completed
 * and kicked in the same event-loop turn it arrived in, with one kick for the whole batch.
 */
const sameTurnHops = 32;
/**
 * How long a ring that has just gone idle watches `cmd_head` before it sleeps in poll(), in
 * microseconds: `start()`'s `spinMicroseconds`, else TCMU_RING_SPIN_US (0 turns it off), default
 * 1000. A command arriving in that window is taken without a wake-up (under the default wait, two
 * sleeping threads are woken for it). Only right after a command and only while the ring is the
 * process's only one (a spin holds the event loop). After `spinGiveUp` misses in a row it spins
 * only every `spinProbeEvery`-th time it goes idle, until a spin finds a command again: a device
 * whose commands come further apart than the window mostly sleeps at once. docs/performance.md, 7,
 * has the measurements.
 */
const spinGiveUp = 4;
const spinProbeEvery = 16;
/** The longest idle spin window `start()` accepts, in microseconds (a spin holds the event loop). */
export const MAX_SPIN_MICROSECONDS = 10_000;
function spinMicroseconds(options: RingStartOptions | undefined): number {
  const given = options?.spinMicroseconds;
  if (given !== undefined) {
    if (!Number.isSafeInteger(given) || given < 0 || given > MAX_SPIN_MICROSECONDS)
      throw new RingError(
        'TCMU_ERR_RING_INVALID_ARGUMENT',
        `spinMicroseconds ${given} must be a whole number from 0 to ${MAX_SPIN_MICROSECONDS}`,
      );
    return given;
  }
  const value = Number(process.env.TCMU_RING_SPIN_US ?? 1000);
  return Number.isFinite(value) && value > 0 ? Math.min(value, MAX_SPIN_MICROSECONDS) : 0;
}

/** How a ring talks to its kernel: the fd the waiter polls, how to drain it, how to kick. Internal. */
export interface RingTransport {
  mapping: SharedMapping;
  /** Polled for POLLIN; read `drainSize` bytes after each wake-up. The uio fd itself for a real device. */
  waitFd: number;
  drainSize: number;
  /** Tell the kernel to reap completions. Returns false (errno set) on failure. */
  kick(): boolean;
  /** Extra descriptors to close on release (not the mapping fd). */
  closeFds?: number[];
  /** Called once after the mapping is released. */
  onRelease?(): void;
}

class Command implements RingCommand {
  constructor(
    readonly id: number,
    readonly cdb: Uint8Array,
    readonly iovecs: readonly Uint8Array[],
    readonly dataLength: number,
    readonly bidirectionalIovecs: readonly Uint8Array[],
  ) {}
}

const noViews: readonly Uint8Array[] = Object.freeze([]);

/**
 * A mapped TCMU command ring. Create with `openRing()` (or `SimulatedKernel.openRing()`), then
 * `start()` it. All methods run on the event loop; none blocks.
 */
export class Ring {
  /** What the mapping is (the uio path, or a description of the simulated kernel). */
  readonly path: string;
  /** Bytes mapped (the uio map0 size). */
  readonly size: number;
  /** Mailbox capability flags. */
  readonly capabilities: RingCapabilities;
  /** cmdr_size: bytes of the command ring (not a power of two). */
  readonly commandRingSize: number;
  /** Counters; read at any time. */
  readonly statistics: RingStatistics = {
    commands: 0,
    completions: 0,
    kicks: 0,
    wakeups: 0,
    taskManagement: 0,
    pads: 0,
    unknownEntries: 0,
    malformedEntries: 0,
    spins: 0,
    spinHits: 0,
  };

  #transport: RingTransport;
  #bytes: Uint8Array;
  #words: Uint32Array;
  #halves: Uint16Array;
  #mailbox: Int32Array;
  #buffer: ArrayBuffer;
  #ringOffset: number;
  #dataStart: number;
  #cursor: number;
  #tail: number;
  #inFlight: (Command | undefined)[] = new Array(MAX_COMMAND_ID + 1).fill(undefined);
  #inFlightCount = 0;
  #handlers: RingHandlers | undefined;
  #source: WaitSource | undefined;
  #kickPending = false;
  #flushScheduled: ReturnType<typeof setImmediate> | undefined;
  #consumeScheduled = false;
  #corrupt = false;
  #closing = false;
  #closePromise: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  #drainBuffer: Uint8Array;
  /** True when the next command must be noticed by the waiter's poll() (see #settle). */
  #needsWake = true;
  #busyTimer: ReturnType<typeof setTimeout> | undefined;
  #busyTimeout = () => {
    this.#busyTimer = undefined;
    this.#wantWake();
  };
  #flushBound = () => {
    this.#flushScheduled = undefined;
    this.flush();
  };
  /** True from a consume that took commands until its same-turn flush (see #afterConsume). */
  #sameTurn = false;
  #hops = 0;
  #afterConsumeBound = () => this.#afterConsume();
  /** TCMU_RING_SPIN_US in milliseconds (0: off), read at start(). */
  #spinMs = 0;
  /** Spins in a row that found no command. */
  #spinMisses = 0;
  /** Times gone idle without spinning since the misses reached spinGiveUp. */
  #spinSkips = 0;

  /** @internal Use `openRing()` or `SimulatedKernel.openRing()`. */
  constructor(transport: RingTransport, path: string) {
    const { mapping } = transport;
    this.#transport = transport;
    this.path = path;
    this.size = mapping.size;
    this.#buffer = mapping.buffer;
    this.#bytes = new Uint8Array(mapping.buffer);
    this.#words = new Uint32Array(mapping.buffer, 0, Math.floor(mapping.size / 4));
    this.#halves = new Uint16Array(mapping.buffer, 0, Math.floor(mapping.size / 2));
    this.#mailbox = new Int32Array(mapping.buffer, 0, COMMAND_RING_OFFSET / 4);
    this.#drainBuffer = new Uint8Array(8);

    const fail = (message: string) =>
      new RingError('TCMU_ERR_RING_UNSUPPORTED', `${path}: ${message}`, { device: path });
    if (mapping.size < COMMAND_RING_OFFSET) throw fail(`mapping of ${mapping.size} bytes is too small`);
    const version = this.#halves[MAILBOX.version / 2]!;
    const flags = this.#halves[MAILBOX.flags / 2]!;
    const ringOffset = this.#words[MAILBOX.commandRingOffset / 4]!;
    const ringSize = this.#words[MAILBOX.commandRingSize / 4]!;
    if (version !== MAILBOX_VERSION) throw fail(`mailbox version ${version}, expected ${MAILBOX_VERSION}`);
    if (ringOffset < 68 || ringOffset % 8 !== 0 || ringSize < 64 || ringSize % 8 !== 0)
      throw fail(`mailbox has cmdr_off ${ringOffset}, cmdr_size ${ringSize}`);
    if (ringOffset + ringSize > mapping.size)
      throw fail(
        `command ring [${ringOffset}, ${ringOffset + ringSize}) exceeds the mapping of ${mapping.size} bytes`,
      );
    this.capabilities = Object.freeze({
      outOfOrderCompletion: (flags & CAPABILITY.outOfOrderCompletion) !== 0,
      readLength: (flags & CAPABILITY.readLength) !== 0,
      taskManagement: (flags & CAPABILITY.taskManagement) !== 0,
      keepBuffer: (flags & CAPABILITY.keepBuffer) !== 0,
    });
    if (!this.capabilities.outOfOrderCompletion)
      throw fail(
        'the kernel does not offer CAP_OOOC (out-of-order completion); Linux 4.6 or later is needed',
      );
    this.#ringOffset = ringOffset;
    this.commandRingSize = ringSize;
    this.#dataStart = ringOffset + ringSize;
    const tail = Atomics.load(this.#mailbox, MAILBOX.commandTail / 4) >>> 0;
    if (tail >= ringSize || tail % 8 !== 0) throw fail(`cmd_tail ${tail} is not inside the ring`);
    this.#cursor = tail;
    this.#tail = tail;
  }

  /** Commands handed to onCommand and not yet completed. */
  get inFlight(): number {
    return this.#inFlightCount;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closing;
  }

  /** True once the ring found an entry it cannot walk past; it consumes nothing more. */
  get corrupt(): boolean {
    return this.#corrupt;
  }

  /**
   * Start consuming: registers with the process-wide waiter and handles entries already in the
   * ring on the next turn of the event loop. `options.spinMicroseconds` sets the idle spin window
   * (RingStartOptions). Throws TCMU_ERR_RING_STARTED if called twice, TCMU_ERR_RING_CLOSED after
   * close(), TCMU_ERR_RING_INVALID_ARGUMENT for a missing handler or a window out of range.
   */
  start(handlers: RingHandlers, options?: RingStartOptions): void {
    if (this.#closing) throw new RingError('TCMU_ERR_RING_CLOSED', `${this.path}: ring is closed`);
    if (this.#handlers) throw new RingError('TCMU_ERR_RING_STARTED', `${this.path}: ring already started`);
    if (typeof handlers?.onCommand !== 'function')
      throw new RingError('TCMU_ERR_RING_INVALID_ARGUMENT', 'start() needs an onCommand handler');
    const spinMs = spinMicroseconds(options) / 1000;
    this.#handlers = handlers;
    this.#spinMs = spinMs;
    const fd = this.#transport.waitFd;
    this.#source = {
      fd,
      onReady: (revents) => this.#onReady(revents),
      wantsWake: () => this.#needsWake,
    };
    processWaiter().add(this.#source);
    this.#scheduleConsume();
  }

  /**
   * Complete command `id` (any order). The completion is written into the ring at once; the kernel
   * is kicked once per batch (on the next turn of the event loop, or by `flush()`).
   * Throws TCMU_ERR_RING_UNKNOWN_COMMAND if `id` is not in flight (completing it would break the
   * ring), TCMU_ERR_RING_INVALID_COMPLETION for a bad status/sense/readLength. After the ring is
   * released by close() this does nothing.
   */
  complete(id: number, completion: RingCompletion): void {
    if (this.#transport.mapping.released) return;
    const command = this.#inFlight[id];
    if (command === undefined || !Number.isInteger(id))
      throw new RingError('TCMU_ERR_RING_UNKNOWN_COMMAND', `${this.path}: command ${id} is not in flight`, {
        device: this.path,
      });
    const { status, sense, readLength } = completion;
    if (!Number.isInteger(status) || status < 0 || status > 255)
      throw new RingError('TCMU_ERR_RING_INVALID_COMPLETION', `status ${status} is not a byte`);
    if (sense !== undefined && sense.length > MAX_SENSE)
      throw new RingError(
        'TCMU_ERR_RING_INVALID_COMPLETION',
        `sense of ${sense.length} bytes exceeds ${MAX_SENSE}`,
      );
    let userFlags = 0;
    let readLengthField = 0;
    if (readLength !== undefined) {
      if (!Number.isSafeInteger(readLength) || readLength < 0)
        throw new RingError('TCMU_ERR_RING_INVALID_COMPLETION', `readLength ${readLength} is invalid`);
      const dataIn = command.bidirectionalIovecs.length > 0 ? command.bidirectionalIovecs : command.iovecs;
      const dataInLength =
        dataIn === command.iovecs ? command.dataLength : dataIn.reduce((n, view) => n + view.length, 0);
      if (readLength < dataInLength) {
        // The kernel ignores read_len 0, so an empty read is always zeroed.
        if (this.capabilities.readLength && readLength > 0) {
          userFlags = USER_FLAG.readLength;
          readLengthField = readLength;
        } else {
          zeroFrom(dataIn, readLength);
        }
      }
    }
    this.#writeCompletion(command, status, sense, userFlags, readLengthField);
  }

  #writeCompletion(
    command: Command,
    status: number,
    sense: Uint8Array | undefined,
    userFlags: number,
    readLength: number,
  ): void {
    const slot = this.#slotAtTail();
    if (slot < 0) {
      // Cannot happen while the in-flight accounting holds; never write outside the ring.
      this.#report(
        new RingError('TCMU_ERR_RING_CORRUPT', `${this.path}: no entry left to complete ${command.id} into`),
      );
      return;
    }
    const at = this.#ringOffset + slot;
    const bytes = this.#bytes;
    this.#halves[(at + ENTRY.commandId) >> 1] = command.id;
    bytes[at + ENTRY.userFlags] = userFlags;
    bytes[at + ENTRY.status] = status;
    this.#words[(at + ENTRY.readLength) >> 2] = readLength;
    if (sense !== undefined || status === CHECK_CONDITION) {
      bytes.fill(0, at + ENTRY.sense, at + ENTRY.sense + MAX_SENSE);
      if (sense !== undefined) bytes.set(sense, at + ENTRY.sense);
    }
    const length = (this.#words[at >> 2]! & ~7) >>> 0;
    const left = this.#cursor > slot ? this.#cursor - slot : this.commandRingSize - slot + this.#cursor;
    if (length >= ENTRY.headerSize && length <= left) this.#tail = this.#advance(slot, length);
    else this.#markCorrupt(`entry at ${slot} changed after it was consumed`);
    this.#inFlight[command.id] = undefined;
    this.#inFlightCount--;
    this.statistics.completions++;
    this.#kickPending = true;
    // Inside a consume's same-turn window #afterConsume kicks; otherwise once per event-loop turn.
    if (!this.#sameTurn && this.#flushScheduled === undefined)
      this.#flushScheduled = setImmediate(this.#flushBound);
    if (this.#inFlightCount === 0 && this.#drained) this.#drained();
  }

  /** Byte position (in the ring) of the next completion slot: the first CMD entry at or after the tail. */
  #slotAtTail(): number {
    let tail = this.#tail;
    const size = this.commandRingSize;
    while (tail !== this.#cursor) {
      const lengthAndOperation = this.#words[(this.#ringOffset + tail) >> 2]!;
      if ((lengthAndOperation & 7) === OP.command) {
        this.#tail = tail;
        return tail;
      }
      // These entries were validated when consumed; if the kernel rewrote one since, stop here
      // rather than walk past the cursor.
      const length = (lengthAndOperation & ~7) >>> 0;
      const left = this.#cursor > tail ? this.#cursor - tail : size - tail + this.#cursor;
      if (length < ENTRY.headerSize || length > left) {
        this.#tail = tail;
        if (!this.#corrupt) this.#markCorrupt(`entry at ${tail} changed after it was consumed`);
        return -1;
      }
      tail = this.#advance(tail, length);
    }
    this.#tail = tail;
    return -1;
  }

  #advance(position: number, length: number): number {
    const next = position + length;
    return next >= this.commandRingSize ? next - this.commandRingSize : next;
  }

  /** Move the tail over PAD, TMR and unknown entries that need no completion. True if it moved. */
  #skipAtTail(): boolean {
    const start = this.#tail;
    this.#slotAtTail();
    return this.#tail !== start;
  }

  /**
   * Publish cmd_tail and kick the kernel if completions (or skipped entries) are pending. Called
   * automatically once per event-loop turn after completions; call it to kick at once.
   */
  flush(): void {
    if (this.#flushScheduled !== undefined) {
      clearImmediate(this.#flushScheduled);
      this.#flushScheduled = undefined;
    }
    if (!this.#kickPending || this.#transport.mapping.released) return;
    this.#kickPending = false;
    this.#skipAtTail();
    Atomics.store(this.#mailbox, MAILBOX.commandTail / 4, this.#tail);
    this.statistics.kicks++;
    if (!this.#transport.kick())
      this.#report(systemError('TCMU_ERR_RING_IO', 'kick (write to the uio device)', this.path));
    // Commands often arrive while we complete: look at cmd_head on the next turn instead of
    // waiting for the waiter's wake-up (a thread round trip). A spurious wake-up later is harmless.
    if (this.#handlers && !this.#closing) this.#scheduleConsume();
  }

  #scheduleConsume(): void {
    if (this.#consumeScheduled) return;
    this.#consumeScheduled = true;
    setImmediate(() => {
      this.#consumeScheduled = false;
      this.#consume();
    });
  }

  #onReady(revents: number): void {
    if (this.#closing) return;
    if (revents & POLLIN) {
      libc().read(this.#transport.waitFd, this.#drainBuffer, this.#transport.drainSize);
      this.statistics.wakeups++;
      this.#needsWake = false;
      this.#consume();
      return;
    }
    if (revents & (POLLERR | POLLHUP | POLLNVAL)) {
      this.#report(
        new RingError(
          'TCMU_ERR_RING_IO',
          `${this.path}: the device reported an error (revents ${revents}); not waiting on it any more`,
          {
            device: this.path,
          },
        ),
      );
      if (this.#source) void processWaiter().remove(this.#source);
      this.#source = undefined;
    }
  }

  /** Walk [cursor, cmd_head). */
  #consume(): void {
    if (this.#corrupt || this.#closing || this.#transport.mapping.released) return;
    const size = this.commandRingSize;
    const head = Atomics.load(this.#mailbox, MAILBOX.commandHead / 4) >>> 0;
    if (head >= size || head % 8 !== 0) {
      this.#markCorrupt(`cmd_head ${head} is not inside the ring of ${size} bytes`);
      return;
    }
    const words = this.#words;
    const onEntry = this.#handlers?.onEntry;
    const commandsBefore = this.statistics.commands;
    while (this.#cursor !== head && !this.#closing) {
      const cursor = this.#cursor;
      const at = this.#ringOffset + cursor;
      const lengthAndOperation = words[at >> 2]!;
      const length = (lengthAndOperation & ~7) >>> 0;
      const available = head > cursor ? head - cursor : size - cursor + head;
      if (length < ENTRY.headerSize || length > available || cursor + length > size) {
        this.#markCorrupt(
          `entry at ${cursor} has length ${length} (${available} bytes up to cmd_head ${head}, ring of ${size})`,
        );
        break;
      }
      if (onEntry) this.#callEntryHook(onEntry, at, length, cursor);
      this.#cursor = this.#advance(cursor, length);
      switch (lengthAndOperation & 7) {
        case OP.pad:
          this.statistics.pads++;
          break;
        case OP.command:
          this.#takeCommand(at, length, cursor);
          break;
        case OP.taskManagement:
          this.#takeTaskManagement(at, length, cursor);
          break;
        default:
          this.#bytes[at + ENTRY.userFlags]! |= USER_FLAG.unknownOperation;
          this.statistics.unknownEntries++;
          this.#report(
            new RingError(
              'TCMU_ERR_RING_UNKNOWN_ENTRY',
              `${this.path}: entry at ${cursor} has unknown operation ${lengthAndOperation & 7}; flagged UNKNOWN_OP and skipped`,
            ),
          );
      }
    }
    if (this.#skipAtTail()) this.#requestKick();
    if (this.statistics.commands !== commandsBefore && !this.#sameTurn) {
      // Let handlers that answer at once complete first; #afterConsume kicks and settles.
      this.#sameTurn = true;
      this.#hops = 0;
      queueMicrotask(this.#afterConsumeBound);
      return;
    }
    if (!this.#sameTurn) this.#settle();
  }

  /**
   * Runs as a microtask after a consume that took commands, again up to `sameTurnHops` times while
   * commands are in flight, then kicks once for everything completed so far. Commands answered from
   * memory reach the kernel in the turn they arrived in, without waiting for the next turn of the
   * event loop; commands still in flight are kicked per turn as before.
   */
  #afterConsume(): void {
    if (this.#inFlightCount > 0 && ++this.#hops < sameTurnHops) {
      queueMicrotask(this.#afterConsumeBound);
      return;
    }
    this.#sameTurn = false;
    if (this.#kickPending) this.flush();
    else this.#settle();
  }

  /**
   * Decides how the next command is noticed. With commands in flight, each completion batch kicks
   * and re-checks the ring on the next turn (flush → consume), so the waiter's poll() is not
   * re-armed: that saves the two thread hops of a wake-up per batch while the device is busy. A
   * timer covers a backend that completes nothing for a while. With nothing in flight the ring
   * asks the waiter for a wake-up.
   */
  #settle(): void {
    if (this.#closing || this.#source === undefined || this.#needsWake) return;
    if (this.#inFlightCount === 0) {
      // Idle: poll() notices the next command; a pending busy re-check would only wake the loop.
      this.#cancelBusyTimer();
      this.#wantWake();
    } else this.#busyTimer ??= setTimeout(this.#busyTimeout, busyRecheckMs);
  }

  #cancelBusyTimer(): void {
    if (this.#busyTimer !== undefined) clearTimeout(this.#busyTimer);
    this.#busyTimer = undefined;
  }

  #wantWake(): void {
    if (this.#closing || this.#source === undefined || this.#needsWake) return;
    const spin =
      this.#spinMs > 0 &&
      this.#inFlightCount === 0 &&
      processWaiter().sourceCount === 1 &&
      (this.#spinMisses < spinGiveUp || ++this.#spinSkips % spinProbeEvery === 0);
    if (spin) {
      this.statistics.spins++;
      if (this.#spinForCommand()) {
        this.statistics.spinHits++;
        this.#spinMisses = 0;
        this.#spinSkips = 0;
        this.#consume();
        return;
      }
      this.#spinMisses++;
    }
    // Reset the fd's readiness first, then look at the ring: a command published after this read
    // makes the fd ready again, so arming poll() below cannot miss it.
    libc().read(this.#transport.waitFd, this.#drainBuffer, this.#transport.drainSize);
    const head = Atomics.load(this.#mailbox, MAILBOX.commandHead / 4) >>> 0;
    if (head !== this.#cursor && !this.#corrupt) {
      this.#scheduleConsume();
      return;
    }
    this.#needsWake = true;
    processWaiter().request();
  }

  /** True if cmd_head moved within the spin window (see spinMicroseconds). */
  #spinForCommand(): boolean {
    const mailbox = this.#mailbox;
    const head = MAILBOX.commandHead / 4;
    const cursor = this.#cursor;
    const deadline = performance.now() + this.#spinMs;
    for (let i = 1; ; i++) {
      if (Atomics.load(mailbox, head) >>> 0 !== cursor) return true;
      if ((i & 63) === 0 && performance.now() > deadline) return false;
    }
  }

  #requestKick(): void {
    this.#kickPending = true;
    if (this.#flushScheduled === undefined) this.#flushScheduled = setImmediate(this.#flushBound);
  }

  #callEntryHook(
    hook: NonNullable<RingHandlers['onEntry']>,
    at: number,
    length: number,
    cursor: number,
  ): void {
    try {
      hook(this.#bytes.slice(at, at + length), cursor);
    } catch (cause) {
      this.#report(new RingError('TCMU_ERR_RING_HANDLER', `${this.path}: onEntry threw`, { cause }));
    }
  }

  /** A u64 from the mapping as a number, or -1 if it cannot be an offset or length in the mapping. */
  #readOffset(at: number): number {
    const high = this.#words[(at >> 2) + 1]!;
    if (high >= 0x200000) return -1;
    return high * TWO_TO_32 + this.#words[at >> 2]!;
  }

  #takeCommand(at: number, length: number, position: number): void {
    const id = this.#halves[(at + ENTRY.commandId) >> 1]!;
    if (id === 0 || this.#inFlight[id] !== undefined) {
      // Completing this entry would complete the wrong command (or break the ring): leave it.
      this.statistics.malformedEntries++;
      this.#report(
        this.#malformed(
          id,
          position,
          id === 0 ? 'cmd_id 0 is invalid; not completed' : 'cmd_id already in flight; not completed',
        ),
      );
      return;
    }
    const entryEnd = at + length;
    const words = this.#words;
    // The CDB first: the entry is reused as soon as completions pass it.
    const cdbOffset = length >= ENTRY.iovecs ? this.#readOffset(at + ENTRY.cdbOffset) : -1;
    const iovecCount = length >= ENTRY.iovecs ? words[(at + ENTRY.iovecCount) >> 2]! : 0;
    const bidirectionalCount = length >= ENTRY.iovecs ? words[(at + ENTRY.bidirectionalIovecCount) >> 2]! : 0;
    const integrityCount = length >= ENTRY.iovecs ? words[(at + ENTRY.integrityIovecCount) >> 2]! : 0;
    const total = iovecCount + bidirectionalCount + integrityCount;
    let problem: string | undefined;
    if (length < ENTRY.iovecs) problem = `entry length ${length} is shorter than a command entry`;
    else if (ENTRY.iovecs + ENTRY.iovecSize * total > length)
      problem = `${total} iovecs do not fit in an entry of ${length} bytes`;
    else if (cdbOffset < at + ENTRY.iovecs + ENTRY.iovecSize * total || cdbOffset >= entryEnd)
      problem = `cdb_off ${cdbOffset} is outside the entry [${at}, ${entryEnd})`;
    let cdb: Uint8Array | undefined;
    let iovecs = noViews;
    let bidirectional = noViews;
    let dataLength = 0;
    if (problem === undefined) {
      cdb = this.#bytes.slice(cdbOffset, entryEnd);
      const views: Uint8Array[] = [];
      let bidirectionalViews: Uint8Array[] | undefined;
      let iovec = at + ENTRY.iovecs;
      for (let i = 0; i < total; i++, iovec += ENTRY.iovecSize) {
        const base = this.#readOffset(iovec);
        const size = this.#readOffset(iovec + 8);
        if (base < this.#dataStart || size < 0 || base + size > this.size) {
          problem = `iovec ${i} [${base}, +${size}) is outside the data area [${this.#dataStart}, ${this.size})`;
          break;
        }
        if (i >= iovecCount + bidirectionalCount || size === 0) continue;
        const view = new Uint8Array(this.#buffer, base, size);
        if (i < iovecCount) {
          views.push(view);
          dataLength += size;
        } else {
          bidirectionalViews ??= [];
          bidirectionalViews.push(view);
        }
      }
      iovecs = views;
      if (bidirectionalViews) bidirectional = bidirectionalViews;
    }
    const command = new Command(id, cdb ?? new Uint8Array(0), iovecs, dataLength, bidirectional);
    this.#inFlight[id] = command;
    this.#inFlightCount++;
    if (problem !== undefined) {
      this.statistics.malformedEntries++;
      this.#report(this.#malformed(id, position, `${problem}; completed with UNKNOWN_OP`));
      this.#writeCompletion(command, CHECK_CONDITION, undefined, USER_FLAG.unknownOperation, 0);
      return;
    }
    this.statistics.commands++;
    try {
      this.#handlers!.onCommand(command);
    } catch (cause) {
      this.#report(
        new RingError(
          'TCMU_ERR_RING_HANDLER',
          `${this.path}: onCommand threw for command ${id}; completed with UNKNOWN_OP`,
          {
            cause,
          },
        ),
      );
      if (this.#inFlight[id] === command && !this.#transport.mapping.released)
        this.#writeCompletion(command, CHECK_CONDITION, undefined, USER_FLAG.unknownOperation, 0);
    }
  }

  #malformed(id: number, position: number, why: string): RingError {
    return new RingError(
      'TCMU_ERR_RING_MALFORMED_ENTRY',
      `${this.path}: command ${id} at ${position}: ${why}`,
      {
        device: this.path,
      },
    );
  }

  #takeTaskManagement(at: number, length: number, position: number): void {
    this.statistics.taskManagement++;
    const type = this.#bytes[at + ENTRY.taskManagementType]!;
    let count = length >= ENTRY.taskManagementIds ? this.#words[(at + ENTRY.taskManagementCount) >> 2]! : 0;
    const room = Math.max(0, Math.floor((length - ENTRY.taskManagementIds) / 2));
    if (count > room) {
      this.#report(
        new RingError(
          'TCMU_ERR_RING_MALFORMED_ENTRY',
          `${this.path}: task management entry at ${position} lists ${count} ids in room for ${room}; using ${room}`,
        ),
      );
      count = room;
    }
    const ids: number[] = [];
    const first = (at + ENTRY.taskManagementIds) >> 1;
    for (let i = 0; i < count; i++) ids.push(this.#halves[first + i]!);
    const request: RingTaskManagement = { type, name: TASK_MANAGEMENT_TYPES[type] ?? 'unknown', ids };
    const handler = this.#handlers?.onTaskManagement;
    if (!handler) return;
    try {
      handler(request);
    } catch (cause) {
      this.#report(new RingError('TCMU_ERR_RING_HANDLER', `${this.path}: onTaskManagement threw`, { cause }));
    }
  }

  #markCorrupt(why: string): void {
    this.#corrupt = true;
    this.#report(
      new RingError('TCMU_ERR_RING_CORRUPT', `${this.path}: ${why}; the ring stops consuming (reset it)`, {
        device: this.path,
      }),
    );
  }

  #report(error: RingError): void {
    const handler = this.#handlers?.onError;
    if (handler) {
      try {
        handler(error);
        return;
      } catch {
        // fall through to stderr
      }
    }
    console.error(`@tcmu/ring: ${error.code}: ${error.message}`);
  }

  /**
   * Stop consuming, wait for commands in flight to be completed (unless `abandonInFlight`), kick
   * the last completions, then unmap and close the device exactly once. Idempotent: every call
   * returns the same promise. No native call is left pending when it resolves.
   */
  close(options: RingCloseOptions = {}): Promise<void> {
    this.#closePromise ??= this.#close(options.abandonInFlight === true);
    return this.#closePromise;
  }

  async #close(abandon: boolean): Promise<void> {
    this.#closing = true;
    this.#cancelBusyTimer();
    if (this.#source) {
      const source = this.#source;
      this.#source = undefined;
      await processWaiter().remove(source);
    }
    if (!abandon && this.#inFlightCount > 0 && !this.#transport.mapping.released)
      await new Promise<void>((resolve) => {
        this.#drained = resolve;
      });
    this.flush();
    // Abandoning: views of commands already completed may still be held by stray handlers too.
    const keepAddressable = abandon || this.#inFlightCount > 0;
    this.#inFlight.fill(undefined);
    this.#inFlightCount = 0;
    this.#transport.mapping.release(keepAddressable);
    for (const fd of this.#transport.closeFds ?? []) libc().close(fd);
    this.#transport.onRelease?.();
  }
}

function uioName(location: string | RingLocation): { name: string; device: string; sysfsRoot: string } {
  if (typeof location === 'string') {
    const name = basename(location);
    return { name, device: location, sysfsRoot: '/sys' };
  }
  return {
    name: location.uio,
    device: join(location.devRoot ?? '/dev', location.uio),
    sysfsRoot: location.sysfsRoot ?? '/sys',
  };
}

/**
 * Open and map a TCMU uio device: `openRing('/dev/uio0')` or `openRing({ uio: 'uio0', sysfsRoot })`.
 * Reads the map size from `<sysfsRoot>/class/uio/<name>/maps/map0/size`, opens the device
 * read-write (one opener at a time), maps it shared and checks the mailbox.
 * Errors: TCMU_ERR_RING_NOT_FOUND (no such device/sysfs entry), TCMU_ERR_RING_IO (EBUSY: already
 * open elsewhere; mmap failed), TCMU_ERR_RING_UNSUPPORTED (mailbox version/flags/sizes).
 */
export async function openRing(location: string | RingLocation): Promise<Ring> {
  const { name, device, sysfsRoot } = uioName(location);
  if (!/^uio\d+$/.test(name))
    throw new RingError('TCMU_ERR_RING_INVALID_ARGUMENT', `${device} is not a uio device path (/dev/uioN)`);
  const sizePath = join(sysfsRoot, 'class', 'uio', name, 'maps', 'map0', 'size');
  let text: string;
  try {
    text = await readFile(sizePath, 'utf8');
  } catch (cause) {
    throw new RingError('TCMU_ERR_RING_NOT_FOUND', `${device}: cannot read its map size from ${sizePath}`, {
      cause,
      device,
    });
  }
  const size = Number.parseInt(text.trim(), text.trim().startsWith('0x') ? 16 : 10);
  if (!Number.isSafeInteger(size) || size <= 0)
    throw new RingError(
      'TCMU_ERR_RING_UNSUPPORTED',
      `${device}: map size ${JSON.stringify(text.trim())} is invalid`,
    );
  const c = libc();
  const fd = c.open(device, O_RDWR | O_CLOEXEC | O_NONBLOCK, 0);
  if (fd < 0) {
    const error = systemError('TCMU_ERR_RING_IO', 'open', device);
    if (error.errno === 'ENOENT')
      throw new RingError('TCMU_ERR_RING_NOT_FOUND', `${device} does not exist`, { errno: 'ENOENT', device });
    if (error.errno === 'EBUSY')
      throw new RingError('TCMU_ERR_RING_IO', `${device} is already open in another process (tcmu-runner?)`, {
        errno: 'EBUSY',
        device,
      });
    throw error;
  }
  const mapping = SharedMapping.map(fd, size, device);
  const kickBuffer = new Uint8Array(4);
  const transport: RingTransport = {
    mapping,
    waitFd: fd,
    drainSize: 4,
    kick: () => c.write(fd, kickBuffer, 4) === 4,
  };
  try {
    return new Ring(transport, device);
  } catch (error) {
    mapping.release();
    throw error;
  }
}

/** Zeroes the data-in views from logical byte `from` to their end (what the initiator must not see). */
function zeroFrom(views: readonly Uint8Array[], from: number): void {
  for (const view of views) {
    if (from < view.length) view.fill(0, Math.max(from, 0));
    from -= view.length;
  }
}
