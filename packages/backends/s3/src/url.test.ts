import { describe, expect, it } from 'vitest';
import { formatS3Url, normalizeLocation, normalizePrefix, parseByteSize, parseS3Url } from './url.ts';

const codeOf = (f: () => unknown) => {
  try {
    f();
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
};

describe('parseS3Url', () => {
  it('parses bucket, prefix, endpoint, region, chunk and size', () => {
    expect(
      parseS3Url('s3://vols/disks/a?endpoint=http://127.0.0.1:7480&chunk=4M&size=10G&region=eu-west-1'),
    ).toEqual({
      bucket: 'vols',
      prefix: 'disks/a/',
      endpoint: 'http://127.0.0.1:7480',
      region: 'eu-west-1',
      chunkSize: 4 * 1024 * 1024,
      size: 10 * 1024 ** 3,
    });
    expect(parseS3Url('s3://vols/a/b/')).toEqual({ bucket: 'vols', prefix: 'a/b/' });
    expect(parseS3Url('s3://vols/my%20vol')).toEqual({ bucket: 'vols', prefix: 'my vol/' });
    expect(parseS3Url('s3://vols/v?lease=45s')).toEqual({
      bucket: 'vols',
      prefix: 'v/',
      leaseDuration: 45_000,
    });
    expect(() => parseS3Url('s3://vols/v?lease=0')).toThrow(/lease "0"/);
  });

  it('refuses URLs that are not s3 volumes, with a message saying why', () => {
    for (const bad of [
      'http://x/y',
      's3://',
      's3://vols',
      's3://vols/',
      's3://Bad_Bucket/x',
      's3://vols/x?color=red',
    ]) {
      expect(
        codeOf(() => parseS3Url(bad)),
        bad,
      ).toBe('TCMU_ERR_BACKEND_INVALID_ARGUMENT');
    }
    expect(() => parseS3Url('s3://vols/x?color=red')).toThrow(/unknown parameter "color"/);
    expect(() => parseS3Url('s3://vols/x?endpoint=ftp://h')).toThrow(/http/);
    expect(() => parseS3Url('s3://vols/x?chunk=lots')).toThrow(/chunk "lots"/);
  });

  it('refuses credentials anywhere in the URL', () => {
    expect(() => parseS3Url('s3://key:secret@vols/x')).toThrow(/credentials/);
    expect(() => parseS3Url('s3://vols/x?endpoint=http://key:secret@127.0.0.1:7480')).toThrow(/credentials/);
  });

  it('refuses prefixes that would not round-trip (., .., empty segments, encoded slashes)', () => {
    for (const bad of [
      's3://b1b/../etc',
      's3://b1b/a/./b',
      's3://b1b/a/%2e%2e/b',
      's3://b1b//a',
      's3://b1b/a//b',
      's3://b1b/a%2Fb',
      's3://b1b/a%zz',
      's3://b1b/a%00b',
    ]) {
      expect(
        codeOf(() => parseS3Url(bad)),
        bad,
      ).toBe('TCMU_ERR_BACKEND_INVALID_ARGUMENT');
    }
    expect(() => parseS3Url('s3://b1b/../etc')).toThrow(/"\.\." segment/);
    expect(() => parseS3Url('s3://vols/x?size=1G&size=2G')).toThrow(/appears twice/);
  });

  it("accepts format 2's options and vol@SNAP, still refusing . and .. and redacting", () => {
    expect(
      parseS3Url(
        's3://vols/a/vol@nightly?compress=deflate&key_file=/k&key_env=K&stats_file=/s&cache_file=/c',
      ),
    ).toEqual({
      bucket: 'vols',
      prefix: 'a/vol@nightly/',
      compression: 'deflate',
      keyFile: '/k',
      keyEnv: 'K',
      statsFile: '/s',
      cacheFile: '/c',
    });
    for (const bad of [
      's3://vols/..@s1',
      's3://vols/a/.@s1',
      's3://vols/../v@s1',
      's3://vols/v@bad%20name',
    ]) {
      expect(
        codeOf(() => parseS3Url(bad)),
        bad,
      ).toBe('TCMU_ERR_BACKEND_INVALID_ARGUMENT');
    }
    expect(() => parseS3Url('s3://vols/..@s1?key_file=/hunter2pw')).toThrow(/"\.\." segment/);
    expect(() => parseS3Url('s3://vols/v?compress=zstd&secret_access_key=hunter2pw')).toThrow(
      /compress=zstd is not supported/,
    );
    let message = '';
    try {
      parseS3Url('s3://vols/v@x?stats_file=/s&bogus=hunter2pw');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/unknown parameter "bogus".*known: .*lease, compress, key_file/);
    expect(message).not.toContain('hunter2pw');
  });

  it('never echoes a secret in its messages', () => {
    for (const bad of [
      's3://KEY:hunter2pw@vols/x',
      's3://vols/x?secret_access_key=hunter2pw',
      's3://vols/x?endpoint=http://u:hunter2pw@h',
      's3://vols/../x?secret_access_key=hunter2pw',
      's3://vols/x?endpoint=ftp://u:hunter2pw@h',
      's3://KEY:hunter2pw@vols',
    ]) {
      let message = '';
      try {
        parseS3Url(bad);
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message, bad).not.toBe('');
      expect(message, bad).not.toContain('hunter2pw');
    }
  });

  it('round-trips: formatting a parsed URL and parsing it again gives the same location', () => {
    for (const text of ['s3://vols/a?endpoint=http://h:1', 's3://vols/my%20vol/x/', 's3://vols/a@b/c+d']) {
      const parsed = parseS3Url(text);
      expect(parseS3Url(formatS3Url(parsed))).toEqual(parsed);
    }
  });

  it('formats a location back', () => {
    expect(formatS3Url(parseS3Url('s3://vols/a?endpoint=http://h:1'))).toBe(
      's3://vols/a/?endpoint=http://h:1',
    );
  });
});

describe('parseByteSize', () => {
  it('reads plain numbers and binary units', () => {
    expect(parseByteSize('4096')).toBe(4096);
    expect(parseByteSize('64K')).toBe(65536);
    expect(parseByteSize('1MiB')).toBe(1048576);
    expect(parseByteSize('10g')).toBe(10 * 1024 ** 3);
    expect(parseByteSize('2T')).toBe(2 * 1024 ** 4);
  });
  it('refuses the rest', () => {
    for (const bad of ['', '-1', '1.5G', '10X', 'M', '99999999999999999999']) {
      expect(
        codeOf(() => parseByteSize(bad)),
        bad,
      ).toBe('TCMU_ERR_BACKEND_INVALID_ARGUMENT');
    }
  });
});

describe('normalizePrefix', () => {
  it('strips leading and doubled slashes and ends with one', () => {
    expect(normalizePrefix('/a//b')).toBe('a/b/');
    expect(normalizePrefix('a/')).toBe('a/');
    expect(normalizePrefix('')).toBe('');
  });
  it('refuses . and .. segments given through the API', () => {
    expect(codeOf(() => normalizeLocation({ bucket: 'vols', prefix: '../etc' }))).toBe(
      'TCMU_ERR_BACKEND_INVALID_ARGUMENT',
    );
    expect(normalizeLocation({ bucket: 'vols', prefix: 'a/b' }).prefix).toBe('a/b/');
  });
});
