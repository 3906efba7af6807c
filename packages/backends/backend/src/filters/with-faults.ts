import type { Backend, BackendOperation } from '../backend';
import { optionalOperations } from '../capabilities';
import { BackendError, type BackendErrorCode } from '../errors';
import { scatterLength } from '../scatter';
import { type BackendLayer, wrapBackend } from './wrap-backend';

/** A call as a fault rule sees it. Byte units; `length` is 0 for calls without a range. */
export interface FaultCall {
  readonly operation: 'read' | 'write' | BackendOperation;
  readonly offset: number;
  readonly length: number;
}

/** One rule of a fault plan. A call is matched against rules in order; the first match applies. */
export interface FaultRule {
  /** Which operation the rule matches; `'*'` for all. */
  readonly operation: FaultCall['operation'] | '*';
  /** Only calls whose byte range overlaps this one match (absent: any range). */
  readonly range?: { readonly offset: number; readonly length: number };
  /** Any further condition. */
  readonly when?: (call: FaultCall) => boolean;
  /** Let this many matching calls through untouched before the rule starts acting. Default 0. */
  readonly skip?: number;
  /** Act on this many matching calls, then retire. Default: forever. */
  readonly times?: number;
  /**
   * What to fail with: a code (the error gets a message naming the call and, for MISCOMPARE, `offset`
   * below), a ready error, or a function building one. Absent: the call is not failed, only delayed.
   */
  readonly error?: BackendErrorCode | Error | ((call: FaultCall) => Error);
  /** For code errors: the error's `offset` (default: the call's offset; for MISCOMPARE, 0). */
  readonly offset?: number;
  /** Wait this many milliseconds before failing or forwarding the call. */
  readonly delayMilliseconds?: number;
  /** Fail AFTER forwarding the call to `next` (the change happened, the caller sees an error). */
  readonly afterForwarding?: boolean;
}

/** A backend with a live fault plan, as returned by {@link withFaults}. */
export type FaultyBackend = Backend & {
  readonly faults: {
    /** Appends a rule to the plan. */
    add(rule: FaultRule): void;
    /** Removes every rule. */
    clear(): void;
    /** Number of calls the plan acted on (failed or delayed) so far. */
    readonly triggered: number;
  };
};

interface LiveRule {
  readonly rule: FaultRule;
  seen: number;
  acted: number;
}

const sleep = (milliseconds: number) => new Promise((resolve) => setTimeout(resolve, milliseconds));

/**
 * A fault-injection filter: calls matching a rule of `plan` are failed with a chosen error and/or
 * delayed, the rest go to `next` unchanged. Used to check that every backend failure becomes the
 * right SCSI sense. Adds no capability. The plan can be changed while running (`faults.add/clear`).
 */
export function withFaults(next: Backend, plan: readonly FaultRule[] = []): FaultyBackend {
  let rules: LiveRule[] = plan.map((rule) => ({ rule, seen: 0, acted: 0 }));
  let triggered = 0;

  const match = (call: FaultCall): FaultRule | undefined => {
    for (const live of rules) {
      const { rule } = live;
      if (rule.operation !== '*' && rule.operation !== call.operation) continue;
      if (rule.range) {
        const end = call.offset + Math.max(call.length, 1);
        if (end <= rule.range.offset || call.offset >= rule.range.offset + rule.range.length) continue;
      }
      if (rule.when && !rule.when(call)) continue;
      if (rule.times !== undefined && live.acted >= rule.times) continue;
      live.seen++;
      if (live.seen <= (rule.skip ?? 0)) continue;
      live.acted++;
      return rule;
    }
    return undefined;
  };

  const errorFor = (rule: FaultRule, call: FaultCall): Error | undefined => {
    const { error } = rule;
    if (error === undefined) return undefined;
    if (typeof error === 'function') return error(call);
    if (error instanceof Error) return error;
    const offset = rule.offset ?? (error === 'TCMU_ERR_BACKEND_MISCOMPARE' ? 0 : call.offset);
    return new BackendError(error, `injected fault: ${call.operation} at ${call.offset}+${call.length}`, {
      offset,
    });
  };

  const intercept = async <T>(call: FaultCall, forward: () => Promise<T>): Promise<T> => {
    const rule = match(call);
    if (!rule) return forward();
    triggered++;
    if (rule.delayMilliseconds) await sleep(rule.delayMilliseconds);
    const error = errorFor(rule, call);
    if (!error) return forward();
    if (rule.afterForwarding) await forward();
    throw error;
  };

  const layer: Record<string, unknown> = {
    read: (offset: number, length: number, into: readonly Uint8Array[]) =>
      intercept({ operation: 'read', offset, length }, () => next.read(offset, length, into)),
    write: (offset: number, data: readonly Uint8Array[]) =>
      intercept({ operation: 'write', offset, length: scatterLength(data) }, () => next.write(offset, data)),
  };
  for (const name of optionalOperations) {
    const method = next[name] as ((...args: unknown[]) => Promise<unknown>) | undefined;
    if (typeof method !== 'function') continue;
    layer[name] = (...args: unknown[]) => {
      const call = describe(name, args);
      return intercept(call, () => method.apply(next, args));
    };
  }
  const wrapped = wrapBackend(next, layer as BackendLayer) as FaultyBackend;
  Object.defineProperty(wrapped, 'faults', {
    value: {
      add(rule: FaultRule) {
        rules.push({ rule, seen: 0, acted: 0 });
      },
      clear() {
        rules = [];
      },
      get triggered() {
        return triggered;
      },
    },
  });
  return wrapped;
}

function describe(operation: BackendOperation, args: unknown[]): FaultCall {
  switch (operation) {
    case 'unmap':
    case 'writeZeroes':
    case 'getAllocation':
      return { operation, offset: args[0] as number, length: args[1] as number };
    case 'compareAndWrite':
      return { operation, offset: args[0] as number, length: scatterLength(args[2] as Uint8Array[]) };
    case 'resize':
      return { operation, offset: args[0] as number, length: 0 };
    default:
      return { operation, offset: 0, length: 0 };
  }
}
