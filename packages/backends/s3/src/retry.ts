/** Retry policy for requests to the object store. All times in milliseconds. */
export interface RetryPolicy {
  /** First back-off delay; doubles on every retry (exponential), with full jitter. Default 50. */
  readonly baseDelay: number;
  /** Upper bound of a single back-off delay. Default 2000. */
  readonly maxDelay: number;
  /** Time limit of one attempt (request and body); a stalled attempt is aborted and retried. Default 30000. */
  readonly attemptTimeout: number;
  /**
   * Bounded total wait: no new attempt starts after this much time since the first one, and the
   * operation fails with the last error. Default 60000.
   */
  readonly totalTimeout: number;
}

export const defaultRetryPolicy: RetryPolicy = Object.freeze({
  baseDelay: 50,
  maxDelay: 2000,
  attemptTimeout: 30_000,
  totalTimeout: 60_000,
});

/** Thrown (internally) by a store operation; `retryable` decides whether the retry loop tries again. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    message: string,
    /** Transient (throttling, 5xx, reset, timeout, corrupted transfer) or final (denied, missing bucket …). */
    readonly retryable: boolean,
    /** Kind used to pick the backend error code. */
    readonly kind:
      | 'transient'
      | 'unreachable'
      | 'denied'
      | 'no-bucket'
      | 'no-space'
      | 'precondition'
      | 'cancelled'
      | 'other',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** What a retried operation gave up with: the last error plus how hard it tried. */
export class RetriesExhaustedError extends Error {
  override readonly name = 'RetriesExhaustedError';
  constructor(
    readonly last: StoreError,
    readonly attempts: number,
    readonly elapsed: number,
  ) {
    super(`${last.message} (gave up after ${attempts} attempts in ${(elapsed / 1000).toFixed(1)} s)`, {
      cause: last,
    });
  }
}

/** What the retry loop reports before each retry. Times in milliseconds; never credentials. */
export interface RetryNotice {
  /** What was being done (set by the caller that knows). */
  readonly operation?: string;
  /** The retry about to start (1 = the second attempt). */
  readonly retry: number;
  readonly delay: number;
  readonly elapsed: number;
  /** The failure of the last attempt. */
  readonly error: string;
}

/** How the retry loop behaves beyond the policy. */
export interface RetryOptions {
  /**
   * Fail at once on errors that waiting will not heal (kind `unreachable`: unknown host, refused
   * connection). Set while opening: a typo in the endpoint fails in a moment, not after a minute.
   * While serving it stays off, so a restarting server is waited for.
   */
  readonly failFastUnreachable?: boolean;
  readonly onRetry?: (notice: RetryNotice) => void;
}

/** Counters the retry loop updates, for statistics. */
export interface RetryCounters {
  retries: number;
}

/** `TCMU_S3_TRACE=1` prints every retry (never credentials) to stderr, for diagnosing a slow server. */
const trace = process.env.TCMU_S3_TRACE === '1';

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * Runs `attempt` until it succeeds, fails with a non-retryable error, or the total time runs out.
 * Each attempt gets its own AbortSignal that fires after `attemptTimeout` (or when `signal` fires).
 * Back-off: full jitter, `random(0, min(maxDelay, baseDelay * 2^n))`. Non-StoreError failures are
 * bugs and propagate at once.
 */
export async function withRetry<T>(
  attempt: (signal: AbortSignal) => Promise<T>,
  policy: RetryPolicy,
  counters?: RetryCounters,
  signal?: AbortSignal,
  options: RetryOptions = {},
): Promise<T> {
  const start = Date.now();
  for (let n = 0; ; n++) {
    if (signal?.aborted) throw cancelled(signal);
    const timeout = AbortSignal.timeout(policy.attemptTimeout);
    const attemptSignal = signal ? AbortSignal.any([timeout, signal]) : timeout;
    try {
      return await attempt(attemptSignal);
    } catch (error) {
      const storeError =
        error instanceof StoreError
          ? error
          : timeout.aborted
            ? new StoreError(`no answer within ${policy.attemptTimeout} ms`, true, 'transient', {
                cause: error,
              })
            : undefined;
      if (signal?.aborted) throw cancelled(signal);
      if (!storeError) throw error;
      const elapsed = Date.now() - start;
      if (!storeError.retryable) throw storeError;
      if (storeError.kind === 'unreachable' && options.failFastUnreachable) throw storeError;
      const delay = Math.random() * Math.min(policy.maxDelay, policy.baseDelay * 2 ** n);
      if (elapsed + delay >= policy.totalTimeout) throw new RetriesExhaustedError(storeError, n + 1, elapsed);
      if (counters) counters.retries++;
      if (trace)
        process.stderr.write(`tcmu s3: retry ${n + 1} in ${Math.round(delay)} ms: ${storeError.message}\n`);
      options.onRetry?.({ retry: n + 1, delay: Math.round(delay), elapsed, error: storeError.message });
      await sleep(delay, signal);
      if (signal?.aborted) throw cancelled(signal);
    }
  }
}

/** The error a cancelled operation fails with (kind `cancelled`, not retryable). */
function cancelled(signal: AbortSignal): StoreError {
  const reason = signal.reason instanceof Error ? `: ${signal.reason.message}` : '';
  return new StoreError(`cancelled${reason}`, false, 'cancelled', { cause: signal.reason });
}
