// A stand-in for the kernel's target_core_user, following drivers/target/target_core_user.c:
// the same mailbox, entry layout, PADs at wrap-around, data blocks, cyclic cmd_ids, TMR entries,
// ring-full queueing and the completion reaping that marks the ring broken on an unknown id.
// The shared memory is a real memfd mapped twice (here and by the Ring), through the same koffi path.
import { EFD_CLOEXEC, EFD_NONBLOCK, libc, MFD_CLOEXEC } from '@tcmu/libc';
import { RingError, systemError } from '../errors';
import {
  alignUp,
  CAPABILITY,
  COMMAND_RING_OFFSET,
  commandEntryBaseSize,
  ENTRY,
  MAILBOX,
  MAILBOX_VERSION,
  OP,
  TASK_MANAGEMENT_TYPES,
  type TaskManagementName,
  USER_FLAG,
} from '../layout';
import { SharedMapping } from '../mapping';
import { Ring } from '../ring';
import type { RingCapabilities } from '../types';

export interface SimulatedKernelOptions {
  /** cmdr_size in bytes, a multiple of 8 (default 1 MiB − 128, like cmd_ring_size_mb=1). */
  commandRingSize?: number;
  /** Bytes per data block (default 4096, data_pages_per_blk=1). */
  dataBlockSize?: number;
  /** Number of data blocks (default 16384: a 64 MiB data area). */
  dataBlocks?: number;
  /** Mailbox capabilities (default: all four, like Linux 6.1). */
  capabilities?: Partial<RingCapabilities>;
  /**
   * Fill data-in buffers with this byte before handing them to userspace. The kernel leaves stale
   * data there; poisoning makes tests catch a handler that leaks it. Default: stale, like the kernel.
   */
  poisonDataIn?: number;
  /** Send TMR entries on taskManagement() (attrib/tmr_notification=1). Default: if CAP_TMR. */
  taskManagementNotification?: boolean;
  /** Mailbox version to announce (default 2; anything else to test a consumer's check). */
  mailboxVersion?: number;
}

/** One SCSI command as an initiator sends it. */
export interface SubmitRequest {
  /** The CDB bytes (6..260). */
  cdb: Uint8Array;
  /** Data-out (WRITE direction): copied into data blocks before the entry is published. */
  dataOut?: Uint8Array;
  /** Data-in length in bytes (READ direction). With dataOut too, the command is bidirectional. */
  dataInLength?: number;
  /**
   * Do not copy data-in out to the result (an initiator reading into /dev/null): `dataIn` is empty,
   * `readLength` still says how much was transferred. For benchmarks of the userspace side.
   */
  discardDataIn?: boolean;
  /**
   * Where to copy data-in (an initiator's own buffer, at least `dataInLength` bytes): `dataIn` is
   * then a view of it. Default: a new buffer per command.
   */
  dataInto?: Uint8Array;
}

/** What the initiator gets back once the kernel has reaped the completion. */
export interface SubmitResult {
  /** The cmd_id the command had in the ring. */
  id: number;
  /** SCSI status (CHECK CONDITION if userspace set UNKNOWN_OP). */
  status: number;
  /** Sense bytes (96, as the kernel copies them) for CHECK CONDITION; empty otherwise. */
  sense: Uint8Array;
  /** Data-in as the initiator receives it: the whole buffer, or read_len bytes with READ_LEN. */
  dataIn: Uint8Array;
  /** Bytes of data-in transferred. */
  readLength: number;
  /** Userspace set UNKNOWN_OP on the completion. */
  unknownOperation: boolean;
  /** A task management function named this command while it was in the ring. */
  aborted: boolean;
}

/** Counters of the simulated kernel. */
export interface SimulatedKernelStatistics {
  submitted: number;
  reaped: number;
  kicks: number;
  pads: number;
  taskManagement: number;
  /** Submissions that had to wait for ring or data space. */
  queuedForSpace: number;
  /** Highest number of commands in the ring at once. */
  maxInRing: number;
}

interface Iovec {
  base: number;
  length: number;
}

/** One submission: queued for space, then in the ring until reaped. */
class Submission {
  id = 0;
  blocks: number[] = noBlocks;
  dataIn: Iovec[] = noIovecs;
  dataInLength = 0;
  aborted = false;
  constructor(
    readonly kind: 'command' | 'tmr',
    readonly request: SubmitRequest | undefined,
    readonly resolve: (result: SubmitResult) => void,
    readonly reject: (error: Error) => void,
    readonly type = 0,
    readonly ids: number[] = [],
  ) {}
}

const noBlocks: number[] = [];
const noIovecs: Iovec[] = [];
const ignore = () => {};

/** A captured entry of a trace (see `RingTrace`). */
export interface RingTraceEntry {
  /** Position of the entry in the ring (bytes from cmdr_off). */
  position: number;
  /** Ordinal of the entry since capture began (a trace may skip entries). */
  sequence?: number;
  /** The raw entry bytes in hex, header included, as the kernel wrote them. */
  entry: string;
  /** Length of the CDB in bytes (the entry holds it padded to 8). */
  cdbLength?: number;
  /** Data direction of the command: 'in' (READ), 'out' (WRITE), 'none', 'bidirectional'. */
  direction?: 'in' | 'out' | 'none' | 'bidirectional';
  /** Data-out bytes in hex (may be absent when too long to keep: zeros are replayed). */
  dataOut?: string;
  /** The SCSI status userspace answered with when it was captured. */
  status?: number;
}

/** A captured sequence of entries from a real (or simulated) kernel. */
export interface RingTrace {
  /** Where it came from (kernel release, device). */
  source: string;
  mailbox: {
    version: number;
    flags: number;
    commandRingOffset: number;
    commandRingSize: number;
    mapSize: number;
  };
  entries: RingTraceEntry[];
}

/** A raw entry decoded by the simulated kernel's own reader (independent of the Ring's). */
export interface DecodedEntry {
  operation: number;
  length: number;
  id: number;
  kernelFlags: number;
  userFlags: number;
  iovecCount?: number;
  bidirectionalIovecCount?: number;
  integrityIovecCount?: number;
  /** cdb_off relative to the start of the entry. */
  cdbOffsetInEntry?: number;
  iovecs?: Iovec[];
  cdb?: Uint8Array;
  taskManagementType?: number;
  taskManagementIds?: number[];
}

const empty = new Uint8Array(0);

function writeU64(words: Uint32Array, index: number, value: number): void {
  words[index] = value >>> 0;
  words[index + 1] = Math.floor(value / 2 ** 32);
}

const fromHex = (hex: string) => Uint8Array.from(Buffer.from(hex, 'hex'));

/** Decode a raw entry (as captured in a trace). `mappingRingOffset` is cmdr_off + position. */
export function decodeEntry(raw: Uint8Array, mappingRingOffset?: number): DecodedEntry {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const lengthAndOperation = view.getUint32(0, true);
  const decoded: DecodedEntry = {
    operation: lengthAndOperation & 7,
    length: lengthAndOperation & ~7,
    id: view.getUint16(4, true),
    kernelFlags: raw[6]!,
    userFlags: raw[7]!,
  };
  if (decoded.operation === OP.command && raw.length >= ENTRY.iovecs) {
    decoded.iovecCount = view.getUint32(ENTRY.iovecCount, true);
    decoded.bidirectionalIovecCount = view.getUint32(ENTRY.bidirectionalIovecCount, true);
    decoded.integrityIovecCount = view.getUint32(ENTRY.integrityIovecCount, true);
    const total = decoded.iovecCount + decoded.bidirectionalIovecCount + decoded.integrityIovecCount;
    decoded.iovecs = [];
    for (let i = 0; i < total && ENTRY.iovecs + 16 * (i + 1) <= raw.length; i++)
      decoded.iovecs.push({
        base: Number(view.getBigUint64(ENTRY.iovecs + 16 * i, true)),
        length: Number(view.getBigUint64(ENTRY.iovecs + 16 * i + 8, true)),
      });
    if (mappingRingOffset !== undefined) {
      const inEntry = Number(view.getBigUint64(ENTRY.cdbOffset, true)) - mappingRingOffset;
      decoded.cdbOffsetInEntry = inEntry;
      if (inEntry >= 0 && inEntry < raw.length) decoded.cdb = raw.slice(inEntry);
    }
  } else if (decoded.operation === OP.taskManagement && raw.length >= ENTRY.taskManagementIds) {
    decoded.taskManagementType = raw[ENTRY.taskManagementType]!;
    const count = view.getUint32(ENTRY.taskManagementCount, true);
    decoded.taskManagementIds = [];
    for (let i = 0; i < count && ENTRY.taskManagementIds + 2 * (i + 1) <= raw.length; i++)
      decoded.taskManagementIds.push(view.getUint16(ENTRY.taskManagementIds + 2 * i, true));
  }
  return decoded;
}

const TASK_MANAGEMENT_CODES = new Map<string, number>(
  Object.entries(TASK_MANAGEMENT_TYPES).map(([code, name]) => [name, Number(code)]),
);

/**
 * A simulated target_core_user device: submit commands as an initiator would and serve them
 * through a real `Ring` from `openRing()`. Everything runs on the event loop of this process.
 */
export class SimulatedKernel {
  readonly commandRingSize: number;
  readonly dataBlockSize: number;
  readonly dataBlocks: number;
  readonly mapSize: number;
  readonly statistics: SimulatedKernelStatistics = {
    submitted: 0,
    reaped: 0,
    kicks: 0,
    pads: 0,
    taskManagement: 0,
    queuedForSpace: 0,
    maxInRing: 0,
  };

  #memfd: number;
  #wakeFd: number;
  #mapping: SharedMapping;
  #bytes: Uint8Array;
  #view: DataView;
  #words: Uint32Array;
  #mailbox: Int32Array;
  #dataStart: number;
  #head = 0;
  #lastCleaned = 0;
  #blockUsed: Uint8Array;
  #freeBlocks: number;
  #lowestFree = 0;
  #commands: (Submission | undefined)[] = new Array(0x10000).fill(undefined);
  #inRing = 0;
  #nextId = 1;
  #queue: Submission[] = [];
  #wakeScheduled = false;
  #wakeValue = new Uint8Array(new BigUint64Array([1n]).buffer);
  #broken: RingError | undefined;
  #ringOpen = false;
  #closed = false;
  #poison: number | undefined;
  #notifyTaskManagement: boolean;
  #onBroken: ((error: RingError) => void)[] = [];

  constructor(options: SimulatedKernelOptions = {}) {
    const commandRingSize = options.commandRingSize ?? 1024 * 1024 - COMMAND_RING_OFFSET;
    const dataBlockSize = options.dataBlockSize ?? 4096;
    const dataBlocks = options.dataBlocks ?? 16384;
    if (!Number.isInteger(commandRingSize) || commandRingSize % 8 !== 0 || commandRingSize < 256)
      throw new RingError(
        'TCMU_ERR_RING_INVALID_ARGUMENT',
        'commandRingSize must be a multiple of 8, at least 256',
      );
    if (!Number.isInteger(dataBlockSize) || dataBlockSize % 4096 !== 0 || dataBlockSize <= 0)
      throw new RingError(
        'TCMU_ERR_RING_INVALID_ARGUMENT',
        'dataBlockSize must be a positive multiple of 4096',
      );
    if (!Number.isInteger(dataBlocks) || dataBlocks <= 0)
      throw new RingError('TCMU_ERR_RING_INVALID_ARGUMENT', 'dataBlocks must be a positive integer');
    this.commandRingSize = commandRingSize;
    this.dataBlockSize = dataBlockSize;
    this.dataBlocks = dataBlocks;
    this.#dataStart = alignUp(COMMAND_RING_OFFSET + commandRingSize, 4096);
    this.mapSize = this.#dataStart + dataBlocks * dataBlockSize;
    this.#blockUsed = new Uint8Array(dataBlocks);
    this.#freeBlocks = dataBlocks;
    this.#poison = options.poisonDataIn;
    const c = libc();
    this.#memfd = c.memfdCreate('tcmu-simulated-kernel', MFD_CLOEXEC);
    if (this.#memfd < 0) throw systemError('TCMU_ERR_RING_IO', 'memfd_create');
    if (c.ftruncate(this.#memfd, this.mapSize) < 0) {
      const error = systemError('TCMU_ERR_RING_IO', 'ftruncate of the memfd');
      c.close(this.#memfd);
      throw error;
    }
    this.#wakeFd = c.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (this.#wakeFd < 0) {
      const error = systemError('TCMU_ERR_RING_IO', 'eventfd');
      c.close(this.#memfd);
      throw error;
    }
    const fd = c.dup(this.#memfd);
    this.#mapping = SharedMapping.map(fd, this.mapSize, 'simulated kernel');
    this.#bytes = new Uint8Array(this.#mapping.buffer);
    this.#view = new DataView(this.#mapping.buffer);
    this.#words = new Uint32Array(this.#mapping.buffer, 0, this.mapSize / 4);
    this.#mailbox = new Int32Array(this.#mapping.buffer, 0, COMMAND_RING_OFFSET / 4);
    const caps = {
      outOfOrderCompletion: true,
      readLength: true,
      taskManagement: true,
      keepBuffer: true,
      ...options.capabilities,
    };
    const flags =
      (caps.outOfOrderCompletion ? CAPABILITY.outOfOrderCompletion : 0) |
      (caps.readLength ? CAPABILITY.readLength : 0) |
      (caps.taskManagement ? CAPABILITY.taskManagement : 0) |
      (caps.keepBuffer ? CAPABILITY.keepBuffer : 0);
    this.#notifyTaskManagement = options.taskManagementNotification ?? caps.taskManagement;
    this.#view.setUint16(MAILBOX.version, options.mailboxVersion ?? MAILBOX_VERSION, true);
    this.#view.setUint16(MAILBOX.flags, flags, true);
    this.#view.setUint32(MAILBOX.commandRingOffset, COMMAND_RING_OFFSET, true);
    this.#view.setUint32(MAILBOX.commandRingSize, commandRingSize, true);
  }

  /** The ring-broken error, once a completion named an unknown command (like the kernel's "ring is broken"). */
  get broken(): RingError | undefined {
    return this.#broken;
  }

  /** Commands in the ring (published, not yet reaped). */
  get inRing(): number {
    return this.#inRing;
  }

  /** Submissions waiting for ring or data space. */
  get queued(): number {
    return this.#queue.length;
  }

  /** cmd_ids of the commands in the ring, oldest first by id order. */
  commandsInRing(): number[] {
    const ids: number[] = [];
    for (let id = 1; id < this.#commands.length; id++) if (this.#commands[id]) ids.push(id);
    return ids;
  }

  /**
   * The whole shared mapping as the kernel sees it (mailbox at 0, ring at 128, data area after):
   * for tests that play a misbehaving userspace or inspect entries.
   */
  get sharedMemory(): Uint8Array {
    this.#assertOpen();
    return this.#bytes;
  }

  #assertOpen(): void {
    if (this.#closed) throw new RingError('TCMU_ERR_RING_CLOSED', 'the simulated kernel is closed');
  }

  /** Byte offset of the data area in the mapping. */
  get dataAreaOffset(): number {
    return this.#dataStart;
  }

  /** Called once when the ring breaks. */
  onBroken(listener: (error: RingError) => void): void {
    this.#onBroken.push(listener);
  }

  /**
   * A Ring over this kernel's mapping, as `openRing('/dev/uioN')` would give for a real device
   * (only one open at a time, like the uio device: a second open throws EBUSY).
   */
  async openRing(): Promise<Ring> {
    if (this.#closed) throw new RingError('TCMU_ERR_RING_CLOSED', 'the simulated kernel is closed');
    if (this.#ringOpen)
      throw new RingError('TCMU_ERR_RING_IO', 'simulated uio device is already open', { errno: 'EBUSY' });
    const c = libc();
    const mapFd = c.dup(this.#memfd);
    const waitFd = c.dup(this.#wakeFd);
    if (mapFd < 0 || waitFd < 0) throw systemError('TCMU_ERR_RING_IO', 'dup');
    const mapping = SharedMapping.map(mapFd, this.mapSize, 'simulated uio device');
    this.#ringOpen = true;
    try {
      return new Ring(
        {
          mapping,
          waitFd,
          drainSize: 8,
          kick: () => {
            this.kick();
            return true;
          },
          closeFds: [waitFd],
          onRelease: () => {
            this.#ringOpen = false;
          },
        },
        'simulated uio device',
      );
    } catch (error) {
      mapping.release();
      c.close(waitFd);
      this.#ringOpen = false;
      throw error;
    }
  }

  /**
   * Send a command as an initiator would. Resolves when userspace has completed it and a kick
   * reaped it; rejects with TCMU_ERR_RING_BROKEN if the ring breaks first, TCMU_ERR_RING_ABORTED
   * if a task management function aborts it while it waits for space, TCMU_ERR_RING_CLOSED on close().
   */
  submit(request: SubmitRequest): Promise<SubmitResult> {
    return new Promise<SubmitResult>((resolve, reject) => {
      if (this.#closed)
        return reject(new RingError('TCMU_ERR_RING_CLOSED', 'the simulated kernel is closed'));
      if (this.#broken) return reject(this.#broken);
      const blocks = this.#blocksFor(request);
      if (blocks < 0)
        return reject(new RingError('TCMU_ERR_RING_INVALID_ARGUMENT', 'invalid submit request'));
      if (request.dataInto && request.dataInto.length < (request.dataInLength ?? 0))
        return reject(
          new RingError('TCMU_ERR_RING_INVALID_ARGUMENT', 'dataInto is shorter than dataInLength'),
        );
      if (blocks > this.dataBlocks)
        return reject(
          new RingError(
            'TCMU_ERR_RING_INVALID_ARGUMENT',
            `command needs ${blocks} data blocks; the area has ${this.dataBlocks}`,
          ),
        );
      this.statistics.submitted++;
      const queued = new Submission('command', request, resolve, reject);
      if (this.#queue.length > 0 || !this.#place(queued)) {
        this.statistics.queuedForSpace++;
        this.#queue.push(queued);
      }
    });
  }

  /**
   * A task management function from the initiator (e.g. 'abort-task', 'lun-reset'). `ids` are
   * cmd_ids in the ring (`commandsInRing()`), or 'all'. Commands still queued for space are
   * aborted by the kernel itself (their submit rejects with TCMU_ERR_RING_ABORTED, with 'all');
   * commands in the ring are marked aborted and a TMR entry lists them (if notification is on):
   * userspace must still complete them.
   */
  taskManagement(type: number | TaskManagementName, ids: readonly number[] | 'all'): void {
    this.#assertOpen();
    const code = typeof type === 'number' ? type : TASK_MANAGEMENT_CODES.get(type);
    if (code === undefined || code < 0 || code > 255)
      throw new RingError('TCMU_ERR_RING_INVALID_ARGUMENT', `unknown task management function ${type}`);
    if (ids === 'all') {
      for (const queued of this.#queue.splice(0))
        queued.reject(new RingError('TCMU_ERR_RING_ABORTED', 'aborted by task management while queued'));
    }
    const inRing = (ids === 'all' ? this.commandsInRing() : ids).filter(
      (id) => this.#commands[id] !== undefined,
    );
    for (const id of inRing) this.#commands[id]!.aborted = true;
    if (!this.#notifyTaskManagement) return;
    this.statistics.taskManagement++;
    const queued = new Submission('tmr', undefined, ignore, ignore, code, inRing);
    if (this.#queue.length > 0 || !this.#place(queued)) this.#queue.push(queued);
  }

  /**
   * Publish a raw entry of `length` bytes with operation `operation` (e.g. an operation a future
   * kernel might send). Userspace must flag it UNKNOWN_OP; the reaper then skips it.
   */
  injectEntry(operation: number, length = 16): void {
    this.#assertOpen();
    const size = alignUp(Math.max(length, 8), 8);
    if (!this.#reserve(size))
      throw new RingError('TCMU_ERR_RING_INVALID_ARGUMENT', 'no ring space for the entry');
    const at = COMMAND_RING_OFFSET + this.#head;
    this.#bytes.fill(0, at, at + size);
    this.#view.setUint32(at, size | (operation & 7), true);
    this.#publish(this.#advance(this.#head, size));
  }

  /**
   * Submit a command, then let `corrupt` rewrite its entry before it is published (to test what
   * userspace does with entries the kernel should never write). `at` is the entry's offset in the mapping.
   */
  submitCorrupted(
    request: SubmitRequest,
    corrupt: (view: DataView, at: number) => void,
  ): Promise<SubmitResult> {
    this.#corruptNext = corrupt;
    try {
      return this.submit(request);
    } finally {
      this.#corruptNext = undefined;
    }
  }

  #corruptNext: ((view: DataView, at: number) => void) | undefined;

  /** Write cmd_head directly (to test a consumer against a corrupt mailbox), and wake the consumer. */
  corruptHead(value: number): void {
    this.#assertOpen();
    Atomics.store(this.#mailbox, MAILBOX.commandHead / 4, value | 0);
    this.#scheduleWake();
  }

  /**
   * Replay a captured trace: each command entry is decoded (CDB, direction, data lengths) and
   * submitted again in order, each task management entry re-sent. Resolves with the results of
   * the commands in trace order.
   */
  async replay(trace: RingTrace): Promise<SubmitResult[]> {
    const pending: Promise<SubmitResult>[] = [];
    for (const captured of trace.entries) {
      const raw = fromHex(captured.entry);
      const entry = decodeEntry(raw, trace.mailbox.commandRingOffset + captured.position);
      if (entry.operation === OP.command && entry.cdb) {
        const cdb = entry.cdb.subarray(0, captured.cdbLength ?? entry.cdb.length);
        const iovecs = entry.iovecs ?? [];
        const count = entry.iovecCount ?? 0;
        const length = iovecs.slice(0, count).reduce((n, iovec) => n + iovec.length, 0);
        const bidirectional = iovecs.slice(count, count + (entry.bidirectionalIovecCount ?? 0));
        const direction = captured.direction ?? 'none';
        const request: SubmitRequest = { cdb: Uint8Array.from(cdb) };
        if (direction === 'in') request.dataInLength = length;
        if (direction === 'out' || direction === 'bidirectional') {
          const data = new Uint8Array(length);
          if (captured.dataOut) data.set(fromHex(captured.dataOut).subarray(0, length));
          request.dataOut = data;
        }
        if (direction === 'bidirectional')
          request.dataInLength = bidirectional.reduce((n, iovec) => n + iovec.length, 0);
        pending.push(this.submit(request));
      } else if (entry.operation === OP.taskManagement) {
        this.taskManagement(entry.taskManagementType ?? 0, []);
      }
    }
    return Promise.all(pending);
  }

  /** Reject everything pending and unmap. The Ring should be closed first. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const error = new RingError('TCMU_ERR_RING_CLOSED', 'the simulated kernel was closed');
    for (const queued of this.#queue.splice(0)) queued.reject(error);
    for (let id = 1; id < this.#commands.length; id++) {
      const pending = this.#commands[id];
      if (pending) {
        this.#commands[id] = undefined;
        pending.reject(error);
      }
    }
    const c = libc();
    this.#mapping.release(this.#ringOpen);
    c.close(this.#memfd);
    c.close(this.#wakeFd);
  }

  #blocksFor(request: SubmitRequest): number {
    const out = request.dataOut?.length ?? 0;
    const inLength = request.dataInLength ?? 0;
    if (!(request.cdb instanceof Uint8Array) || request.cdb.length < 1 || request.cdb.length > 260) return -1;
    if (!Number.isSafeInteger(inLength) || inLength < 0) return -1;
    return Math.ceil(out / this.dataBlockSize) + Math.ceil(inLength / this.dataBlockSize);
  }

  #advance(position: number, length: number): number {
    const next = position + length;
    return next >= this.commandRingSize ? next - this.commandRingSize : next;
  }

  /** Ring space for an entry of `size` bytes at the head, writing a PAD first if it would not be contiguous. */
  #reserve(size: number): boolean {
    const ringSize = this.commandRingSize;
    const used = (this.#head - this.#lastCleaned + ringSize) % ringSize;
    const free = ringSize - used - 1;
    const toEnd = ringSize - this.#head;
    const needed = toEnd >= size ? size : size + toEnd;
    if (free < needed) return false;
    if (toEnd < size) {
      const at = COMMAND_RING_OFFSET + this.#head;
      this.#view.setUint32(at, toEnd | OP.pad, true);
      this.#view.setUint32(at + 4, 0, true);
      this.statistics.pads++;
      this.#head = 0;
    }
    return true;
  }

  #allocateBlocks(count: number, into: number[]): void {
    let block = this.#lowestFree;
    for (let found = 0; found < count; block++) {
      if (this.#blockUsed[block] === 0) {
        this.#blockUsed[block] = 1;
        into.push(block);
        found++;
      }
    }
    this.#freeBlocks -= count;
    this.#lowestFree = block;
  }

  /** Iovecs over `blocks[from, from + blockCount)` for `length` bytes, merging adjacent blocks. */
  #iovecs(blocks: number[], from: number, length: number): Iovec[] {
    const iovecs: Iovec[] = [];
    let left = length;
    for (let i = from; left > 0; i++) {
      const block = blocks[i]!;
      const size = Math.min(left, this.dataBlockSize);
      const base = this.#dataStart + block * this.dataBlockSize;
      const last = iovecs[iovecs.length - 1];
      if (last && last.base + last.length === base) last.length += size;
      else iovecs.push({ base, length: size });
      left -= size;
    }
    return iovecs;
  }

  #place(queued: Submission): boolean {
    return queued.kind === 'command' ? this.#placeCommand(queued) : this.#placeTaskManagement(queued);
  }

  #placeTaskManagement(queued: Submission): boolean {
    const ids = queued.ids;
    const size = alignUp(ENTRY.taskManagementIds + 2 * ids.length, 8);
    if (!this.#reserve(size)) return false;
    const at = COMMAND_RING_OFFSET + this.#head;
    this.#bytes.fill(0, at, at + size);
    this.#view.setUint32(at, size | OP.taskManagement, true);
    this.#bytes[at + ENTRY.taskManagementType] = queued.type;
    this.#view.setUint32(at + ENTRY.taskManagementCount, ids.length, true);
    ids.forEach((id, i) => {
      this.#view.setUint16(at + ENTRY.taskManagementIds + 2 * i, id, true);
    });
    this.#publish(this.#advance(this.#head, size));
    return true;
  }

  #allocateId(): number {
    for (let tries = 0; tries < 0xffff; tries++) {
      const id = this.#nextId;
      this.#nextId = id === 0xffff ? 1 : id + 1;
      if (this.#commands[id] === undefined) return id;
    }
    return -1;
  }

  #placeCommand(queued: Submission): boolean {
    const request = queued.request!;
    const outLength = request.dataOut?.length ?? 0;
    const inLength = request.dataInLength ?? 0;
    const outBlocks = Math.ceil(outLength / this.dataBlockSize);
    const inBlocks = Math.ceil(inLength / this.dataBlockSize);
    if (outBlocks + inBlocks > this.#freeBlocks) return false;
    if (this.#inRing >= 0xffff) return false;
    const blocks: number[] = [];
    this.#allocateBlocks(outBlocks + inBlocks, blocks);
    const dataOut = this.#iovecs(blocks, 0, outLength);
    const dataIn = this.#iovecs(blocks, outBlocks, inLength);
    const bidirectional = outLength > 0 && inLength > 0;
    const dataIovecs = bidirectional ? dataOut : outLength > 0 ? dataOut : dataIn;
    const bidirectionalIovecs = bidirectional ? dataIn : [];
    const iovecCount = dataIovecs.length + bidirectionalIovecs.length;
    const baseSize = commandEntryBaseSize(iovecCount);
    const size = baseSize + alignUp(request.cdb.length, 8);
    if (!this.#reserve(size)) {
      this.#freeBlockList(blocks);
      return false;
    }
    const id = this.#allocateId();
    const at = COMMAND_RING_OFFSET + this.#head;
    const words = this.#words;
    const w = at >> 2; // entries are 8-byte aligned
    words[w] = size | OP.command;
    words[w + 1] = id; // cmd_id, kflags 0, uflags 0
    words[w + 2] = dataIovecs.length;
    words[w + 3] = bidirectionalIovecs.length;
    words[w + 4] = 0; // iov_dif_cnt
    words[w + 5] = 0;
    writeU64(words, w + 6, at + baseSize); // cdb_off
    words.fill(0, w + 8, w + 12); // __pad1, __pad2
    let iovec = w + 12;
    for (let list = 0; list < 2; list++)
      for (const { base, length } of list === 0 ? dataIovecs : bidirectionalIovecs) {
        writeU64(words, iovec, base);
        writeU64(words, iovec + 2, length);
        iovec += 4;
      }
    iovec <<= 2;
    if (iovec < at + baseSize) this.#bytes.fill(0, iovec, at + baseSize);
    this.#bytes.set(request.cdb, at + baseSize);
    this.#bytes.fill(0, at + baseSize + request.cdb.length, at + size);
    if (request.dataOut) {
      let offset = 0;
      for (const { base, length } of dataOut) {
        this.#bytes.set(request.dataOut.subarray(offset, offset + length), base);
        offset += length;
      }
    }
    if (this.#poison !== undefined)
      for (const { base, length } of dataIn) this.#bytes.fill(this.#poison, base, base + length);
    const pending = queued;
    pending.id = id;
    pending.blocks = blocks;
    pending.dataIn = dataIn;
    pending.dataInLength = inLength;
    this.#commands[id] = pending;
    this.#inRing++;
    if (this.#inRing > this.statistics.maxInRing) this.statistics.maxInRing = this.#inRing;
    if (this.#corruptNext) this.#corruptNext(this.#view, at);
    this.#publish(this.#advance(this.#head, size));
    return true;
  }

  #freeBlockList(blocks: number[]): void {
    for (const block of blocks) {
      this.#blockUsed[block] = 0;
      if (block < this.#lowestFree) this.#lowestFree = block;
    }
    this.#freeBlocks += blocks.length;
  }

  /** Store-release the new head and wake the consumer (the uio event). */
  #publish(head: number): void {
    this.#head = head;
    Atomics.store(this.#mailbox, MAILBOX.commandHead / 4, head);
    this.#scheduleWake();
  }

  #scheduleWake(): void {
    if (this.#wakeScheduled) return;
    this.#wakeScheduled = true;
    queueMicrotask(() => {
      this.#wakeScheduled = false;
      if (!this.#closed) libc().write(this.#wakeFd, this.#wakeValue, 8);
    });
  }

  #break(why: string): void {
    if (this.#broken) return;
    this.#broken = new RingError('TCMU_ERR_RING_BROKEN', `simulated kernel: ${why}, ring is broken`);
    console.error(`@tcmu/ring/testing: ${this.#broken.message}`);
    for (const listener of this.#onBroken) listener(this.#broken);
    for (const queued of this.#queue.splice(0)) queued.reject(this.#broken);
    for (let id = 1; id < this.#commands.length; id++) {
      const pending = this.#commands[id];
      if (pending) {
        this.#commands[id] = undefined;
        pending.reject(this.#broken);
      }
    }
  }

  /**
   * What write() on the uio fd does: reap completions from the last reaped position up to
   * cmd_tail (PAD and TMR entries skipped; an id not in the ring breaks the ring), then send what
   * waited for space. The Ring calls this on flush; tests may call it to play a buggy userspace.
   */
  kick(): void {
    this.statistics.kicks++;
    if (this.#broken || this.#closed) return;
    const ringSize = this.commandRingSize;
    const tail = Atomics.load(this.#mailbox, MAILBOX.commandTail / 4) >>> 0;
    if (tail >= ringSize || tail % 8 !== 0) return void this.#break(`cmd_tail ${tail} is outside the ring`);
    const published = (this.#head - this.#lastCleaned + ringSize) % ringSize;
    const toReap = (tail - this.#lastCleaned + ringSize) % ringSize;
    if (toReap > published) return void this.#break(`cmd_tail ${tail} is past cmd_head ${this.#head}`);
    const view = this.#view;
    let cleaned = this.#lastCleaned;
    while (cleaned !== tail) {
      const at = COMMAND_RING_OFFSET + cleaned;
      const lengthAndOperation = view.getUint32(at, true);
      const operation = lengthAndOperation & 7;
      const length = lengthAndOperation & ~7;
      if (length === 0) return void this.#break(`zero-length entry at ${cleaned}`);
      const userFlags = this.#bytes[at + ENTRY.userFlags]!;
      if (
        operation === OP.pad ||
        operation === OP.taskManagement ||
        (operation !== OP.command && userFlags & USER_FLAG.unknownOperation)
      ) {
        cleaned = this.#advance(cleaned, length);
        this.#lastCleaned = cleaned;
        continue;
      }
      const id = view.getUint16(at + ENTRY.commandId, true);
      const pending = this.#commands[id];
      if (operation !== OP.command || pending === undefined) {
        this.#lastCleaned = cleaned;
        return void this.#break(`cmd_id ${id} not found`);
      }
      this.#commands[id] = undefined;
      this.#inRing--;
      this.statistics.reaped++;
      this.#finish(pending, at, userFlags);
      cleaned = this.#advance(cleaned, length);
      this.#lastCleaned = cleaned;
    }
    // Space freed: send what waited for it, in order.
    while (this.#queue.length > 0 && this.#place(this.#queue[0]!)) this.#queue.shift();
  }

  #finish(pending: Submission, at: number, userFlags: number): void {
    this.#freeBlockList(pending.blocks);
    if (userFlags & USER_FLAG.unknownOperation) {
      pending.resolve({
        id: pending.id,
        status: 2,
        sense: empty,
        dataIn: empty,
        readLength: 0,
        unknownOperation: true,
        aborted: pending.aborted,
      });
      return;
    }
    const bytes = this.#bytes;
    const status = bytes[at + ENTRY.status]!;
    let readLength = pending.dataInLength;
    const reportedLength = this.#words[(at + ENTRY.readLength) >> 2]!;
    const readLengthValid = (userFlags & USER_FLAG.readLength) !== 0 && reportedLength !== 0;
    if (readLengthValid && reportedLength < readLength) readLength = reportedLength;
    const sense = status === 2 ? bytes.slice(at + ENTRY.sense, at + ENTRY.sense + ENTRY.senseSize) : empty;
    if (status === 2 && !readLengthValid) readLength = 0;
    let dataIn: Uint8Array = empty;
    const first = pending.dataIn[0];
    const into = pending.request!.dataInto;
    if (pending.request!.discardDataIn) {
      // nothing to copy
    } else if (readLength > 0 && first !== undefined && first.length >= readLength) {
      if (into) {
        into.set(bytes.subarray(first.base, first.base + readLength));
        dataIn = into.length === readLength ? into : into.subarray(0, readLength);
      } else {
        dataIn = bytes.slice(first.base, first.base + readLength);
      }
    } else if (readLength > 0) {
      dataIn = into ? into.subarray(0, readLength) : new Uint8Array(readLength);
      let offset = 0;
      for (const { base: address, length } of pending.dataIn) {
        if (offset >= readLength) break;
        const n = Math.min(length, readLength - offset);
        dataIn.set(bytes.subarray(address, address + n), offset);
        offset += n;
      }
    }
    pending.resolve({
      id: pending.id,
      status,
      sense,
      dataIn,
      readLength,
      unknownOperation: false,
      aborted: pending.aborted,
    });
  }
}
