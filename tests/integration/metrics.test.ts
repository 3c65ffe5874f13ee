/** /metrics, /healthz, /readyz and the dashboard's API on a real coordinator with a real worker. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { coordinator, exited, spawnWorker, until } from '../support/cluster.js';

const TOKEN = 'metrics-test-token';

function get(base: string, path: string, headers: Record<string, string> = {}) {
  return fetch(base + path, { headers });
}

/** The value of a sample line `name{labels} value` (labels matched as a substring). */
function sample(text: string, name: string, labels = ''): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name && (m[2] ?? '').includes(labels)) return Number(m[3]);
  }
  return undefined;
}

test('metrics: Prometheus step/phase histograms, bytes, workers, worker images/s, losses; token', async () => {
  const c = await coordinator({ maxSteps: 40, checkpointEvery: 10 }, { token: TOKEN });
  const base = `http://127.0.0.1:${c.port}`;
  const auth = { authorization: `Bearer ${TOKEN}` };
  try {
    // Probes are open; everything about the run needs the token.
    assert.equal((await get(base, '/healthz')).status, 200);
    await until(() => c.server.ready, 10_000, 'ready');
    assert.equal((await get(base, '/readyz')).status, 200);
    for (const p of ['/metrics', '/', '/api/state', '/api/samples.png']) {
      const r = await get(base, p);
      assert.equal(r.status, 401, p);
      assert.match(r.headers.get('www-authenticate') ?? '', /Bearer/);
      assert.ok(!(await r.text()).includes(TOKEN));
      assert.equal((await get(base, p, { authorization: 'Bearer wrong' })).status, 401, p);
    }
    assert.equal((await get(base, '/?token=wrong')).status, 401);
    assert.equal((await get(base, `/?token=${TOKEN}`)).status, 200);
    assert.equal((await get(base, '/assets/uPlot.iife.min.js')).status, 200, 'uPlot is public npm code');
    assert.equal((await fetch(base + '/metrics', { method: 'POST', headers: auth })).status, 405);

    const worker = spawnWorker(c.url, [], { GANFLEET_TOKEN: TOKEN });
    await until(() => c.observe.state.step >= 12, 120_000, 'step 12');
    const r = await get(base, '/metrics', auth);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await r.text();
    for (const name of [
      'ganfleet_step_duration_seconds',
      'ganfleet_phase_duration_seconds',
      'ganfleet_shard_compute_seconds',
      'ganfleet_shard_round_trip_seconds',
    ]) {
      assert.match(text, new RegExp(`# TYPE ${name} histogram`), name);
    }
    assert.ok(sample(text, 'ganfleet_step_duration_seconds_count')! >= 12);
    assert.ok(sample(text, 'ganfleet_phase_duration_seconds_count', 'phase="dis"')! >= 12);
    assert.ok(sample(text, 'ganfleet_phase_duration_seconds_count', 'phase="gen"')! >= 12);
    assert.ok(sample(text, 'ganfleet_shard_compute_seconds_count', 'worker="1",phase="dis"')! >= 12);
    // A worker on this host moves its bulk data through shared memory, the rest over its socket.
    const sent =
      sample(text, 'ganfleet_bytes_sent_total', 'path="socket"')! +
      sample(text, 'ganfleet_bytes_sent_total', 'path="shm"')!;
    assert.ok(sample(text, 'ganfleet_bytes_received_total', 'path="socket"')! > 0);
    assert.ok(sent > 12 * 2 * 4 * 100_000, 'weights broadcasts');
    assert.equal(sample(text, 'ganfleet_workers_connected'), 1);
    assert.ok(sample(text, 'ganfleet_worker_images_per_second', 'worker="1",backend="wasm"')! > 0);
    assert.equal(sample(text, 'ganfleet_worker_shard_size', 'worker="1"'), 128);
    for (const [n, l] of [
      ['ganfleet_loss', 'net="dis"'],
      ['ganfleet_loss', 'net="gen"'],
      ['ganfleet_d_output', 'input="real"'],
      ['ganfleet_d_output', 'input="fake"'],
    ] as const) {
      assert.ok(Number.isFinite(sample(text, n, l)), `${n}{${l}}`);
    }
    assert.ok(sample(text, 'ganfleet_d_output', 'input="real"')! <= 1);
    assert.ok(sample(text, 'ganfleet_step')! >= 12);
    assert.ok(sample(text, 'ganfleet_checkpoints_written_total')! >= 1);
    assert.ok(sample(text, 'ganfleet_images_total')! >= 12 * 128);
    assert.ok(sample(text, 'ganfleet_process_resident_memory_bytes')! > 0, 'default process metrics');

    // The dashboard's API: history, the worker table, a live sample grid.
    const s = (await (await get(base, `/api/state`, auth)).json()) as {
      step: number;
      history: Array<{ step: number; d_loss: number }>;
      workers: Array<{ id: number; backend: string; shardSize: number; state: string }>;
    };
    assert.ok(s.step >= 12 && s.history.length >= 12);
    assert.deepEqual(
      s.workers.map((w) => [w.id, w.backend, w.state]),
      [[1, 'wasm', 'active']],
    );
    const since = (await (await get(base, `/api/state?since=${s.step}`, auth)).json()) as {
      history: Array<{ step: number }>;
    };
    assert.ok(since.history.every((p) => p.step > s.step));
    const png = await get(base, '/api/samples.png', auth);
    assert.equal(png.headers.get('content-type'), 'image/png');
    assert.equal(
      Buffer.from(await png.arrayBuffer())
        .subarray(1, 4)
        .toString(),
      'PNG',
    );

    const summary = await c.done;
    assert.equal(summary.steps, 40);
    await exited(worker);
    const after = (await c.observe.metrics!.render()).body;
    assert.equal(sample(after, 'ganfleet_step'), 40);
    assert.equal(sample(after, 'ganfleet_workers_joined_total'), 1);
  } finally {
    c.stop();
    await c.done.catch(() => undefined);
  }
});

test('metrics: --metrics-public serves /metrics without the token while the dashboard still needs it', async () => {
  const c = await coordinator({ maxSteps: 1 }, { token: TOKEN, metricsPublic: true });
  const base = `http://127.0.0.1:${c.port}`;
  try {
    assert.equal((await get(base, '/metrics')).status, 200);
    assert.equal((await get(base, '/api/state')).status, 401);
  } finally {
    c.stop();
    await c.done;
  }
});
