import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatSize, parseSize } from './size.js';
import { expectCliError } from './test-support.js';

describe('parseSize', () => {
  it.each([
    ['4096', 4096],
    ['512B', 512],
    ['1K', 1024],
    ['1k', 1024],
    ['64M', 64 * 1024 ** 2],
    ['64MiB', 64 * 1024 ** 2],
    ['64mib', 64 * 1024 ** 2],
    ['2G', 2 * 1024 ** 3],
    ['1.5G', 1.5 * 1024 ** 3],
    ['0.5K', 512],
    ['.5M', 512 * 1024],
    ['3T', 3 * 1024 ** 4],
    [' 16M ', 16 * 1024 ** 2],
    ['16 M', 16 * 1024 ** 2],
  ])('parses %j as %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each([
    ['', /invalid size ""/],
    ['abc', /expected a number of bytes/],
    ['-1M', /expected a number of bytes/],
    ['1e6', /expected a number of bytes/],
    ['0', /greater than 0/],
    ['0M', /greater than 0/],
    ['12X', /unknown unit "X"/],
    ['1MB', /ambiguous; use M or MiB/],
    ['1gb', /ambiguous; use G or GiB/],
    ['1.3', /not a whole number of bytes/],
    ['0.1K', /not a whole number of bytes/],
    ['9000T', /larger than 8 PiB/],
    ['1 M B', /expected a number/],
  ])('rejects %j with a one-line TCMU_ERR_CLI_SIZE error', (text, message) => {
    expectCliError(() => parseSize(text), 'TCMU_ERR_CLI_SIZE', message);
  });

  it('round-trips every size formatSize prints', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 40 }),
        fc.constantFrom(1, 512, 1024, 1024 ** 2),
        (n, unit) => {
          const bytes = n * unit;
          if (bytes > Number.MAX_SAFE_INTEGER) return;
          expect(parseSize(formatSize(bytes).replace(' ', ''))).toBe(bytes);
        },
      ),
    );
  });
});

describe('formatSize', () => {
  it.each([
    [700, '700 B'],
    [1024, '1 KiB'],
    [1536 * 1024, '1536 KiB'],
    [64 * 1024 ** 2, '64 MiB'],
    [1024 ** 4, '1 TiB'],
  ])('formats %d as %j', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });
});
