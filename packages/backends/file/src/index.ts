export type { FileBackend, FileBackendOptions } from './file-backend';
export { openFileBackend } from './file-backend';
