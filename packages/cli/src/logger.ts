import { createRequire } from 'node:module';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { LogFormat, LogLevel } from './arguments.js';

export interface LoggerOptions {
  /** Default `auto`. */
  readonly format?: LogFormat;
  /** Where lines go (tests); default fd 2, written synchronously. */
  readonly destination?: DestinationStream | NodeJS.WritableStream;
  /** Whether the destination is a terminal; default `process.stderr.isTTY`. */
  readonly terminal?: boolean;
  /** Colours in `pretty` lines; default: on a terminal unless NO_COLOR is set. */
  readonly color?: boolean;
}

/** The format `auto` stands for on this destination. */
export function resolveLogFormat(format: LogFormat, terminal: boolean): 'pretty' | 'json' {
  return format === 'auto' ? (terminal ? 'pretty' : 'json') : format;
}

/**
 * The command's structured logger on stderr (fd 2), written synchronously so nothing is lost when the
 * process exits right after logging; stdout stays free for the command's own output. JSON lines (pino)
 * when stderr is not a terminal or with format `json`; one readable, coloured line per record
 * (pino-pretty) on a terminal or with format `pretty`.
 */
export function createLogger(
  level: LogLevel,
  bindings: Record<string, unknown> = {},
  options: LoggerOptions = {},
): Logger {
  const terminal = options.terminal ?? process.stderr.isTTY === true;
  const format = resolveLogFormat(options.format ?? 'auto', terminal);
  const settings = {
    level,
    base: { pid: process.pid, ...bindings },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (format === 'json') {
    return pino(
      settings,
      (options.destination as DestinationStream) ?? pino.destination({ fd: 2, sync: true }),
    );
  }
  // pino-pretty is CommonJS and only needed on a terminal: load it on demand.
  const require = createRequire(import.meta.url);
  const pretty = require('pino-pretty') as (options: Record<string, unknown>) => DestinationStream;
  const stream = pretty({
    colorize: options.color ?? (terminal && !process.env.NO_COLOR),
    destination: options.destination ?? 2,
    sync: true,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
  });
  return pino(settings, stream);
}

export type { Logger };
