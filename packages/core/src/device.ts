import { createHash, randomBytes } from 'node:crypto';
import { type Backend, type BackendCapabilities, backendCapabilities, RangeLock } from '@tcmu/backend';
import {
  capacityChanged,
  deriveNaaIdentifier,
  type NaaIdentifier,
  powerOnReset,
  type SenseInfo,
} from '@tcmu/scsi';
import { CoreError, CoreErrorCode } from './errors';

/** How the device identifies itself (INQUIRY and VPD pages 0x80/0x83). */
export interface DeviceIdentity {
  /** T10 vendor identification, at most 8 ASCII characters (space padded on the wire). */
  readonly vendor: string;
  /** Product identification, at most 16 ASCII characters. */
  readonly product: string;
  /** Product revision level, at most 4 ASCII characters. */
  readonly revision: string;
  /** Unit serial number (VPD 0x80), printable ASCII, unique per device. */
  readonly serial: string;
  /** The logical unit's NAA designator (VPD 0x83), NAA type 6 (IEEE registered extended). */
  readonly naa: NaaIdentifier;
}

/** Transfer limits the device advertises (VPD 0xB0) and enforces. All in logical blocks. */
export interface DeviceLimits {
  /** Largest READ/WRITE/VERIFY transfer; larger ones get 05/24 00. */
  readonly maxTransferBlocks: number;
  /** Largest COMPARE AND WRITE (1..255). */
  readonly maxCompareAndWriteBlocks: number;
  /** Largest range of one UNMAP descriptor (and of all descriptors of one command). */
  readonly maxUnmapBlocks: number;
  /** Most descriptors in one UNMAP parameter list. */
  readonly maxUnmapDescriptors: number;
  /** Largest WRITE SAME. */
  readonly maxWriteSameBlocks: number;
  /** Unmap granularity (1 when the backend does not say). */
  readonly unmapGranularityBlocks: number;
}

/**
 * Which optional backend features the device advertises: the backend's own capabilities
 * (`backendCapabilities`, whose prose says what each turns into), all false for a handler with no
 * backend. `close`, `readOnly` and `persistent` are the backend's business, not what the device advertises.
 */
export type DeviceCapabilities = Pick<
  BackendCapabilities,
  'flush' | 'unmap' | 'writeZeroes' | 'compareAndWrite' | 'getAllocation' | 'resize'
>;

/** Counters of one device. Read them from `device.stats`; the core updates them. */
export interface DeviceStats {
  /** Commands received from the ring. */
  received: number;
  /** Commands completed (any status). */
  completed: number;
  /** Commands currently being handled (not counting those waiting for a queue slot). */
  inFlight: number;
  /** The highest `inFlight` seen. */
  maxInFlight: number;
  /** Commands waiting for a queue slot (more than `queueDepth` in flight). */
  queued: number;
  /** Completed with GOOD. */
  good: number;
  /** Completed with CHECK CONDITION. */
  checkCondition: number;
  /** Completed with TASK ABORTED after a task management function. */
  aborted: number;
  /** Completed with BUSY. */
  busy: number;
  /** Handlers that threw or rejected with something other than a BackendError (bugs). */
  handlerFailures: number;
  /** BackendErrors turned into sense. */
  backendErrors: number;
  /** Task management notifications received. */
  taskManagement: number;
  /** Bytes read from the backend for data-in. */
  bytesRead: number;
  /** Bytes written to the backend from data-out. */
  bytesWritten: number;
}

/** Options of {@link DeviceContext}. */
export interface DeviceContextOptions {
  /** Device name (configfs name); also seeds the serial. */
  readonly name: string;
  /** Logical block size in bytes: 512 or 4096 (any power of two 512..65536 is accepted). */
  readonly blockSize: number;
  /** Capacity in bytes: a whole number of blocks. */
  readonly size: number;
  readonly readOnly?: boolean;
  /**
   * The backend the device is served from: its capabilities (flush, unmap…), `readOnly` and
   * `unmapGranularity` decide what the device advertises. Absent when only a handler is served.
   * The device does not keep it: the building blocks take the backend explicitly.
   */
  readonly backend?: Backend;
  readonly vendor?: string;
  readonly product?: string;
  readonly revision?: string;
  /** Unit serial; default: derived from the name and random bytes (unique per device). */
  readonly serial?: string;
  /** The NAA designator, or its 32 hex digits (`6…`); default: derived from the serial (unique per device). */
  readonly naa?: NaaIdentifier | string;
  /** Initial write cache state (WCE); default true when the backend can flush. */
  readonly writeCache?: boolean;
  readonly limits?: Partial<DeviceLimits>;
  /** Queue a power-on unit attention (06/29 00) for the first command; default true. */
  readonly powerOnUnitAttention?: boolean;
  /**
   * The write cache's content was lost before this device was served: it is taken over from a
   * crashed process whose backend kept acknowledged writes in memory until a flush (see
   * `Backend.writesSurviveCrash`). The first SYNCHRONIZE CACHE then fails (03/0C 00 WRITE ERROR,
   * after flushing what this process holds) so the initiator does not take those writes for durable.
   * Default false.
   */
  readonly writeCacheLost?: boolean;
}

/** A fresh unit serial: 32 hex digits from the device name and random bytes. */
export function generateSerial(name: string): string {
  return createHash('sha256').update(name).update(randomBytes(16)).digest('hex').slice(0, 32);
}

function parseNaa(value: NaaIdentifier | string): NaaIdentifier {
  if (typeof value !== 'string') return value;
  const hex = value.replace(/^naa\./i, '');
  if (!/^6[0-9a-f]{31}$/i.test(hex)) throw invalid('naa must be 32 hex digits starting with 6 (NAA type 6)');
  const head = BigInt(`0x${hex.slice(0, 16)}`);
  return {
    naa: 6,
    companyId: Number((head >> 36n) & 0xffffffn),
    vendorSpecificIdentifier: head & 0xf_ffff_ffffn,
    vendorSpecificIdentifierExtension: BigInt(`0x${hex.slice(16)}`),
  };
}

const invalid = (message: string) => new CoreError(CoreErrorCode.InvalidOption, message);

const sameSense = (a: SenseInfo, b: SenseInfo) => a.key === b.key && a.asc === b.asc && a.ascq === b.ascq;

/**
 * Unit attention conditions pending for one I_T nexus. tcm_loop gives each device one nexus, so the
 * device keeps one queue; conditions are reported oldest first, one per command, and a condition
 * already pending is not queued twice.
 */
export class UnitAttentionQueue {
  #pending: SenseInfo[] = [];

  /** Queues a condition (sense key 6), unless the same one is already pending. */
  establish(sense: SenseInfo): void {
    if (!this.#pending.some((p) => sameSense(p, sense))) this.#pending.push(sense);
  }

  /** The oldest pending condition, removed from the queue. */
  take(): SenseInfo | undefined {
    return this.#pending.shift();
  }

  /** The oldest pending condition, left in the queue. */
  peek(): SenseInfo | undefined {
    return this.#pending[0];
  }

  get size(): number {
    return this.#pending.length;
  }

  clear(): void {
    this.#pending = [];
  }
}

/**
 * The state of one served device that every command sees (`command.device`): identity, capacity,
 * mode parameters, the range locks that make COMPARE AND WRITE atomic, unit attentions, format
 * progress and counters. Mutated only by the core's emulation on the event loop thread.
 */
export class DeviceContext {
  readonly name: string;
  readonly blockSize: number;
  readonly readOnly: boolean;
  readonly identity: DeviceIdentity;
  readonly limits: DeviceLimits;
  readonly capabilities: DeviceCapabilities;
  readonly locks = new RangeLock();
  readonly unitAttentions = new UnitAttentionQueue();
  readonly stats: DeviceStats = {
    received: 0,
    completed: 0,
    inFlight: 0,
    maxInFlight: 0,
    queued: 0,
    good: 0,
    checkCondition: 0,
    aborted: 0,
    busy: 0,
    handlerFailures: 0,
    backendErrors: 0,
    taskManagement: 0,
    bytesRead: 0,
    bytesWritten: 0,
  };
  /** Mode page 0x08 WCE: writes complete before they are durable; FUA and SYNCHRONIZE CACHE flush. */
  writeCacheEnabled: boolean;
  /** Mode page 0x0A D_SENSE: sense in descriptor format. */
  descriptorSense = false;
  /** START STOP UNIT with START=0 stopped the unit: media access gets 02/04 02 until started. */
  stopped = false;
  /**
   * Set while FORMAT UNIT runs: `progress` is the fraction done (0..1), reported in the sense
   * key-specific bytes of 02/04 04 (as a fraction of 65536).
   */
  format: { progress: number } | undefined;
  #blockCount: bigint;
  #writeCacheLost: boolean;

  constructor(options: DeviceContextOptions) {
    const { name, blockSize, size } = options;
    if (typeof name !== 'string' || name.length === 0) throw invalid('name is required');
    if (
      !Number.isInteger(blockSize) ||
      blockSize < 512 ||
      blockSize > 65536 ||
      (blockSize & (blockSize - 1)) !== 0
    )
      throw invalid(`blockSize must be a power of two from 512 to 65536, got ${blockSize}`);
    if (!Number.isSafeInteger(size) || size < blockSize || size % blockSize !== 0)
      throw invalid(`size must be a positive multiple of the block size (${blockSize}), got ${size}`);
    this.name = name;
    this.blockSize = blockSize;
    this.#blockCount = BigInt(size / blockSize);
    const backend = options.backend;
    this.readOnly = options.readOnly === true || backend?.readOnly === true;
    const derived = backend ? backendCapabilities(backend) : undefined;
    this.capabilities = {
      flush: derived?.flush ?? false,
      unmap: derived?.unmap ?? false,
      writeZeroes: derived?.writeZeroes ?? false,
      compareAndWrite: derived?.compareAndWrite ?? false,
      getAllocation: derived?.getAllocation ?? false,
      resize: derived?.resize ?? false,
    };
    this.writeCacheEnabled = this.capabilities.flush && options.writeCache !== false;
    const serial = options.serial ?? generateSerial(name);
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(serial))
      throw invalid('serial must be 1-64 characters from A-Z a-z 0-9 . _ -');
    const ascii = (value: string, max: number, what: string) => {
      if (!/^[\x20-\x7e]*$/.test(value) || value.length > max)
        throw invalid(`${what} must be at most ${max} printable ASCII characters`);
      return value;
    };
    this.identity = {
      vendor: ascii(options.vendor ?? 'TCMU-TS', 8, 'vendor'),
      product: ascii(options.product ?? 'tcmu disk', 16, 'product'),
      revision: ascii(options.revision ?? '0001', 4, 'revision'),
      serial,
      naa: options.naa === undefined ? deriveNaaIdentifier(serial) : parseNaa(options.naa),
    };
    const granularity = backend?.unmapGranularity
      ? Math.max(1, Math.floor(backend.unmapGranularity / blockSize))
      : 1;
    const limits: DeviceLimits = {
      maxTransferBlocks: Math.max(1, Math.floor((8 * 1024 * 1024) / blockSize)),
      maxCompareAndWriteBlocks: 1,
      // At most 2^20 blocks per UNMAP and 65535 per WRITE SAME (LIO's own limits): the values
      // initiators' conformance suites accept (docs/conformance.md).
      maxUnmapBlocks: Math.max(1, Math.min(1 << 20, Math.floor((1024 * 1024 * 1024) / blockSize))),
      maxUnmapDescriptors: 256,
      maxWriteSameBlocks: Math.max(1, Math.min(0xffff, Math.floor((1024 * 1024 * 1024) / blockSize))),
      unmapGranularityBlocks: granularity,
      ...options.limits,
    };
    if (limits.maxCompareAndWriteBlocks < 1 || limits.maxCompareAndWriteBlocks > 255)
      throw invalid('limits.maxCompareAndWriteBlocks must be 1..255');
    this.limits = limits;
    if (options.powerOnUnitAttention !== false) this.unitAttentions.establish(powerOnReset());
    this.#writeCacheLost = options.writeCacheLost === true;
  }

  /**
   * True once, for the first SYNCHRONIZE CACHE after the device was served with `writeCacheLost`:
   * that flush must be reported failed (the lost writes were never stored). False ever after.
   */
  takeWriteCacheLoss(): boolean {
    const lost = this.#writeCacheLost;
    this.#writeCacheLost = false;
    return lost;
  }

  /** Current capacity in logical blocks. */
  get blockCount(): bigint {
    return this.#blockCount;
  }

  /** Current capacity in bytes. */
  get size(): number {
    return Number(this.#blockCount) * this.blockSize;
  }

  /**
   * Changes the capacity the emulation reports (after the backend was resized) and queues the
   * CAPACITY DATA HAS CHANGED unit attention (06/2A 09).
   */
  setSize(bytes: number): void {
    if (!Number.isSafeInteger(bytes) || bytes < this.blockSize || bytes % this.blockSize !== 0)
      throw new CoreError(
        CoreErrorCode.Resize,
        `size must be a positive multiple of ${this.blockSize} bytes`,
      );
    const blocks = BigInt(bytes / this.blockSize);
    if (blocks === this.#blockCount) return;
    this.#blockCount = blocks;
    this.unitAttentions.establish(capacityChanged());
  }
}
