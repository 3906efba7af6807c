export { isRingError, RingError, type RingErrorCode } from './errors';
export type { TaskManagementName } from './layout';
export { MAX_SPIN_MICROSECONDS, openRing, Ring } from './ring';
export type {
  RingCapabilities,
  RingCloseOptions,
  RingCommand,
  RingCompletion,
  RingHandlers,
  RingLocation,
  RingStartOptions,
  RingStatistics,
  RingTaskManagement,
} from './types';
