import { describe, expect, it } from 'vitest';
import { formatS3Url, normalizePrefix, parseByteSize, parseS3Url } from './url.ts';

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
    expect(parseS3Url('s3://vols//a/b/')).toEqual({ bucket: 'vols', prefix: 'a/b/' });
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
});
