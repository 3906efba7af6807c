import { CliError } from './errors.js';

const UNITS: Record<string, number> = { '': 1, B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/**
 * Parses a size in bytes: a whole or decimal number with an optional binary suffix, K, M, G or T
 * (powers of 1024; `KiB`, `MiB`, `GiB`, `TiB` and a trailing `B` for plain bytes are accepted too,
 * any letter case). Examples: `4096`, `64M`, `1.5G`, `2TiB`. The result must be a positive whole number
 * of bytes no larger than 2^53 - 1. `KB`/`MB`/… are refused because they are ambiguous (1000 or 1024).
 *
 * @throws CliError `TCMU_ERR_CLI_SIZE` with a one-line message naming the bad text.
 */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!match) {
    throw new CliError(
      'TCMU_ERR_CLI_SIZE',
      `invalid size "${text}": expected a number of bytes with an optional K, M, G or T suffix (e.g. 64M)`,
    );
  }
  const number = match[1]!;
  const suffix = match[2]!.toUpperCase();
  let unit: number | undefined;
  if (suffix.length <= 1) unit = UNITS[suffix];
  else if (/^[KMGT]IB$/.test(suffix)) unit = UNITS[suffix[0]!];
  else if (/^[KMGT]B$/.test(suffix)) {
    throw new CliError(
      'TCMU_ERR_CLI_SIZE',
      `invalid size "${text}": "${match[2]}" is ambiguous; use ${suffix[0]} or ${suffix[0]}iB (powers of 1024)`,
    );
  }
  if (unit === undefined) {
    throw new CliError(
      'TCMU_ERR_CLI_SIZE',
      `invalid size "${text}": unknown unit "${match[2]}" (use K, M, G or T, powers of 1024)`,
    );
  }
  const bytes = scaleExactly(number, unit);
  if (bytes === undefined) {
    throw new CliError('TCMU_ERR_CLI_SIZE', `invalid size "${text}": not a whole number of bytes`);
  }
  if (bytes === 0n) throw new CliError('TCMU_ERR_CLI_SIZE', `invalid size "${text}": must be greater than 0`);
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CliError('TCMU_ERR_CLI_SIZE', `invalid size "${text}": larger than 8 PiB`);
  }
  return Number(bytes);
}

/** `number × unit` computed exactly with bigint; undefined when the product has a fractional part. */
function scaleExactly(number: string, unit: number): bigint | undefined {
  const [whole = '', fraction = ''] = number.split('.');
  const digits = BigInt(`${whole || '0'}${fraction}`);
  const divisor = 10n ** BigInt(fraction.length);
  const product = digits * BigInt(unit);
  return product % divisor === 0n ? product / divisor : undefined;
}

/** Formats bytes for people: the largest binary unit that divides it exactly, e.g. `64 MiB`, `1536 KiB`, `700 B`. */
export function formatSize(bytes: number): string {
  for (const [suffix, unit] of [
    ['TiB', 1024 ** 4],
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytes >= unit && bytes % unit === 0) return `${bytes / unit} ${suffix}`;
  }
  return `${bytes} B`;
}
