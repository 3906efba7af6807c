export type { CachedChunkStore, ChunkCacheOptions, ChunkCacheStats } from './chunk-cache';
export { withChunkCache } from './chunk-cache';
export type { ChunkEvent, ChunkState } from './chunk-state';
export { chunkEvents, chunkStates, chunkTransitions, nextChunkState } from './chunk-state';
export type { ChunkStore } from './chunk-store';
export { limited } from './limited';
export type { MemoryChunkStore, MemoryChunkStoreCounters } from './memory-chunk-store';
export { memoryChunkStore } from './memory-chunk-store';
export type { ReadAheadOptions } from './read-ahead';
export { withReadAhead } from './read-ahead';
export { readOnly } from './read-only';
export { serialized } from './serialized';
export type { FaultCall, FaultRule, FaultyBackend } from './with-faults';
export { withFaults } from './with-faults';
export type { ReadCachedBackend, ReadCacheOptions, ReadCacheStats } from './with-read-cache';
export { withReadCache } from './with-read-cache';
export type { BackendStats, OperationStats, StatsBackend } from './with-stats';
export { withStats } from './with-stats';
export type { BackendLayer, WrapBackendOptions } from './wrap-backend';
export { wrapBackend } from './wrap-backend';
export type {
  WriteBackJournal,
  WriteBackOptions,
  WriteBackRecord,
  WriteBackStats,
  WriteFence,
} from './write-back';
export { WriteBackBackend, withWriteBack } from './write-back';
