export * from './constants';
export { isLibcError, LibcError, type LibcErrorCode } from './errors';
export { errnoName, type IoVector, type Libc, libc, type NativeFunction } from './libc';
export { canWatchFd, type FdWatch, watchFd } from './watch-fd';
