export type { AllocationExtent, Backend, BackendOperation } from './backend';
export { firstDifference, isAllZero } from './bytes';
export type { BackendCapabilities, BackendWith } from './capabilities';
export { backendCapabilities, hasCapability, optionalOperations } from './capabilities';
export type { BackendErrorOptions } from './errors';
export { BackendError, BackendErrorCode, isBackendError } from './errors';
export * from './filters/index';
export { type LockRange, RangeLock } from './range-lock';
export { checkBackendRange, checkRange } from './ranges';
export {
  ScatterCursor,
  scatterCompare,
  scatterConcat,
  scatterCopyFrom,
  scatterCopyTo,
  scatterIsZero,
  scatterLength,
  scatterSlice,
  scatterZero,
} from './scatter';
export { joinUrlPath, redactUrl, splitUrlPath } from './url';
