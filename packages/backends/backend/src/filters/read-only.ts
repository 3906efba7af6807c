import type { Backend } from '../backend';
import { BackendError, BackendErrorCode } from '../errors';
import { wrapBackend } from './wrap-backend';

/**
 * A filter that refuses every change: `readOnly` is true, `write` rejects with
 * `TCMU_ERR_BACKEND_READ_ONLY`, and the mutating optional operations (unmap, writeZeroes,
 * compareAndWrite, resize) are absent, so the core advertises none of them. Reads, getAllocation,
 * flush and close pass through.
 */
export function readOnly(next: Backend): Backend {
  return wrapBackend(
    next,
    {
      readOnly: true,
      write: async (offset) => {
        throw new BackendError(BackendErrorCode.ReadOnly, 'write refused: the backend is read-only', {
          offset,
        });
      },
    },
    { omit: ['unmap', 'writeZeroes', 'compareAndWrite', 'resize'] },
  );
}
