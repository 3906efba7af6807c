import { describe, expect, it } from 'vitest';
import { classifyError } from './object-store.ts';
import { RetriesExhaustedError, StoreError, withRetry } from './retry.ts';

const policy = { baseDelay: 1, maxDelay: 4, attemptTimeout: 1000, totalTimeout: 200 };

describe('withRetry', () => {
  it('retries transient failures and returns the eventual result', async () => {
    let calls = 0;
    const counters = { retries: 0 };
    const result = await withRetry(
      async () => {
        if (++calls < 4) throw new StoreError('reset', true, 'transient');
        return 'ok';
      },
      policy,
      counters,
    );
    expect([result, calls, counters.retries]).toEqual(['ok', 4, 3]);
  });

  it('does not retry final failures', async () => {
    let calls = 0;
    const failure = await withRetry(async () => {
      calls++;
      throw new StoreError('denied', false, 'denied');
    }, policy).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(StoreError);
    expect(calls).toBe(1);
  });

  it('gives up after the total timeout with the last error and the attempt count', async () => {
    let calls = 0;
    const failure = await withRetry(async () => {
      calls++;
      throw new StoreError('still down', true, 'transient');
    }, policy).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(RetriesExhaustedError);
    expect((failure as RetriesExhaustedError).attempts).toBe(calls);
    expect((failure as Error).message).toMatch(/still down \(gave up after \d+ attempts/);
  });

  it('aborts a stalled attempt after attemptTimeout and retries it', async () => {
    let calls = 0;
    const result = await withRetry(
      (signal) =>
        new Promise<string>((resolve, reject) => {
          if (++calls > 1) return resolve('second');
          signal.addEventListener('abort', () => reject(new Error('aborted')));
        }),
      { ...policy, attemptTimeout: 20 },
    );
    expect([result, calls]).toEqual(['second', 2]);
  });

  it('lets bugs (non-store errors) through at once', async () => {
    const failure = await withRetry(async () => {
      throw new TypeError('bug');
    }, policy).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(TypeError);
  });
});

describe('classifyError', () => {
  const http = (status: number, name: string) => ({
    name,
    message: name,
    $metadata: { httpStatusCode: status },
  });
  it('retries throttling, server errors, resets and timeouts', () => {
    for (const error of [
      http(503, 'SlowDown'),
      http(500, 'InternalError'),
      http(429, 'TooManyRequests'),
      http(400, 'RequestTimeout'),
      http(400, 'BadDigest'),
      Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
      Object.assign(new Error('t'), { name: 'TimeoutError' }),
    ]) {
      expect(classifyError('GET', 'k', error).retryable, JSON.stringify(error)).toBe(true);
    }
  });
  it('does not retry refusals, and names the kind', () => {
    expect(classifyError('PUT', 'k', http(403, 'AccessDenied'))).toMatchObject({
      retryable: false,
      kind: 'denied',
    });
    expect(classifyError('PUT', 'k', http(404, 'NoSuchBucket'))).toMatchObject({
      retryable: false,
      kind: 'no-bucket',
    });
    expect(classifyError('PUT', 'k', http(412, 'PreconditionFailed'))).toMatchObject({
      kind: 'precondition',
    });
    expect(classifyError('PUT', 'k', http(400, 'InvalidArgument'))).toMatchObject({
      retryable: false,
      kind: 'other',
    });
  });
  it('never puts credentials in the message', () => {
    const message = classifyError('GET', 'k', http(403, 'SignatureDoesNotMatch')).message;
    expect(message).not.toContain(process.env.AWS_SECRET_ACCESS_KEY ?? 'no-secret-in-env');
  });
});
