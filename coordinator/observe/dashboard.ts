/**
 * HTTP routes of the coordinator's observability: the live dashboard (`/`, `/api/state`,
 * `/api/samples.png`, and uPlot's files under `/assets/`), and Prometheus metrics (`/metrics`).
 * With a token, everything except /healthz, /readyz (served by the server itself) and the public
 * uPlot files needs it; `metricsPublic` leaves /metrics open for scrapers that cannot send one.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { HttpRoute } from '../server.js';
import { authorized } from './auth.js';
import type { MetricsObserver } from './metrics.js';
import { DASHBOARD_HTML } from './page.js';
import type { DashboardState } from './state.js';

const require = createRequire(import.meta.url);

/** Files served from npm packages, read once on first use. */
const ASSETS: Record<string, { module: string; type: string }> = {
  '/assets/uPlot.iife.min.js': { module: 'uplot/dist/uPlot.iife.min.js', type: 'text/javascript; charset=utf-8' },
  '/assets/uPlot.min.css': { module: 'uplot/dist/uPlot.min.css', type: 'text/css; charset=utf-8' },
};
const assetCache = new Map<string, Buffer>();

function asset(path: string): { body: Buffer; type: string } | undefined {
  const a = ASSETS[path];
  if (!a) return undefined;
  let body = assetCache.get(path);
  if (!body) {
    body = readFileSync(require.resolve(a.module));
    assetCache.set(path, body);
  }
  return { body, type: a.type };
}

export interface ObserveRouteOptions {
  token?: string;
  state?: DashboardState;
  metrics?: MetricsObserver;
  /** Serve /metrics without the token. */
  metricsPublic?: boolean;
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string | Buffer,
  extra: Record<string, string> = {},
  head = false,
): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': String(Buffer.byteLength(body)),
    ...SECURITY_HEADERS,
    ...extra,
  });
  res.end(head ? undefined : body);
}

function unauthorized(res: ServerResponse, head: boolean): void {
  send(
    res,
    401,
    'text/plain; charset=utf-8',
    'token required: send "Authorization: Bearer <token>", or open the dashboard as /?token=<token>\n',
    { 'www-authenticate': 'Bearer realm="ganfleet"' },
    head,
  );
}

/** The route to push onto `CoordinatorServer.routes`. */
export function observeRoute(opts: ObserveRouteOptions): HttpRoute {
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    const dashboardPath =
      opts.state !== undefined &&
      (path === '/' || path === '/index.html' || path.startsWith('/api/') || path in ASSETS);
    const metricsPath = opts.metrics !== undefined && path === '/metrics';
    if (!dashboardPath && !metricsPath) return false;
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n', { allow: 'GET, HEAD' });
      return true;
    }
    // uPlot's own files are public npm code; everything about the run needs the token.
    const a = asset(path);
    if (a) {
      send(res, 200, a.type, a.body, { 'cache-control': 'public, max-age=3600' }, head);
      return true;
    }
    if (!(metricsPath && opts.metricsPublic) && !authorized(req, opts.token)) {
      unauthorized(res, head);
      return true;
    }
    if (metricsPath) {
      opts.metrics!.render().then(
        ({ body, contentType }) => send(res, 200, contentType, body, {}, head),
        (err: unknown) =>
          send(res, 500, 'text/plain; charset=utf-8', `metrics failed: ${(err as Error).message}\n`, {}, head),
      );
      return true;
    }
    const state = opts.state!;
    if (path === '/' || path === '/index.html') {
      send(
        res,
        200,
        'text/html; charset=utf-8',
        DASHBOARD_HTML,
        {
          'content-security-policy':
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; " +
            "img-src 'self' blob:; connect-src 'self'",
        },
        head,
      );
      return true;
    }
    if (path === '/api/state') {
      const since = Number(url.searchParams.get('since') ?? -1);
      const strideParam = url.searchParams.get('stride');
      const stride = strideParam === null ? undefined : Number(strideParam);
      send(
        res,
        200,
        'application/json',
        JSON.stringify(state.snapshot(Number.isFinite(since) ? since : -1, stride)),
        {},
        head,
      );
      return true;
    }
    if (path === '/api/samples.png') {
      const s = state.samplePng();
      send(res, 200, 'image/png', s.png, { 'x-ganfleet-step': String(s.step) }, head);
      return true;
    }
    send(res, 404, 'text/plain; charset=utf-8', 'not found\n', {}, head);
    return true;
  };
}
