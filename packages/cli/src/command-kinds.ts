import { ScsiStatus, SenseKey } from '@tcmu/scsi';

/** How metrics group SCSI commands. */
export const COMMAND_KINDS = ['read', 'write', 'unmap', 'flush', 'other'] as const;
export type CommandKind = (typeof COMMAND_KINDS)[number];

const KIND_BY_OPCODE: CommandKind[] = new Array<CommandKind>(256).fill('other');
// READ(6/10/12/16)
for (const opcode of [0x08, 0x28, 0xa8, 0x88]) KIND_BY_OPCODE[opcode] = 'read';
// WRITE(6/10/12/16), WRITE AND VERIFY(10/16), WRITE SAME(10/16), COMPARE AND WRITE
for (const opcode of [0x0a, 0x2a, 0xaa, 0x8a, 0x2e, 0x8e, 0x41, 0x93, 0x89]) KIND_BY_OPCODE[opcode] = 'write';
KIND_BY_OPCODE[0x42] = 'unmap'; // UNMAP
// SYNCHRONIZE CACHE(10/16)
for (const opcode of [0x35, 0x91]) KIND_BY_OPCODE[opcode] = 'flush';

/** The kind of a command by its opcode (CDB byte 0). */
export function commandKind(opcode: number): CommandKind {
  return KIND_BY_OPCODE[opcode & 0xff]!;
}

const STATUS_NAMES = new Map<number, string>(
  Object.entries(ScsiStatus).map(([name, value]) => [value, snake(name).toUpperCase().replace(/_/g, ' ')]),
);

/** `GOOD`, `CHECK CONDITION`, … or the byte in hex. */
export function statusName(status: number): string {
  return STATUS_NAMES.get(status) ?? `0x${status.toString(16).padStart(2, '0')}`;
}

const SENSE_KEY_NAMES = new Map<number, string>(
  Object.entries(SenseKey).map(([name, value]) => [value, snake(name)]),
);

/** `illegal_request`, `medium_error`, … (a Prometheus label value); unknown keys as `key_N`. */
export function senseKeyName(key: number): string {
  return SENSE_KEY_NAMES.get(key) ?? `key_${key}`;
}

function snake(name: string): string {
  return name.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
}
