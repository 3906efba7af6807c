import { type Backend, limited } from '@tcmu/backend';
import { CoreError, CoreErrorCode } from './errors';

/**
 * Honours `backend.concurrencyLimit`: returns a backend that lets at most that many calls reach
 * `backend` at once and queues the others in call order (@tcmu/backend's `limited` filter).
 * Without a limit (absent or Infinity) `backend` itself is returned: no cost on the hot path.
 * Capabilities are unchanged (the same optional methods exist) and properties stay live.
 */
export function limitConcurrency(backend: Backend): Backend {
  const limit = backend.concurrencyLimit;
  if (limit === undefined || limit === Number.POSITIVE_INFINITY) return backend;
  if (!Number.isInteger(limit) || limit < 1)
    throw new CoreError(
      CoreErrorCode.InvalidOption,
      `backend.concurrencyLimit must be a positive integer, got ${limit}`,
    );
  return limited(backend, limit);
}
