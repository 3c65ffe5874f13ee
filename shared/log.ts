import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * The `event` field of log records that operators and tests match on, instead of the message's
 * wording (which may change): one name per thing that happens.
 */
export type LogEvent =
  | 'upgrade-refused' // admission: no socket for this request (fields: status, reason)
  | 'session-opened' // a socket; the hello is awaited
  | 'session-joined' // the handshake succeeded
  | 'session-closed' // the coordinator closed a connection (fields: code, closeCode)
  | 'shm-linked' // a worker on this host proved it mapped its segments: bulk data through shared memory
  | 'shm-declined' // a worker on this host could not map its segments (field: reason): its socket carries all
  | 'shm-stale-removed' // segments that dead runs left behind were removed at start (field: removed)
  | 'heartbeat-missed' // a worker did not answer a ping in time
  | 'heartbeat-deferred' // no pong yet, but bytes keep moving on the worker's link
  | 'shard-released' // a worker left holding a shard; it goes to another
  | 'phase-paused' // no worker is connected while a phase is in progress
  | 'shards-speculated' // shards past their deadline are offered to idle workers too
  | 'result-rejected' // a result (or a failed shard) was refused; the shard is sent again
  | 'phase-rescaled' // exact: a chunk overflowed its quantum; the phase runs again, coarser
  | 'phase-replanned' // a relay left, straggled or sent a bad total: the phase runs again without it (field: relay)
  | 'plan-changed' // the relays changed (fields: plan, zones)
  | 'shape-chosen' // --topology auto measured star and slices and kept the faster (fields: shape, starMs, slicesMs)
  | 'phase-abandoned'; // the run stops with no worker left to finish the phase

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
