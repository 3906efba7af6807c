import { describe, expect, it } from 'vitest';
import { BackendError, BackendErrorCode, isBackendError } from './errors';
import { checkRange } from './ranges';

describe('BackendError', () => {
  it('carries a stable code, an offset and a cause', () => {
    const cause = new Error('EIO');
    const error = new BackendError(BackendErrorCode.Miscompare, 'differs', { offset: 17, cause });
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('TCMU_ERR_BACKEND_MISCOMPARE');
    expect(error.offset).toBe(17);
    expect(error.cause).toBe(cause);
    expect(error.name).toBe('BackendError');
  });

  it('isBackendError matches by code, also for errors from another copy of the package', () => {
    const foreign = Object.assign(new Error('x'), { code: 'TCMU_ERR_BACKEND_READ' });
    expect(isBackendError(foreign)).toBe(true);
    expect(isBackendError(foreign, BackendErrorCode.Read)).toBe(true);
    expect(isBackendError(foreign, BackendErrorCode.Write)).toBe(false);
    expect(isBackendError(Object.assign(new Error('x'), { code: 'ENOENT' }))).toBe(false);
    expect(isBackendError({ code: 'TCMU_ERR_BACKEND_READ' })).toBe(false);
  });

  it('every code is unique and prefixed', () => {
    const codes = Object.values(BackendErrorCode);
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(code).toMatch(/^TCMU_ERR_BACKEND_[A-Z_]+$/);
  });
});

describe('checkRange', () => {
  const code = (f: () => void) => {
    try {
      f();
      return 'ok';
    } catch (error) {
      return (error as BackendError).code;
    }
  };
  it('accepts in-range and empty ranges', () => {
    expect(code(() => checkRange('read', 0, 100, 100))).toBe('ok');
    expect(code(() => checkRange('read', 100, 0, 100))).toBe('ok');
  });
  it('rejects past-the-end, negative and fractional ranges as out of range', () => {
    expect(code(() => checkRange('read', 99, 2, 100))).toBe(BackendErrorCode.OutOfRange);
    expect(code(() => checkRange('read', 101, 0, 100))).toBe(BackendErrorCode.OutOfRange);
    expect(code(() => checkRange('read', -1, 1, 100))).toBe(BackendErrorCode.OutOfRange);
    expect(code(() => checkRange('read', 0.5, 1, 100))).toBe(BackendErrorCode.OutOfRange);
  });
  it('rejects misaligned ranges as invalid arguments', () => {
    expect(code(() => checkRange('write', 512, 512, 4096, 512))).toBe('ok');
    expect(code(() => checkRange('write', 1, 512, 4096, 512))).toBe(BackendErrorCode.InvalidArgument);
    expect(code(() => checkRange('write', 0, 100, 4096, 512))).toBe(BackendErrorCode.InvalidArgument);
  });
});
