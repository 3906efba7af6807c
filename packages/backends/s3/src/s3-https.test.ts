// The https path of the package's S3 client (node:https; `http:` endpoints use http-connection.ts):
// a local TLS server with the test certificate (__fixtures__/tls), and a client process that
// trusts it through NODE_EXTRA_CA_CERTS. No S3 server needed: the server answers as S3 does.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const fixture = (name: string) => fileURLToPath(new URL(`./__fixtures__/tls/${name}`, import.meta.url));

let server: Server;
let endpoint: string;
const seen: { method: string; url: string; signed: boolean }[] = [];

beforeAll(async () => {
  const stored = new Map<string, Buffer>();
  server = createServer({ key: readFileSync(fixture('key.pem')), cert: readFileSync(fixture('cert.pem')) });
  server.on('request', (request, response) => {
    const pieces: Buffer[] = [];
    request.on('data', (piece: Buffer) => pieces.push(piece));
    request.on('end', () => {
      const url = request.url ?? '';
      seen.push({
        method: request.method ?? '',
        url,
        signed: /^AWS4-HMAC-SHA256 Credential=AKIDTEST\//.test(request.headers.authorization ?? ''),
      });
      const key = url.replace(/^\/b\//, '');
      if (request.method === 'PUT') {
        stored.set(key, Buffer.concat(pieces));
        response.writeHead(200, { etag: '"1"', 'content-length': 0 }).end();
      } else if (key === 'chunked') {
        // No Content-Length: node sends the body chunked.
        response.writeHead(200);
        response.write('in ');
        response.end('pieces');
      } else if (key === 'short') {
        // Announces 100 bytes, sends 10 and cuts the connection.
        response.writeHead(200, { 'content-length': 100 });
        response.write('0123456789', () => response.socket?.destroy());
      } else if (stored.has(key)) {
        const body = stored.get(key)!;
        response.writeHead(200, { 'content-length': body.byteLength, etag: '"1"' });
        response.end(request.method === 'HEAD' ? undefined : body);
      } else {
        const xml =
          '<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>';
        response.writeHead(404, {
          'content-type': 'application/xml',
          'content-length': Buffer.byteLength(xml),
        });
        response.end(request.method === 'HEAD' ? undefined : xml);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('S3 requests over https', () => {
  it('signs and sends PUT, GET, HEAD; reads sized and chunked bodies; a cut body and an S3 error fail with their codes', async () => {
    const { stdout } = await run(
      process.execPath,
      [
        '--no-warnings',
        '--import',
        fileURLToPath(new URL('./test-support/register.mjs', import.meta.url)),
        fileURLToPath(new URL('./test-support/https-child.ts', import.meta.url)),
        endpoint,
      ],
      { env: { ...process.env, NODE_EXTRA_CA_CERTS: fixture('cert.pem') }, timeout: 30_000 },
    );
    const outcomes = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(outcomes).toEqual([
      { request: 'PUT sized', status: 200, body: '' },
      { request: 'GET sized', status: 200, body: 'hello over tls' },
      { request: 'HEAD sized', status: 200, body: '' },
      { request: 'GET chunked', status: 200, body: 'in pieces' },
      expect.objectContaining({ request: 'GET short', failed: 'ECONNRESET' }),
      expect.objectContaining({ request: 'GET missing', failed: 'NoSuchKey', status: 404 }),
    ]);
    expect(outcomes[4]!.message).toMatch(/short body: 10 of 100 bytes|aborted/);
    expect(seen.map((r) => `${r.method} ${r.url}`)).toEqual([
      'PUT /b/sized',
      'GET /b/sized',
      'HEAD /b/sized',
      'GET /b/chunked',
      'GET /b/short',
      'GET /b/missing',
    ]);
    expect(seen.every((r) => r.signed)).toBe(true);
  });
});
