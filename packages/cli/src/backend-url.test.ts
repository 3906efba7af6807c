import { describe, expect, it } from 'vitest';
import { formatBackendLocation, parseBackendLocation } from './backend-url.js';
import { expectCliError } from './test-support.js';

describe('parseBackendLocation', () => {
  it.each(['memory:', 'memory', 'memory://', 'MEMORY:'])('reads %j as a memory backend', (text) => {
    expect(parseBackendLocation(text)).toEqual({ kind: 'memory' });
  });

  it.each([
    ['file:/var/lib/disk.img', '/var/lib/disk.img'],
    ['file:///var/lib/disk.img', '/var/lib/disk.img'],
    ['file://localhost/var/lib/disk.img', '/var/lib/disk.img'],
    ['file:/tmp/../tmp/a b?c#d.img', '/tmp/a b?c#d.img'],
    ['file:disk.img', '/home/me/disk.img'],
    ['file:./images/disk.img', '/home/me/images/disk.img'],
    ['file:/tmp/a%20b', '/tmp/a%20b'],
  ])('reads %j as the file %j', (text, path) => {
    expect(parseBackendLocation(text, '/home/me')).toEqual({ kind: 'file', path });
  });

  it('reads an s3 URL with prefix and parameters', () => {
    expect(
      parseBackendLocation('s3://tcmu-test/disks/one%20two?endpoint=http://127.0.0.1:7480&region=us-east-1'),
    ).toEqual({
      kind: 's3',
      bucket: 'tcmu-test',
      prefix: 'disks/one two',
      parameters: { endpoint: 'http://127.0.0.1:7480', region: 'us-east-1' },
      url: 's3://tcmu-test/disks/one%20two?endpoint=http://127.0.0.1:7480&region=us-east-1',
    });
  });

  it.each([
    ['', /invalid backend "": expected memory:/],
    ['/tmp/disk.img', /did you mean file:\/tmp\/disk.img\?/],
    ['nbd://host/export', /unknown backend scheme "nbd:"/],
    ['memory:64M', /memory: takes no path/],
    ['file:', /file: needs a path/],
    ['file://', /file: needs a path/],
    ['file://server/share/disk.img', /host "server" is not supported/],
    ['file:/tmp/', /names a folder/],
    ['s3://', /needs a bucket/],
    ['s3://my.bucket', /needs its own prefix \(s3:\/\/my.bucket\/my-volume\)/],
    ['s3://bucket//', /needs its own prefix/],
    ['s3://Bad_Bucket/x', /not a valid bucket name/],
    ['s3://ab/x', /not a valid bucket name/],
    ['s3://192.168.1.1/x', /not a valid bucket name/],
    ['s3://key:secret@bucket/x', /credentials in AWS_ACCESS_KEY_ID/],
    ['s3://bucket/x?endpoint=ftp://h', /not an http:\/\/ or https:\/\/ URL/],
    ['s3://bucket/x?endpoint=nonsense', /not an http:\/\/ or https:\/\/ URL/],
    ['s3://bucket/x?region=a&region=b', /"region" appears twice/],
    ['s3://bucket/x#frag', /no #fragment/],
    ['s3://bucket/%E0%A4%A', /bad %-escape/],
    ['s3://bucket/../etc', /"\.\." segment/],
    ['s3://bucket/a/./b', /"\." segment/],
    ['s3://bucket/..@snap', /"\.\." segment before its @snapshot/],
    ['s3://bucket/a/.@snap', /"\." segment before its @snapshot/],
    ['s3://bucket/a//b', /empty segment/],
    ['s3://bucket/a%2Fb', /encoded "\/"/],
  ])('rejects %j with TCMU_ERR_CLI_BACKEND_URL', (text, message) => {
    expectCliError(() => parseBackendLocation(text), 'TCMU_ERR_CLI_BACKEND_URL', message);
  });
});

describe('secrets in refused URLs', () => {
  it.each([
    's3://KEY:hunter2pw@bucket/x',
    's3://bucket/../x?secret_access_key=hunter2pw',
    's3://bucket/x?endpoint=ftp://u:hunter2pw@h',
    's3://KEY:hunter2pw@bucket',
    'nbd://KEY:hunter2pw@host/x',
  ])('%s: the message does not contain the secret', (text) => {
    let message = '';
    try {
      parseBackendLocation(text);
    } catch (error) {
      message = `${(error as Error).message} ${(error as { hint?: string }).hint ?? ''}`;
    }
    expect(message).toMatch(/invalid backend|unknown backend/);
    expect(message).not.toContain('hunter2pw');
  });
});

describe('formatBackendLocation', () => {
  it('prints the canonical form', () => {
    expect(formatBackendLocation({ kind: 'memory' })).toBe('memory:');
    expect(formatBackendLocation({ kind: 'file', path: '/a/b.img' })).toBe('file:/a/b.img');
    expect(
      formatBackendLocation({
        kind: 's3',
        bucket: 'b',
        prefix: 'p/q',
        parameters: { endpoint: 'x' },
        url: 's3://b/p/q?endpoint=x',
      }),
    ).toBe('s3://b/p/q');
  });
});
