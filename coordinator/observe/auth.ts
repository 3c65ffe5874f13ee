/**
 * The coordinator's HTTP pages (dashboard, metrics) are behind the workers' token when one is set.
 * Programs send `Authorization: Bearer <token>`; a browser opens `/?token=<token>` once and the
 * page passes the token on with every request it makes. Both are compared in constant time.
 */
import type { IncomingMessage } from 'node:http';
import { presentedToken, tokensEqual } from '../../shared/admission.js';

/** The token a request presents, from the Authorization header or the `token` query parameter. */
export function requestToken(req: IncomingMessage): string | undefined {
  const header = presentedToken(req);
  if (header !== undefined) return header;
  const q = new URL(req.url ?? '/', 'http://x').searchParams.get('token');
  return q === null || q === '' ? undefined : q;
}

/** True when no token is configured, or the request presents the right one. */
export function authorized(req: IncomingMessage, token: string | undefined): boolean {
  if (token === undefined) return true;
  const t = requestToken(req);
  return t !== undefined && tokensEqual(t, token);
}
