// @tcmu/backend-s3/testing: an in-memory S3 for tests that need no server.
export {
  type InjectedFailure,
  MemoryObjectStore,
  type MemoryObjectStoreOptions,
  type StoreRequest,
} from '../memory-object-store.ts';
export type { ListedObject, ObjectStore, PutOptions, StoredObject } from '../object-store.ts';
