// A separate process for s3-https.test.ts: started with NODE_EXTRA_CA_CERTS naming the test
// certificate (which node reads at start-up only), it sends S3 requests over https to the endpoint
// in argv[2] and prints one JSON line per request: its status and body, or the error's code.
import { S3Http } from '../s3-http.ts';

const endpoint = process.argv[2]!;
const http = new S3Http({
  endpoint,
  bucket: 'b',
  region: async () => 'us-east-1',
  credentials: async () => ({ accessKeyId: 'AKIDTEST', secretAccessKey: 'not-a-real-secret' }),
  maxSockets: 2,
});
const signal = new AbortController().signal;
const requests = [
  { method: 'PUT', key: 'sized', body: new TextEncoder().encode('hello over tls') },
  { method: 'GET', key: 'sized' },
  { method: 'HEAD', key: 'sized' },
  { method: 'GET', key: 'chunked' },
  { method: 'GET', key: 'short' },
  { method: 'GET', key: 'missing' },
] as const;
for (const request of requests) {
  const outcome = await http.send({ ...request, signal }).then(
    (answer) => ({ status: answer.status, body: answer.body.toString() }),
    (error: { code?: string; name?: string; status?: number; message?: string }) => ({
      failed: error.code ?? error.name,
      status: error.status,
      message: error.message,
    }),
  );
  process.stdout.write(`${JSON.stringify({ request: `${request.method} ${request.key}`, ...outcome })}\n`);
}
http.close();
