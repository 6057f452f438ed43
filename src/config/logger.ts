import pino, { type Logger } from 'pino';

export type { Logger };

/** One structured logger for the process; components take children with their own bindings. */
export function createLogger(
  level: string = process.env.LOG_LEVEL ?? 'info',
  bindings: Record<string, unknown> = {},
): Logger {
  return pino({ level, base: { pid: process.pid, ...bindings } });
}
