import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type Exchange, SocketPool } from './http-connection.ts';

const servers: { close(): void }[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

/** A node:http server on a free port; counts the connections it accepted. */
async function serve(handler: (request: IncomingMessage, response: ServerResponse, body: Buffer) => void) {
  const stats = { connections: 0 };
  const server: Server = createServer((request, response) => {
    const pieces: Buffer[] = [];
    request.on('data', (piece: Buffer) => pieces.push(piece));
    request.on('end', () => handler(request, response, Buffer.concat(pieces)));
  });
  server.on('connection', (socket) => {
    stats.connections++;
    servers.push({ close: () => socket.destroy() });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push({ close: () => server.close() });
  const port = (server.address() as AddressInfo).port;
  return { port, stats, server };
}

const get = (path: string, extra: Partial<Exchange> = {}): Exchange => ({
  method: 'GET',
  path,
  headers: { host: 'test' },
  signal: AbortSignal.timeout(10_000),
  ...extra,
});

const codeOf = (promise: Promise<unknown>) =>
  promise.then(
    () => 'resolved',
    (error: { code?: string; name?: string }) => error.code ?? error.name,
  );

describe('SocketPool', () => {
  it('reads a Content-Length body whole, in place, and keeps the connection for the next requests', async () => {
    const big = randomBytes(1024 * 1024 + 7);
    const { port, stats } = await serve((_, response) => {
      response.setHeader('ETag', '"x"');
      response.setHeader('X-Amz-Meta-Tcmu-Md5', 'abc');
      response.end(big);
    });
    const pool = new SocketPool({ host: '127.0.0.1', port, maxSockets: 4 });
    for (let i = 0; i < 3; i++) {
      const answer = await pool.exchange(get(`/k${i}`));
      expect(answer.status).toBe(200);
      expect(answer.body.equals(big)).toBe(true);
      expect(answer.headers).toMatchObject({ etag: '"x"', 'x-amz-meta-tcmu-md5': 'abc' });
    }
    expect(stats.connections).toBe(1);
    pool.close();
  });

  it('sends a PUT body exactly; decodes a chunked answer; reads no body after HEAD', async () => {
    const sent = randomBytes(300_000);
    const { port, stats } = await serve((request, response, body) => {
      if (request.method === 'PUT') {
        response.end(body.equals(sent) ? 'same' : 'different');
      } else if (request.method === 'HEAD') {
        response.setHeader('Content-Length', '12345');
        response.end();
      } else {
        response.write('<a>');
        response.write(Buffer.alloc(70_000, 0x61));
        response.end('</a>');
      }
    });
    const pool = new SocketPool({ host: '127.0.0.1', port, maxSockets: 1 });
    const put = await pool.exchange({
      ...get('/p'),
      method: 'PUT',
      headers: { host: 't', 'content-length': String(sent.length) },
      body: sent,
    });
    expect(put.body.toString()).toBe('same');
    const head = await pool.exchange({ ...get('/h'), method: 'HEAD' });
    expect(head.headers['content-length']).toBe('12345');
    expect(head.body.length).toBe(0);
    const chunked = await pool.exchange(get('/c'));
    expect(chunked.headers['transfer-encoding']).toBe('chunked');
    expect(chunked.body.toString()).toBe(`<a>${'a'.repeat(70_000)}</a>`);
    expect(stats.connections).toBe(1);
    pool.close();
  });

  it('opens at most maxSockets connections; requests beyond wait their turn', async () => {
    let inFlight = 0;
    let most = 0;
    const { port, stats } = await serve((_, response) => {
      most = Math.max(most, ++inFlight);
      setTimeout(() => {
        inFlight--;
        response.end('ok');
      }, 20);
    });
    const pool = new SocketPool({ host: '127.0.0.1', port, maxSockets: 2 });
    const answers = await Promise.all(Array.from({ length: 7 }, (_, i) => pool.exchange(get(`/${i}`))));
    expect(answers.map((a) => a.body.toString())).toEqual(Array(7).fill('ok'));
    expect(most).toBe(2);
    expect(stats.connections).toBe(2);
    pool.close();
  });

  it('after "Connection: close" or a server closing an idle connection, the next request opens a new one', async () => {
    const { port, stats } = await serve((request, response) => {
      if (request.url === '/close') response.setHeader('Connection', 'close');
      response.end('ok');
      // As a server whose keep-alive timeout ran out: the idle connection is closed.
      if (request.url === '/a') setTimeout(() => request.socket.destroy(), 30);
    });
    const pool = new SocketPool({ host: '127.0.0.1', port, maxSockets: 1 });
    expect((await pool.exchange(get('/close'))).body.toString()).toBe('ok');
    expect((await pool.exchange(get('/a'))).body.toString()).toBe('ok');
    await new Promise((resolve) => setTimeout(resolve, 200)); // the server closes the idle connection
    expect((await pool.exchange(get('/b'))).body.toString()).toBe('ok');
    expect(stats.connections).toBe(3);
    pool.close();
  });

  it('an idle connection does not keep the process alive; one in use does', async () => {
    const { port, server } = await serve((_, response) => setTimeout(() => response.end('ok'), 50));
    // Only the pool's socket may hold the event loop: the server and its sockets do not.
    server.unref();
    server.on('connection', (socket) => socket.unref());
    const holding = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
    const pool = new SocketPool({ host: '127.0.0.1', port, maxSockets: 1, idleMs: 60_000 });
    const pending = pool.exchange(get('/'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(holding()).toBe(1);
    expect((await pending).body.toString()).toBe('ok');
    expect(holding()).toBe(0);
    expect((await pool.exchange(get('/'))).body.toString()).toBe('ok');
    expect(holding()).toBe(0);
    pool.close();
  });

  it('reads an answer with neither length nor chunks until the server closes', async () => {
    const tcp = createTcpServer((socket) => {
      socket.once('data', () => socket.end('HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\nuntil the end'));
    });
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    servers.push({ close: () => tcp.close() });
    const pool = new SocketPool({
      host: '127.0.0.1',
      port: (tcp.address() as AddressInfo).port,
      maxSockets: 1,
    });
    const answer = await pool.exchange(get('/'));
    expect(answer.body.toString()).toBe('until the end');
    expect(answer.headers['x-a']).toBe('1');
    pool.close();
  });

  it('fails with a code the retry loop knows: a cut body, a refused port, silence, an abort', async () => {
    const tcp = createTcpServer((socket) => {
      socket.once('data', (request) => {
        if (request.toString().startsWith('GET /cut')) {
          socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly some');
        }
        // anything else: never answered
      });
    });
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    servers.push({ close: () => tcp.close() });
    const port = (tcp.address() as AddressInfo).port;
    const pool = new SocketPool({ host: '127.0.0.1', port, maxSockets: 4, timeoutMs: 200 });
    expect(await codeOf(pool.exchange(get('/cut')))).toBe('ECONNRESET');
    expect(await codeOf(pool.exchange(get('/silent')))).toBe('ETIMEDOUT');
    const controller = new AbortController();
    const aborted = pool.exchange(get('/silent', { signal: controller.signal }));
    setTimeout(() => controller.abort(), 20);
    expect(await codeOf(aborted)).toBe('AbortError');
    pool.close();
    const closedPort = await new Promise<number>((resolve) => {
      const probe = createTcpServer();
      probe.listen(0, '127.0.0.1', () => {
        const free = (probe.address() as AddressInfo).port;
        probe.close(() => resolve(free));
      });
    });
    const refused = new SocketPool({ host: '127.0.0.1', port: closedPort, maxSockets: 1 });
    expect(await codeOf(refused.exchange(get('/')))).toBe('ECONNREFUSED');
    refused.close();
  });

  it('refuses a header value with a line break (no header injection)', async () => {
    const { port, stats } = await serve((_, response) => response.end('ok'));
    const pool = new SocketPool({ host: '127.0.0.1', port, maxSockets: 1 });
    const failure = await pool
      .exchange(get('/', { headers: { host: 't', 'x-amz-meta-a': 'b\r\nx: y' } }))
      .catch((e: Error) => e);
    expect(String(failure)).toMatch(/line break/);
    expect((await pool.exchange(get('/'))).body.toString()).toBe('ok');
    expect(stats.connections).toBeLessThanOrEqual(2);
    pool.close();
  });
});
