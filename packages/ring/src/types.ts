import type { RingError } from './errors';
import type { TaskManagementName } from './layout';

/**
 * One SCSI command taken from the ring. Valid until it is completed with `ring.complete(id, …)`.
 * After that, the iovec views point at memory the kernel reuses: never touch them again.
 */
export interface RingCommand {
  /** The kernel's cmd_id, 1..65535. Unique among commands in flight on this ring; reused afterwards. */
  readonly id: number;
  /**
   * The CDB area of the entry, copied out of the ring (safe to keep). It is the CDB padded with up
   * to 7 trailing bytes to a multiple of 8: the layer above knows the CDB length from the opcode.
   */
  readonly cdb: Uint8Array;
  /**
   * The data buffers, as zero-copy views into the shared data area, in order. For a data-out
   * (WRITE-direction) command the kernel has filled them; for data-in, the handler fills them.
   * They may span many discontiguous blocks: use `@tcmu/backend`'s scatter helpers to address them as one buffer.
   */
  readonly iovecs: readonly Uint8Array[];
  /** Sum of the iovec lengths, in bytes (the command's data transfer length; 0 for no data). */
  readonly dataLength: number;
  /** Data-in buffers of a bidirectional command (iov_bidi_cnt); empty otherwise. */
  readonly bidirectionalIovecs: readonly Uint8Array[];
}

/** A task management request (the kernel sends these only with attrib/tmr_notification=1). */
export interface RingTaskManagement {
  /** tmr_type as sent by the kernel (1 ABORT_TASK … 5 LUN_RESET, 128 LUN_RESET_PRO). */
  readonly type: number;
  /** The type by name; 'unknown' for values this package does not know. */
  readonly name: TaskManagementName;
  /**
   * The ids of commands in the ring affected by it. They are still in flight: each still needs
   * `complete()` (the kernel has already failed them towards the initiator).
   */
  readonly ids: readonly number[];
}

/** How a command ended. */
export interface RingCompletion {
  /** SCSI status byte (0 GOOD, 2 CHECK CONDITION, 8 BUSY, 0x28 TASK SET FULL …), 0..255. */
  status: number;
  /** Sense data for CHECK CONDITION, at most 96 bytes; the rest of the kernel's buffer is zeroed. */
  sense?: Uint8Array;
  /**
   * Valid data-in bytes from the start of the data buffer (short reads). With CAP_READ_LEN the
   * kernel is told (READ_LEN flag + read_len); otherwise the unused tail of the iovecs is zeroed so no
   * stale memory reaches the initiator. Omit for "all of it".
   */
  readLength?: number;
}

/** Callbacks of a started ring. All run on the event loop; none may be async in effect (return values are ignored). */
export interface RingHandlers {
  /**
   * A new command. Called in ring order, synchronously while consuming; the handler may complete
   * the command at once or later, in any order. If it throws, the command is completed with
   * UNKNOWN_OP (the kernel fails it with CHECK CONDITION) and the error goes to `onError`.
   */
  onCommand(command: RingCommand): void;
  /** A task management request. Without this handler they are counted and dropped. */
  onTaskManagement?(request: RingTaskManagement): void;
  /**
   * Problems the ring handled but the layer above should know about: malformed or unknown
   * entries, a corrupt ring (consumption stops), a handler that threw, a failed kick, the device gone.
   * Default: written to stderr with `console.error` (never thrown: nothing the kernel sends may crash the process).
   */
  onError?(error: RingError): void;
  /**
   * Called with a copy of every raw entry (header included) before it is handled: for capturing
   * traces. Costs a copy per entry: leave unset in production.
   */
  onEntry?(entry: Uint8Array, position: number): void;
}

/** How a ring waits; given to `start()`. */
export interface RingStartOptions {
  /**
   * Microseconds a ring that has just gone idle watches for the next command before it sleeps
   * (0: never; at most 10000). A command arriving in that window needs no thread wake-up, which is
   * what low queue depths wait for; a window that finds nothing costs that much CPU. Default:
   * `TCMU_RING_SPIN_US` when set, else 1000. Only while the ring is the process's only one.
   */
  readonly spinMicroseconds?: number;
}

/** What the mailbox says the kernel supports. */
export interface RingCapabilities {
  /** CAP_OOOC: completions in any order (required by this package). */
  readonly outOfOrderCompletion: boolean;
  /** CAP_READ_LEN: the kernel honours read_len for short data-in. */
  readonly readLength: boolean;
  /** CAP_TMR: the kernel can send task management entries. */
  readonly taskManagement: boolean;
  /** CAP_KEEP_BUF: the kernel can keep data buffers after completion (not used by this package). */
  readonly keepBuffer: boolean;
}

/** Counters since the ring was opened (monotonic). */
export interface RingStatistics {
  /** Commands handed to onCommand. */
  commands: number;
  /** Completions written to the ring. */
  completions: number;
  /** write() kicks to the kernel (one per batch of completions). */
  kicks: number;
  /** Wake-ups from the waiter. */
  wakeups: number;
  /** Task management entries seen. */
  taskManagement: number;
  /** PAD entries skipped. */
  pads: number;
  /** Entries of unknown operation flagged UNKNOWN_OP. */
  unknownEntries: number;
  /** Malformed command entries completed with UNKNOWN_OP. */
  malformedEntries: number;
  /** Times the ring, just gone idle, watched `cmd_head` before sleeping (see `Ring` on spinning). */
  spins: number;
  /** Spins that ended with a command (taken without a wake-up). */
  spinHits: number;
}

/** Where to find the uio device when not given a /dev path. */
export interface RingLocation {
  /** The uio device name, e.g. 'uio0'. */
  uio: string;
  /** Root of sysfs (default '/sys'); the map size is read from `<root>/class/uio/<uio>/maps/map0/size`. */
  sysfsRoot?: string;
  /** Folder holding the device node (default '/dev'). */
  devRoot?: string;
}

export interface RingCloseOptions {
  /**
   * Close without waiting for commands in flight. Every iovec view stays addressable (the device
   * mapping is replaced by anonymous memory, so stray writes cannot crash the process), but their
   * completions are dropped: the kernel fails them by timeout or ring reset. Default false:
   * `close()` waits until every command handed out has been completed.
   */
  abandonInFlight?: boolean;
}
