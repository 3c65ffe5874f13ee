/**
 * Who may open a connection to a coordinator or a relay: the shared token (checked during the HTTP upgrade, before any
 * WebSocket frame exists), a cap on open connections, and a cap on handshakes per second. Each
 * refusal reason is logged once per window, so a flood cannot flood the log too.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { LogEvent, Logger } from './log.js';

export interface AdmissionOptions {
  /** Shared secret; undefined means no authentication (loopback or --insecure). */
  token?: string;
  maxConnections: number;
  handshakesPerSecond: number;
}

export type AdmissionVerdict = { ok: true } | { ok: false; status: 401 | 429 | 503; reason: string };

/** Compares two secrets in constant time (hashing first makes the lengths equal). */
export function tokensEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** The token a request presents: `Authorization: Bearer <token>`. */
export function presentedToken(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(h.trim());
  return m?.[1];
}

export class Admission {
  private windowStart = 0;
  private handshakes = 0;
  private readonly logged = new Map<string, number>();

  constructor(
    private readonly opts: AdmissionOptions,
    private readonly log: Logger,
  ) {}

  /** Decides on an upgrade request, given how many connections are open now. */
  check(req: IncomingMessage, open: number, now = Date.now()): AdmissionVerdict {
    if (this.opts.token !== undefined) {
      const t = presentedToken(req);
      if (t === undefined) return this.refuse(401, 'missing token', now);
      if (!tokensEqual(t, this.opts.token)) return this.refuse(401, 'wrong token', now);
    }
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.handshakes = 0;
    }
    if (++this.handshakes > this.opts.handshakesPerSecond)
      return this.refuse(429, `more than ${this.opts.handshakesPerSecond} handshakes per second`, now);
    if (open >= this.opts.maxConnections)
      return this.refuse(503, `connection limit of ${this.opts.maxConnections} reached`, now);
    return { ok: true };
  }

  private refuse(status: 401 | 429 | 503, reason: string, now: number): AdmissionVerdict {
    const last = this.logged.get(reason) ?? -Infinity;
    if (now - last >= 10_000) {
      this.logged.set(reason, now);
      // The presented token is never logged, only that it was wrong or missing.
      this.log.warn(
        { event: 'upgrade-refused' satisfies LogEvent, status, reason },
        `refused a connection: ${reason} (further refusals for this reason are not logged for 10 s)`,
      );
    }
    return { ok: false, status, reason };
  }
}
