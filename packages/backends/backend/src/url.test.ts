import { describe, expect, it } from 'vitest';
import { joinUrlPath, redactUrl, splitUrlPath } from './url';

describe('redactUrl', () => {
  it('hides user-info credentials', () => {
    expect(redactUrl('s3://KEY:SECRET@b/v')).toBe('s3://***@b/v');
    expect(redactUrl('s3://KEY:SECRET@b')).toBe('s3://***@b');
  });

  it('hides the value of every parameter that is not known to be harmless', () => {
    const text =
      's3://b/v?endpoint=http://127.0.0.1:7480&secret_access_key=SECRET&X-Amz-Signature=abc&size=1G';
    const redacted = redactUrl(text);
    expect(redacted).toBe(
      's3://b/v?endpoint=http://127.0.0.1:7480&secret_access_key=***&X-Amz-Signature=***&size=1G',
    );
    expect(redacted).not.toContain('SECRET');
  });

  it('hides credentials inside an endpoint value, encoded or not', () => {
    expect(redactUrl('s3://b/v?endpoint=http://u:SECRET@h:1')).toBe('s3://b/v?endpoint=http://***@h:1');
    expect(redactUrl('s3://b/v?endpoint=http%3A%2F%2Fu%3ASECRET%40h')).not.toContain('SECRET');
  });

  it('never throws and leaves text without credentials alone', () => {
    for (const text of ['s3://b/v', 'file:/x', 'memory:', '%%%', 's3://b/v?=&&x', 's3://b/v?a=%zz']) {
      expect(() => redactUrl(text)).not.toThrow();
    }
    expect(redactUrl('s3://b/v?endpoint=http://127.0.0.1:7480')).toBe(
      's3://b/v?endpoint=http://127.0.0.1:7480',
    );
    expect(redactUrl('s3://b/v#SECRET')).toBe('s3://b/v#***');
  });
});

describe('splitUrlPath', () => {
  it('decodes segments and allows one trailing slash', () => {
    expect(splitUrlPath('a/b%20c/')).toEqual(['a', 'b c']);
    expect(splitUrlPath('vol')).toEqual(['vol']);
  });

  it.each([
    ['../etc', '".." segment'],
    ['a/./b', '"." segment'],
    ['a/%2e%2E/b', '".." segment'],
    ['a//b', 'empty segment'],
    ['/a', 'empty segment'],
    ['a%2Fb', 'encoded "/"'],
    ['a%zz', 'bad %-escape'],
    ['a%0Ab', 'control character'],
    ['', 'empty'],
  ])('refuses %s (%s)', (path, reason) => {
    const result = splitUrlPath(path);
    expect(Array.isArray(result)).toBe(false);
    expect((result as { refused: string }).refused).toContain(reason);
  });

  it('round-trips through joinUrlPath', () => {
    for (const path of ['a/b', 'my vol/x', 'ü/ß', 'a@b:c', 'a+b', 'a%25b']) {
      const segments = splitUrlPath(path) as string[];
      expect(splitUrlPath(joinUrlPath(segments))).toEqual(segments);
    }
  });
});
