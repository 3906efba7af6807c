export { readOnly } from './read-only';
export { serialized } from './serialized';
export type { FaultCall, FaultRule, FaultyBackend } from './with-faults';
export { withFaults } from './with-faults';
export type { BackendStats, OperationStats, StatsBackend } from './with-stats';
export { withStats } from './with-stats';
export type { BackendLayer, WrapBackendOptions } from './wrap-backend';
export { wrapBackend } from './wrap-backend';
