import { ConfigfsError } from './errors';

// Every string this package writes into a configfs path or attribute passes one of these checks first.
// configfs splits paths on `/`, the control file on `,` and newlines, tcmu-runner splits dev_config on
// `/` and the uio name on `/`; `:` is reserved in dev_config. So names are restricted to a safe set.

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Longest device name accepted (configfs allows more; the uio name and dev_config must stay short). */
export const MAX_DEVICE_NAME_LENGTH = 64;
/** Longest dev_config the kernel stores (TCMU_CONFIG_LEN is 256 with the NUL). */
export const MAX_DEV_CONFIG_LENGTH = 255;
/** Highest HBA number accepted (`core/user_<hba>`). */
export const MAX_HBA = 65_535;
/** Highest LUN accepted on a tcm_loop target. */
export const MAX_LUN = 255;

function invalidName(what: string, value: unknown, why: string): ConfigfsError {
  const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return new ConfigfsError('TCMU_ERR_INVALID_NAME', `invalid ${what} ${shown}: ${why}`);
}

function invalidArgument(what: string, value: unknown, why: string): ConfigfsError {
  return new ConfigfsError('TCMU_ERR_INVALID_ARGUMENT', `invalid ${what} ${String(value)}: ${why}`);
}

function describeBadCharacter(value: string): string {
  if (value.includes('/')) return 'contains "/"';
  if (value.includes('..')) return 'contains ".."';
  if (value.includes(':')) return 'contains ":"';
  if (value.includes(',')) return 'contains ","';
  if (/[\n\r]/.test(value)) return 'contains a newline';
  if (value.includes('\0')) return 'contains a NUL byte';
  if (/\s/.test(value)) return 'contains whitespace';
  return 'only letters, digits, ".", "_" and "-" are allowed, starting with a letter or digit';
}

/** A name used as one configfs/sysfs path component: letters, digits, `.`, `_`, `-`; no `..`. */
export function validateComponent(what: string, value: unknown, maxLength: number): string {
  if (typeof value !== 'string') throw invalidName(what, value, 'must be a string');
  if (value.length === 0) throw invalidName(what, value, 'must not be empty');
  if (value.length > maxLength) throw invalidName(what, value, `longer than ${maxLength} characters`);
  if (!NAME.test(value) || value.includes('..')) throw invalidName(what, value, describeBadCharacter(value));
  return value;
}

/** Device name: `core/user_<hba>/<name>`; at most 64 characters. */
export function validateDeviceName(value: unknown): string {
  return validateComponent('device name', value, MAX_DEVICE_NAME_LENGTH);
}

/** Unit serial number (`wwn/vpd_unit_serial`, also the PR metadata file name): at most 64 characters. */
export function validateSerial(value: unknown): string {
  return validateComponent('unit serial', value, 64);
}

/** Link name for a stable symlink: at most 128 characters. */
export function validateLinkName(value: unknown): string {
  return validateComponent('link name', value, 128);
}

export function validateHba(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_HBA) {
    throw invalidName('HBA number', value, `must be an integer 0..${MAX_HBA}`);
  }
  return value;
}

export function validateLun(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_LUN) {
    throw invalidName('LUN', value, `must be an integer 0..${MAX_LUN}`);
  }
  return value;
}

const WWN = /^naa\.[0-9a-f]{16}$/;

/** A tcm_loop WWN: `naa.` and 16 hex digits (returned in lower case). */
export function validateWwn(value: unknown): string {
  if (typeof value !== 'string') throw invalidName('WWN', value, 'must be a string');
  const lower = value.toLowerCase();
  if (!WWN.test(lower)) throw invalidName('WWN', value, 'must be "naa." followed by 16 hex digits');
  return lower;
}

/** A positive safe integer (sizes, timeouts, counts). */
export function validatePositiveInteger(what: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0 || value > max) {
    throw invalidArgument(what, value, `must be an integer 1..${max}`);
  }
  return value;
}

export function validateBlockSize(value: unknown): number {
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < 512 ||
    value > 65_536 ||
    (value & (value - 1)) !== 0
  ) {
    throw invalidArgument('block size', value, 'must be a power of two from 512 to 65536');
  }
  return value;
}

/** Device size in bytes: a positive whole number of blocks. */
export function validateSize(value: unknown, blockSize: number): number {
  const size = typeof value === 'bigint' ? Number(value) : value;
  if (typeof value === 'bigint' && BigInt(size as number) !== value) {
    throw invalidArgument('size', value, 'too large');
  }
  validatePositiveInteger('size', size);
  if ((size as number) % blockSize !== 0) {
    throw invalidArgument('size', value, `must be a multiple of the block size ${blockSize}`);
  }
  return size as number;
}

/** A timeout in milliseconds. */
export function validateTimeout(what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw invalidArgument(what, value, 'must be a positive number of milliseconds');
  }
  return value;
}

const ATTRIBUTE = /^[a-z][a-z0-9_]{0,63}$/;
const ATTRIBUTE_TEXT = /^[A-Za-z0-9._-]{1,64}$/;

/** Value of an `attrib/<name>` entry: an integer, a boolean (written 1/0) or a short safe string. */
export type AttributeValue = number | boolean | string;

/** Checks an attribute name and value; returns the exact text to write. */
export function validateAttribute(name: unknown, value: unknown): { name: string; text: string } {
  if (typeof name !== 'string' || !ATTRIBUTE.test(name)) {
    throw invalidName(
      'attribute name',
      name,
      'must be lower-case letters, digits and "_", starting with a letter',
    );
  }
  if (typeof value === 'boolean') return { name, text: value ? '1' : '0' };
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw invalidArgument(`attribute ${name}`, value, 'must be an integer');
    return { name, text: String(value) };
  }
  if (typeof value === 'string' && ATTRIBUTE_TEXT.test(value)) return { name, text: value };
  throw invalidName(`attribute ${name} value`, value, describeBadCharacter(String(value)));
}

/** An absolute directory for stable links (no NUL, no newline, no `..` component). */
export function validateLinkDirectory(value: unknown): string {
  if (typeof value !== 'string' || !value.startsWith('/')) {
    throw invalidName('link directory', value, 'must be an absolute path');
  }
  if (/[\0\n\r]/.test(value) || value.split('/').includes('..')) {
    throw invalidName('link directory', value, 'must not contain "..", NUL or newlines');
  }
  return value.replace(/\/+$/, '') || '/';
}
