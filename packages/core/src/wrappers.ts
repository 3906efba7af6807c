import { ScsiStatus, type SenseInfo, writeProtected } from '@tcmu/scsi';
import { checkCondition } from './response';
import type { Logger, ScsiCommand, ScsiHandler, ScsiResponse } from './types';

/** Opcodes that change the medium (answered 07/27 00 by {@link withReadOnly}). */
export const mediumChangingOpcodes: ReadonlySet<number> = new Set([
  0x04, 0x0a, 0x2a, 0x2e, 0x41, 0x42, 0x89, 0x8a, 0x8e, 0x93, 0xaa,
]);

/**
 * Logs every command when it completes: name, id, status, sense key/ASC/ASCQ, duration. GOOD
 * completions go to `debug`, others to `info`, handler failures to `warn` (then rethrown).
 */
export function withLogging(next: ScsiHandler, logger: Logger): ScsiHandler {
  return {
    async handle(command) {
      const started = process.hrtime.bigint();
      const base = { id: command.id, command: command.decoded.name, device: command.device.name };
      try {
        const response = await next.handle(command);
        const durationMicroseconds = Number((process.hrtime.bigint() - started) / 1000n);
        const context = { ...base, status: response.status, durationMicroseconds, ...senseFields(response) };
        if (response.status === ScsiStatus.Good) logger.debug?.(context, 'command completed');
        else logger.info?.(context, 'command failed');
        return response;
      } catch (error) {
        logger.warn?.({ ...base, err: error }, 'handler threw');
        throw error;
      }
    },
  };
}

function senseFields(response: ScsiResponse): object {
  const sense = response.sense;
  if (!sense || sense instanceof Uint8Array) return {};
  return { senseKey: sense.key, asc: sense.asc, ascq: sense.ascq };
}

/** Counters kept by {@link withMetrics}. */
export interface HandlerMetrics {
  /** Commands by name (e.g. `'READ(10)'`). */
  readonly commands: Record<string, number>;
  /** Completions by status byte. */
  readonly statuses: Record<number, number>;
  /** Handlers that threw. */
  failures: number;
  /** Commands being handled right now. */
  inFlight: number;
  /** Sum and maximum of handler durations, in microseconds. */
  totalMicroseconds: number;
  maxMicroseconds: number;
}

/** A handler that counts what passes through it (`metrics`). */
export interface MeasuredHandler extends ScsiHandler {
  readonly metrics: HandlerMetrics;
}

/** Counts commands by name and status, failures, commands in flight and durations. */
export function withMetrics(next: ScsiHandler): MeasuredHandler {
  const metrics: HandlerMetrics = {
    commands: {},
    statuses: {},
    failures: 0,
    inFlight: 0,
    totalMicroseconds: 0,
    maxMicroseconds: 0,
  };
  return {
    metrics,
    async handle(command) {
      const name = command.decoded.name;
      metrics.commands[name] = (metrics.commands[name] ?? 0) + 1;
      metrics.inFlight++;
      const started = process.hrtime.bigint();
      try {
        const response = await next.handle(command);
        metrics.statuses[response.status] = (metrics.statuses[response.status] ?? 0) + 1;
        return response;
      } catch (error) {
        metrics.failures++;
        throw error;
      } finally {
        metrics.inFlight--;
        const micros = Number((process.hrtime.bigint() - started) / 1000n);
        metrics.totalMicroseconds += micros;
        if (micros > metrics.maxMicroseconds) metrics.maxMicroseconds = micros;
      }
    },
  };
}

/**
 * Answers every command that would change the medium (WRITE*, WRITE SAME, UNMAP, COMPARE AND WRITE,
 * WRITE AND VERIFY, FORMAT UNIT) with 07/27 00 WRITE PROTECTED and passes the rest on. For the
 * full behaviour (WP bit in MODE SENSE, SWP) serve the device with `readOnly: true` instead.
 */
export function withReadOnly(next: ScsiHandler): ScsiHandler {
  return {
    handle(command) {
      if (command.decoded.ok && mediumChangingOpcodes.has(command.decoded.opcode))
        return Promise.resolve(checkCondition(writeProtected()));
      return next.handle(command);
    },
  };
}

/** One fault of {@link withFaultInjection}. */
export interface FaultRule {
  /** Which commands: a decoded name (`'WRITE(10)'`), an opcode, or a predicate. Absent: every command. */
  readonly match?: string | number | ((command: ScsiCommand) => boolean);
  /** Answer with this sense (CHECK CONDITION) or response instead of calling the next handler. */
  readonly respond?: SenseInfo | ScsiResponse;
  /** Throw this instead (the core turns it into sense: a BackendError maps by code, else 04/44 00). */
  readonly throw?: unknown;
  /** Wait this many milliseconds before going on (or before answering/throwing). */
  readonly delayMilliseconds?: number;
  /** Apply to this many matching commands, then stop (default: forever). */
  times?: number;
}

/** A handler with faults that can be added and removed while it serves. */
export interface FaultInjectingHandler extends ScsiHandler {
  /** The active rules, first match wins; push or splice to change them. */
  readonly rules: FaultRule[];
}

function matches(rule: FaultRule, command: ScsiCommand): boolean {
  const m = rule.match;
  if (m === undefined) return true;
  if (typeof m === 'string') return command.decoded.name === m;
  if (typeof m === 'number') return command.decoded.opcode === m;
  return m(command);
}

const isResponse = (value: SenseInfo | ScsiResponse): value is ScsiResponse =>
  typeof (value as ScsiResponse).status === 'number';

/**
 * Injects faults in front of `next`: canned sense or responses, thrown errors, delays. For testing
 * initiators and error paths; failures at the storage level belong in the backend's `withFaults`.
 */
export function withFaultInjection(next: ScsiHandler, rules: FaultRule[] = []): FaultInjectingHandler {
  return {
    rules,
    async handle(command) {
      const rule = rules.find((r) => (r.times === undefined || r.times > 0) && matches(r, command));
      if (!rule) return next.handle(command);
      if (rule.times !== undefined) rule.times--;
      if (rule.delayMilliseconds) await new Promise((r) => setTimeout(r, rule.delayMilliseconds));
      if (rule.throw !== undefined) throw rule.throw;
      if (rule.respond) return isResponse(rule.respond) ? rule.respond : checkCondition(rule.respond);
      return next.handle(command);
    },
  };
}
