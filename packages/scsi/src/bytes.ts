// Byte helpers shared by the encoders (internal).
import { ScsiError, ScsiErrorCode } from './errors';

/** Truncate `data` to the ALLOCATION LENGTH, never changing any length field inside it. */
export function fit(data: Uint8Array, allocationLength: number | undefined): Uint8Array {
  if (allocationLength === undefined || allocationLength >= data.length) return data;
  return data.slice(0, Math.max(0, allocationLength));
}

export function checkRange(name: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 0 || value > max)
    throw new ScsiError(ScsiErrorCode.FieldRange, `${name} must be an integer 0..${max}, got ${value}`);
  return value;
}

export function writeUint(target: Uint8Array, offset: number, length: number, value: number, name = 'value') {
  checkRange(name, value, 2 ** (8 * length) - 1);
  let v = value;
  for (let i = length - 1; i >= 0; i--) {
    target[offset + i] = v % 256;
    v = Math.floor(v / 256);
  }
}

export function writeBig(target: Uint8Array, offset: number, length: number, value: bigint, name = 'value') {
  if (value < 0n || value >= 1n << BigInt(8 * length))
    throw new ScsiError(ScsiErrorCode.FieldRange, `${name} must fit in ${8 * length * 1} bits, got ${value}`);
  let v = value;
  for (let i = length - 1; i >= 0; i--) {
    target[offset + i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

export function readUint(source: Uint8Array, offset: number, length: number): number {
  let v = 0;
  for (let i = 0; i < length; i++) v = v * 256 + (source[offset + i] ?? 0);
  return v;
}

export function readBig(source: Uint8Array, offset: number, length: number): bigint {
  let v = 0n;
  for (let i = 0; i < length; i++) v = (v << 8n) | BigInt(source[offset + i] ?? 0);
  return v;
}

/** Printable ASCII (20h..7Eh) or throw: SCSI ASCII fields allow nothing else. */
export function asciiBytes(name: string, text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e)
      throw new ScsiError(
        ScsiErrorCode.FieldRange,
        `${name} must be printable ASCII, got ${JSON.stringify(text)}`,
      );
    out[i] = c;
  }
  return out;
}

/** Write `text` left-aligned in a space-padded field of `length` bytes (longer text is an error). */
export function writeAsciiPadded(
  target: Uint8Array,
  offset: number,
  length: number,
  name: string,
  text: string,
) {
  const bytes = asciiBytes(name, text);
  if (bytes.length > length)
    throw new ScsiError(
      ScsiErrorCode.FieldRange,
      `${name} is at most ${length} characters, got ${bytes.length}`,
    );
  target.fill(0x20, offset, offset + length);
  target.set(bytes, offset);
}
