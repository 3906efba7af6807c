// @tcmu/backend-s3/testing: an in-memory S3 for tests that need no server.

/** The real store for a location (own signed requests, or a given SDK client): for tools that measure the server itself. */
export { openObjectStore, type S3StoreOptions } from '../http-object-store.ts';
export {
  type InjectedFailure,
  MemoryObjectStore,
  type MemoryObjectStoreOptions,
  type StoreRequest,
} from '../memory-object-store.ts';
export type { ListedObject, ObjectStore, PutOptions, StoredObject } from '../object-store.ts';
