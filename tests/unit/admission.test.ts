import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { pino } from 'pino';
import { Admission, presentedToken, tokensEqual } from '../../shared/admission.js';

const req = (authorization?: string) =>
  ({ headers: authorization === undefined ? {} : { authorization } }) as unknown as IncomingMessage;

test('tokens compare in constant time and only as Bearer credentials', () => {
  assert.equal(tokensEqual('abc', 'abc'), true);
  assert.equal(tokensEqual('abc', 'abd'), false);
  assert.equal(tokensEqual('abc', 'abcd'), false);
  assert.equal(presentedToken(req('Bearer s3cret')), 's3cret');
  assert.equal(presentedToken(req('bearer   s3cret ')), 's3cret');
  assert.equal(presentedToken(req('Basic s3cret')), undefined);
  assert.equal(presentedToken(req()), undefined);
});

test('admission refuses bad tokens (401), handshake floods (429), too many connections (503); logs each once', () => {
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
  const a = new Admission({ token: 'k', maxConnections: 2, handshakesPerSecond: 3 }, log);
  const t0 = 1_000_000;
  assert.deepEqual(a.check(req(), 0, t0), { ok: false, status: 401, reason: 'missing token' });
  assert.deepEqual(a.check(req('Bearer x'), 0, t0), { ok: false, status: 401, reason: 'wrong token' });
  assert.deepEqual(a.check(req('Bearer x'), 0, t0 + 1), { ok: false, status: 401, reason: 'wrong token' });
  assert.deepEqual(a.check(req('Bearer k'), 0, t0), { ok: true });
  assert.deepEqual(a.check(req('Bearer k'), 2, t0), {
    ok: false,
    status: 503,
    reason: 'connection limit of 2 reached',
  });
  assert.deepEqual(a.check(req('Bearer k'), 0, t0), { ok: true });
  assert.deepEqual(a.check(req('Bearer k'), 0, t0), {
    ok: false,
    status: 429,
    reason: 'more than 3 handshakes per second',
  });
  // A new one-second window admits again.
  assert.deepEqual(a.check(req('Bearer k'), 0, t0 + 1000), { ok: true });
  const msgs = lines.map((l) => JSON.parse(l).msg as string);
  assert.equal(
    msgs.filter((m) => m.startsWith('refused a connection: wrong token')).length,
    1,
    'logged once per window',
  );
  assert.ok(!lines.join('').includes('"k"') && !lines.join('').includes('Bearer'), 'no token in the log');
});
