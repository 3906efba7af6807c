// Shared by this package's tests: where the S3 server is, unique prefixes, cleanup, child processes.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { deleteS3Volume } from '../volume.ts';

export const endpoint = process.env.TCMU_S3_ENDPOINT;
export const bucket = process.env.TCMU_S3_BUCKET ?? 'tcmu-test';

/** Why the S3 tests skip when no server is configured, with how to start one. */
export const skipReason =
  'no S3 server: TCMU_S3_ENDPOINT is not set (start the local RGW: tools/s3/rgw start && eval "$(tools/s3/rgw env)")';

const repositoryRoot = fileURLToPath(new URL('../../../../../', import.meta.url));
const rgwScript = `${repositoryRoot}tools/s3/rgw`;

const run = randomBytes(4).toString('hex');
let counter = 0;
const created: string[] = [];

/** A fresh prefix for one test volume, remembered for {@link removeTestVolumes}. */
export function testPrefix(name: string): string {
  const prefix = `tcmu-tests/${run}/${name}-${counter++}/`;
  created.push(prefix);
  return prefix;
}

/** Deletes every volume this test file created (force: leases of failed tests included). */
export async function removeTestVolumes(): Promise<void> {
  if (!endpoint) return;
  const prefixes = created.splice(0);
  await Promise.all(
    prefixes.map((prefix) =>
      deleteS3Volume({ bucket, prefix, endpoint: endpoint!, force: true }).catch(() => {}),
    ),
  );
}

/** Deterministic bytes for a seed, mostly non-zero: the conformance suite's generator. */
export { patternBytes as pattern } from '@tcmu/backend/testing';

/** Runs `child.ts` in a NEW node process with `request` (JSON) and returns what it printed (JSON). */
export function runChild(
  request: unknown,
): Promise<{ code: number | null; result: unknown; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--no-warnings',
        '--import',
        fileURLToPath(new URL('./register.mjs', import.meta.url)),
        fileURLToPath(new URL('./child.ts', import.meta.url)),
        JSON.stringify(request),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: process.env },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      let result: unknown;
      try {
        result = JSON.parse(stdout.trim().split('\n').pop() ?? 'null');
      } catch {
        result = undefined;
      }
      resolve({ code, result, stderr });
    });
  });
}

/** Runs `tools/s3/rgw <command>`. */
export async function rgw(command: string): Promise<string> {
  const { stdout, stderr } = await promisify(execFile)(rgwScript, [command], { timeout: 120_000 });
  return `${stdout}${stderr}`;
}

/**
 * The endpoint of a second radosgw on the local RGW's cluster (`tools/s3/rgw spare-start`), started on
 * demand, for a test that restarts its server: restarting the main one would fail the tests that run
 * beside it. Undefined when the configured endpoint is not the local RGW of tools/s3/rgw.
 */
export async function spareRgwEndpoint(): Promise<string | undefined> {
  try {
    await rgw('status');
    if (endpoint !== `http://127.0.0.1:${process.env.TCMU_RGW_PORT ?? '7480'}`) return undefined;
    return (await rgw('spare-start')).trim().split('\n').pop();
  } catch {
    return undefined;
  }
}

/** A plain SDK client for the tests to look at the bucket independently of the backend. */
let direct: S3Client | undefined;
function directClient(): S3Client {
  direct ??= new S3Client({
    region: process.env.AWS_REGION ?? 'us-east-1',
    endpoint: endpoint!,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return direct;
}

/** Every key under `prefix`, sorted (independent listing through the SDK). */
export async function listKeys(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await directClient().send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: prefix,
        ...(token ? { ContinuationToken: token } : {}),
      }),
    );
    for (const o of page.Contents ?? []) keys.push(o.Key!);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys.sort();
}

/** An object's body and metadata, straight from the server. */
export async function getObject(
  key: string,
): Promise<{ body: Uint8Array; metadata: Record<string, string> }> {
  const response = await directClient().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return { body: await response.Body!.transformToByteArray(), metadata: response.Metadata ?? {} };
}

/** Writes an object straight to the server (to damage or forge volume objects). */
export async function putObject(
  key: string,
  body: Uint8Array,
  metadata: Record<string, string> = {},
): Promise<void> {
  await directClient().send(
    new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, Metadata: metadata }),
  );
}

/** The error code a promise rejects with, or undefined when it resolves. */
export async function code(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
}

/** `length` bytes of `backend` from `offset`, read into one view. */
export async function readAt(
  backend: { read(offset: number, length: number, into: Uint8Array[]): Promise<void> },
  offset: number,
  length: number,
): Promise<Buffer> {
  const out = new Uint8Array(length);
  await backend.read(offset, length, [out]);
  return Buffer.from(out);
}
