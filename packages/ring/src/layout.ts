// Byte layout of the TCMU shared memory (include/uapi/linux/target_core_user.h, x86-64).
// Shared by the ring and the simulated kernel so both speak the same ABI.

export const MAILBOX_VERSION = 2;
/** Offset of the command ring from the start of the mapping on every kernel so far. */
export const COMMAND_RING_OFFSET = 128;

export const MAILBOX = {
  version: 0, // u16
  flags: 2, // u16
  commandRingOffset: 4, // u32 cmdr_off
  commandRingSize: 8, // u32 cmdr_size
  commandHead: 12, // u32 cmd_head (kernel, store-release)
  commandTail: 64, // u32 cmd_tail (userspace)
} as const;

/** Mailbox capability flags. */
export const CAPABILITY = {
  outOfOrderCompletion: 1 << 0,
  readLength: 1 << 1,
  taskManagement: 1 << 2,
  keepBuffer: 1 << 3,
} as const;

/** Entry operations (len_op & 7). */
export const OP = { pad: 0, command: 1, taskManagement: 2 } as const;

/** Userspace flags in the entry header (uflags). */
export const USER_FLAG = { unknownOperation: 0x1, readLength: 0x2, keepBuffer: 0x4 } as const;

export const ENTRY = {
  lengthAndOperation: 0, // u32 len_op
  commandId: 4, // u16
  kernelFlags: 6, // u8
  userFlags: 7, // u8
  headerSize: 8,
  // request view (CMD)
  iovecCount: 8, // u32
  bidirectionalIovecCount: 12, // u32
  integrityIovecCount: 16, // u32
  cdbOffset: 24, // u64, from the start of the mapping
  iovecs: 48, // {u64 base (from the start of the mapping), u64 length}[]
  iovecSize: 16,
  // response view (CMD, overlaps the iovecs)
  status: 8, // u8
  readLength: 12, // u32
  sense: 16, // u8[96]
  senseSize: 96,
  responseEnd: 112,
  // task management entry
  taskManagementType: 8, // u8
  taskManagementCount: 12, // u32
  taskManagementIds: 32, // u16[]
} as const;

/** Base size of a command entry with `iovecs` iovecs (the CDB follows at this offset). */
export function commandEntryBaseSize(iovecs: number): number {
  return Math.max(ENTRY.iovecs + ENTRY.iovecSize * iovecs, ENTRY.responseEnd);
}

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/** Task management functions the kernel reports (tmr_type). */
export const TASK_MANAGEMENT_TYPES: Readonly<Record<number, TaskManagementName>> = {
  1: 'abort-task',
  2: 'abort-task-set',
  3: 'clear-aca',
  4: 'clear-task-set',
  5: 'lun-reset',
  6: 'target-warm-reset',
  7: 'target-cold-reset',
  128: 'lun-reset-pro',
};

export type TaskManagementName =
  | 'abort-task'
  | 'abort-task-set'
  | 'clear-aca'
  | 'clear-task-set'
  | 'lun-reset'
  | 'target-warm-reset'
  | 'target-cold-reset'
  | 'lun-reset-pro'
  | 'unknown';
