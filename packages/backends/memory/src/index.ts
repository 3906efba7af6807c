export type { MemoryBackend, MemoryBackendOptions } from './memory-backend';
export { openMemoryBackend } from './memory-backend';
