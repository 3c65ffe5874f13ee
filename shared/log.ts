import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** Log levels accepted by `--log-level`. */
export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * Creates the process's root logger: JSON lines by default (for collectors), readable lines when
 * stdout is a terminal or `pretty` is asked for. Components take `logger.child({ component })`.
 */
export function createLogger(options: { level?: string; pretty?: boolean; name?: string } = {}): Logger {
  const level = options.level ?? 'info';
  const pretty = options.pretty ?? (process.stdout.isTTY === true && process.env.GANFLEET_LOG_FORMAT !== 'json');
  if (pretty) {
    return pino({
      level,
      name: options.name,
      transport: {
        target: 'pino-pretty',
        options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' },
      },
    });
  }
  return pino({ level, name: options.name });
}
