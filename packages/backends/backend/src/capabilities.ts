import type { Backend, BackendOperation } from './backend';

/**
 * What a backend can do, derived from which optional methods it has (never from flags it claims).
 * The core turns this into what it advertises: `unmap` → thin provisioning (LBPU, VPD B2),
 * `writeZeroes` → WRITE SAME without a data copy, `compareAndWrite` → COMPARE AND WRITE,
 * `flush` → a write cache (WCE) and SYNCHRONIZE CACHE, `getAllocation` → GET LBA STATUS.
 */
export interface BackendCapabilities {
  readonly flush: boolean;
  readonly unmap: boolean;
  readonly writeZeroes: boolean;
  readonly compareAndWrite: boolean;
  readonly getAllocation: boolean;
  readonly resize: boolean;
  readonly close: boolean;
  /** Mirrors `backend.readOnly` (absent → false). */
  readonly readOnly: boolean;
  /** Mirrors `backend.persistent` (absent → false). */
  readonly persistent: boolean;
  /** Mirrors `backend.writesSurviveCrash` (absent → false). */
  readonly writesSurviveCrash: boolean;
}

/** Every optional operation name, in a stable order. */
export const optionalOperations: readonly BackendOperation[] = Object.freeze([
  'flush',
  'unmap',
  'writeZeroes',
  'compareAndWrite',
  'getAllocation',
  'resize',
  'close',
]);

/** Derives the capabilities of `backend` from the presence of its optional methods. Pure; frozen result. */
export function backendCapabilities(backend: Backend): BackendCapabilities {
  return Object.freeze({
    flush: hasCapability(backend, 'flush'),
    unmap: hasCapability(backend, 'unmap'),
    writeZeroes: hasCapability(backend, 'writeZeroes'),
    compareAndWrite: hasCapability(backend, 'compareAndWrite'),
    getAllocation: hasCapability(backend, 'getAllocation'),
    resize: hasCapability(backend, 'resize'),
    close: hasCapability(backend, 'close'),
    readOnly: backend.readOnly === true,
    persistent: backend.persistent === true,
    writesSurviveCrash: backend.writesSurviveCrash === true,
  });
}

/** A backend narrowed to one that has the optional method `operation`. */
export type BackendWith<O extends BackendOperation> = Backend & Required<Pick<Backend, O>>;

/** Type guard: true when `backend` has the optional method `operation` (a function). */
export function hasCapability<O extends BackendOperation>(
  backend: Backend,
  operation: O,
): backend is BackendWith<O> {
  return typeof backend[operation] === 'function';
}
