import pino, { type Logger } from 'pino';
import type { LogLevel } from './arguments.js';

/**
 * The command's structured logger: JSON lines on stderr (fd 2), written synchronously so nothing is lost
 * when the process exits right after logging. stdout stays free for the command's own output.
 */
export function createLogger(level: LogLevel, bindings: Record<string, unknown> = {}): Logger {
  return pino(
    { level, base: { pid: process.pid, ...bindings }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd: 2, sync: true }),
  );
}

export type { Logger };
