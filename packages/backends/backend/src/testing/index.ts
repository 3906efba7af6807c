export type { BackendConformanceOptions } from './conformance';
export { patternBytes, runBackendConformance } from './conformance';
export type { ReferenceBackendOptions } from './reference-backend';
export { createReferenceBackend } from './reference-backend';
