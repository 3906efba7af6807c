import { describe, expect, it } from 'vitest';
import { buildCdb, type CdbFields } from './build-cdb';
import { dataTransferLength } from './data-length';
import { decodeCdb } from './decode-cdb';

function length(fields: CdbFields, blockLength = 512): number | undefined {
  const d = decodeCdb(buildCdb(fields));
  if (!d.ok) throw new Error(`did not decode: ${fields.name}`);
  return dataTransferLength(d, blockLength);
}

describe('dataTransferLength', () => {
  it.each<[CdbFields, number | undefined]>([
    [{ name: 'READ(10)', lba: 0n, transferLength: 8 }, 4096],
    [{ name: 'READ(6)', lba: 0n, transferLength: 256 }, 131072],
    [{ name: 'WRITE(16)', lba: 0n, transferLength: 1 }, 512],
    [{ name: 'COMPARE AND WRITE', lba: 0n, transferLength: 2 }, 2048],
    [{ name: 'WRITE SAME(16)', lba: 0n, transferLength: 100 }, 512],
    [{ name: 'WRITE SAME(16)', lba: 0n, transferLength: 100, ndob: true }, 0],
    [{ name: 'VERIFY(10)', lba: 0n, transferLength: 8 }, 0],
    [{ name: 'VERIFY(10)', lba: 0n, transferLength: 8, bytchk: 1 }, 4096],
    [{ name: 'VERIFY(16)', lba: 0n, transferLength: 8, bytchk: 3 }, 512],
    [{ name: 'UNMAP', parameterListLength: 24 }, 24],
    [{ name: 'MODE SELECT(6)', pf: true, parameterListLength: 24 }, 24],
    [{ name: 'INQUIRY', allocationLength: 36 }, 36],
    [{ name: 'READ CAPACITY(10)' }, 8],
    [{ name: 'READ CAPACITY(16)', allocationLength: 32 }, 32],
    [{ name: 'SYNCHRONIZE CACHE(10)' }, 0],
    [{ name: 'TEST UNIT READY' }, 0],
    [{ name: 'FORMAT UNIT', fmtdata: true }, undefined],
    [{ name: 'FORMAT UNIT' }, 0],
    [{ name: 'RESERVE(6)' }, 0],
  ])('%o → %s bytes', (fields, bytes) => {
    expect(length(fields)).toBe(bytes);
  });
});
