// CDB builders: the inverse of decodeCdb, for initiators, tests and the simulated kernel.
import type { DecodedCommand } from './cdb-types';
import { type FieldSpec, specForName, specsForOpcode } from './command-table';
import { ScsiError, ScsiErrorCode } from './errors';

type Fields<T> = T extends DecodedCommand
  ? { name: T['name']; serviceAction?: number; control?: number } & Partial<
      Omit<T, 'ok' | 'opcode' | 'cdbLength' | 'direction' | 'name' | 'serviceAction' | 'control'>
    >
  : never;

/**
 * What {@link buildCdb} takes: the command's `name` plus any of the fields `decodeCdb` returns for it
 * (missing ones are 0/false). For commands with several service actions under one name (PERSISTENT
 * RESERVE IN/OUT, EXTENDED COPY, RECEIVE COPY RESULTS) pass `serviceAction`.
 */
export type CdbFields = Fields<DecodedCommand>;

function fail(message: string): never {
  throw new ScsiError(ScsiErrorCode.FieldRange, message);
}

function writeField(cdb: Uint8Array, field: FieldSpec, value: unknown): void {
  switch (field.kind) {
    case 'flag':
      if (value) cdb[field.byte]! |= 1 << field.bit;
      return;
    case 'bits': {
      const n = Number(value);
      const max = (1 << field.width) - 1;
      if (!Number.isInteger(n) || n < 0 || n > max)
        fail(`${field.key} must be 0..${max}, got ${String(value)}`);
      cdb[field.byte]! |= n << field.shift;
      return;
    }
    case 'uint': {
      const n = Number(value);
      const max = 2 ** (8 * field.length) - 1;
      if (!Number.isInteger(n) || n < 0 || n > max)
        fail(`${field.key} must be 0..${max}, got ${String(value)}`);
      let v = n;
      for (let i = field.length - 1; i >= 0; i--) {
        cdb[field.byte + i] = v % 256;
        v = Math.floor(v / 256);
      }
      return;
    }
    case 'lba': {
      const n = BigInt(value as bigint);
      if (n < 0n || n >= 1n << BigInt(8 * field.length))
        fail(`lba must fit in ${8 * field.length} bits, got ${n}`);
      let v = n;
      for (let i = field.length - 1; i >= 0; i--) {
        cdb[field.byte + i] = Number(v & 0xffn);
        v >>= 8n;
      }
      return;
    }
    case 'lba21': {
      const n = BigInt(value as bigint);
      if (n < 0n || n > 0x1fffffn) fail(`lba must fit in 21 bits for a 6-byte CDB, got ${n}`);
      const v = Number(n);
      cdb[1]! |= (v >> 16) & 0x1f;
      cdb[2] = (v >> 8) & 0xff;
      cdb[3] = v & 0xff;
      return;
    }
    case 'length256': {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1 || n > 256)
        fail(`transferLength must be 1..256 for a 6-byte CDB, got ${n}`);
      cdb[4] = n === 256 ? 0 : n;
      return;
    }
  }
}

/**
 * Build a CDB from its fields, e.g. `buildCdb({ name: 'READ(10)', lba: 8n, transferLength: 8, fua: true })`.
 * Values are written as given, so a builder can make invalid CDBs too (a nonzero `rdprotect`, a
 * `control` byte with NACA set) for tests. Throws {@link ScsiError} TCMU_ERR_SCSI_FIELD_RANGE when a
 * value does not fit its field, TCMU_ERR_SCSI_UNKNOWN_COMMAND for an unknown name/service action.
 * The result decodes back (with decodeCdb) to the same fields when they are valid.
 */
export function buildCdb(fields: CdbFields): Uint8Array {
  const named = specForName(fields.name);
  if (!named) throw new ScsiError(ScsiErrorCode.UnknownCommand, `unknown command ${String(fields.name)}`);
  let spec = named;
  if (fields.serviceAction !== undefined) {
    const match = specsForOpcode(named.opcode)?.find((s) => s.serviceAction === fields.serviceAction);
    if (!match || match.name !== named.name)
      throw new ScsiError(
        ScsiErrorCode.UnknownCommand,
        `${fields.name} has no service action ${fields.serviceAction}`,
      );
    spec = match;
  }
  const cdb = new Uint8Array(spec.length);
  cdb[0] = spec.opcode;
  const values = fields as Record<string, unknown>;
  for (const field of spec.fields) {
    if (field.key === 'serviceAction') {
      cdb[1]! |= spec.serviceAction ?? 0;
      continue;
    }
    const value = values[field.key];
    if (value === undefined) {
      if (field.kind === 'length256') cdb[4] = 0; // 0 in the CDB = 256 blocks
      continue;
    }
    writeField(cdb, field, value);
  }
  if (fields.control !== undefined) {
    if (!Number.isInteger(fields.control) || fields.control < 0 || fields.control > 255)
      fail(`control must be 0..255, got ${fields.control}`);
    cdb[spec.length - 1] = fields.control;
  }
  return cdb;
}
