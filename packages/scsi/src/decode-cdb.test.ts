import { describe, expect, it } from 'vitest';
import { decodeCdb } from './decode-cdb';

const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, '').match(/../g) ?? [], (b) => Number.parseInt(b, 16));

describe('decodeCdb smoke', () => {
  it('decodes READ(10)', () => {
    const d = decodeCdb(hex('28 00 00 00 08 00 00 00 08 00'));
    expect(d).toMatchObject({ ok: true, name: 'READ(10)', lba: 2048n, transferLength: 8, fua: false });
  });
});
