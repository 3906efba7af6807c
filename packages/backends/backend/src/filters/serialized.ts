import type { Backend } from '../backend';
import { limited } from './limited';

/**
 * A filter that lets one call at a time reach `next`, in the order the calls were made (nbdkit's
 * "serialize all requests" thread model). For backends that are not safe with overlapping calls;
 * sets `concurrencyLimit` to 1. A failed call does not stop the queue. `limited(next, 1)`.
 */
export function serialized(next: Backend): Backend {
  return limited(next, 1);
}
