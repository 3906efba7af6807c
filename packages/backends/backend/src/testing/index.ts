export type { ReferenceBackendOptions } from './reference-backend';
export { createReferenceBackend } from './reference-backend';
