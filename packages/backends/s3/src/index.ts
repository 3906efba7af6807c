export { type KeySource, loadKey } from './chunk-codec.ts';
export {
  defaultChunkSize,
  formatVersion,
  maximumChunkSize,
  minimumChunkSize,
  type VolumeMetadata,
} from './layout.ts';
export { defaultLeaseDuration, minimumLeaseDuration } from './lease.ts';
export type { RetryNotice, RetryPolicy } from './retry.ts';
export { openS3Backend, S3Backend, type S3BackendOptions, type S3BackendStats } from './s3-backend.ts';
export { formatS3Url, type ParsedS3Url, parseByteSize, parseS3Url, type S3Location } from './url.ts';
export {
  cloneS3Volume,
  createS3Volume,
  deleteS3Snapshot,
  deleteS3Volume,
  inspectS3Volume,
  type S3VolumeAdminOptions,
  type S3VolumeInfo,
  snapshotS3Volume,
} from './volume.ts';
export type { CompressionName, OriginInfo, SnapshotInfo } from './volume-features.ts';
export type { LeaseInfo } from './volume-store.ts';
