import { describe, expect, it } from 'vitest';
import { bucketBase, decodeXml, encodeUri, S3ResponseError, signV4 } from './s3-http.ts';

// The example credentials and requests of AWS's "Signature Calculations for the Authorization
// Header" (S3 API reference, SigV4 examples). The signatures are AWS's published ones.
const credentials = {
  accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
};
const emptyHash = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const common = { amzDate: '20130524T000000Z', region: 'us-east-1', credentials };

describe('signV4', () => {
  it('signs GET Object with a Range exactly as AWS does', () => {
    const headers = signV4({
      ...common,
      method: 'GET',
      path: '/test.txt',
      query: '',
      headers: { host: 'examplebucket.s3.amazonaws.com', Range: 'bytes=0-9' },
      payloadHash: emptyHash,
    });
    expect(headers.authorization).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, ' +
        'SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, ' +
        'Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
    );
    expect(headers['x-amz-date']).toBe('20130524T000000Z');
    expect(headers['x-amz-content-sha256']).toBe(emptyHash);
  });

  it('signs a listing (sorted query) exactly as AWS does', () => {
    const headers = signV4({
      ...common,
      method: 'GET',
      path: '/',
      query: 'max-keys=2&prefix=J',
      headers: { host: 'examplebucket.s3.amazonaws.com' },
      payloadHash: emptyHash,
    });
    expect(headers.authorization).toMatch(
      /Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7$/,
    );
  });

  it('adds the session token as a signed header', () => {
    const headers = signV4({
      ...common,
      method: 'GET',
      path: '/k',
      query: '',
      headers: { host: 'h' },
      payloadHash: 'UNSIGNED-PAYLOAD',
      credentials: { ...credentials, sessionToken: 'token' },
    });
    expect(headers['x-amz-security-token']).toBe('token');
    expect(headers.authorization).toContain(
      'SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,',
    );
  });
});

describe('encodeUri and decodeXml', () => {
  it('escapes all but unreserved characters, keeping / in paths only', () => {
    expect(encodeUri("a b+c/d!'()*~é", true)).toBe('a%20b%2Bc/d%21%27%28%29%2A~%C3%A9');
    expect(encodeUri('a/b', false)).toBe('a%2Fb');
  });

  it('decodes entities and character references', () => {
    expect(decodeXml('a&amp;b&lt;c&gt;&quot;&apos;&#233;&#x41;')).toBe('a&b<c>"\'éA');
  });
});

describe('S3ResponseError', () => {
  it('is named by the S3 code and carries the status where classifyError looks', () => {
    const error = new S3ResponseError(503, 'SlowDown', 'Please reduce your request rate.');
    expect(error.name).toBe('SlowDown');
    expect(error.$metadata.httpStatusCode).toBe(503);
    expect(new S3ResponseError(404, undefined, undefined).name).toBe('Http404');
  });
});

describe('bucketBase', () => {
  const where = (endpoint: string | undefined, bucket: string) => {
    const { url, pathPrefix } = bucketBase(endpoint, bucket, 'eu-west-1');
    return `${url.origin}${pathPrefix}/key`;
  };
  it('uses path style on a given endpoint, keeping its base path', () => {
    expect(where('http://127.0.0.1:7480', 'b')).toBe('http://127.0.0.1:7480/b/key');
    expect(where('https://minio.example/s3/', 'b')).toBe('https://minio.example/s3/b/key');
  });
  it('uses virtual-hosted style on AWS for host-safe names, path style for the rest', () => {
    expect(where(undefined, 'my-bucket')).toBe('https://my-bucket.s3.eu-west-1.amazonaws.com/key');
    expect(where(undefined, 'my.bucket')).toBe('https://s3.eu-west-1.amazonaws.com/my.bucket/key');
  });
});
