/**
 * The live dashboard in a real browser: Debian's Chromium driven by playwright-core loads the
 * page from a coordinator (with a token) while a real worker trains, and checks that the charts
 * have data, that they update without a reload, that the worker table and sample grid show, and
 * that a sample-quality score (a real evaluation, asked for mid-epoch) reaches its chart.
 * GANFLEET_DASHBOARD_SCREENSHOT=PATH saves a screenshot (the README's docs/dashboard.png).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { coordinator, exited, spawnWorker, until } from '../support/cluster.js';

// Page-side code runs in the browser; this project compiles without the DOM types.
declare const window: any;
declare const document: any;

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'dashboard-test-token';

test('dashboard: loads in Chromium, charts have data and update live, workers and samples show', {
  skip: existsSync(CHROMIUM) ? false : `no browser at ${CHROMIUM} (apt-get install chromium to run this test)`,
  timeout: 240_000,
}, async () => {
  const steps = Number(process.env.GANFLEET_DASHBOARD_STEPS ?? 300);
  const c = await coordinator({ maxSteps: steps, samples: true, logEvery: 50 }, { token: TOKEN, evalEvery: 1 });
  const worker = spawnWorker(c.url, [], { GANFLEET_TOKEN: TOKEN });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--headless',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const base = `http://127.0.0.1:${c.port}`;
    await until(() => c.observe.state.step >= 3, 120_000, 'first steps');
    const res = await page.goto(`${base}/?token=${TOKEN}`);
    assert.equal(res?.status(), 200);
    // The token leaves the address bar once the page has it.
    assert.equal(page.url(), `${base}/`);

    type Dash = { ganfleet: { charts: Record<string, { data: Array<ArrayLike<number | null>> }>; polls(): number } };
    const points = () => page.evaluate(() => (window as unknown as Dash).ganfleet.charts.loss!.data[0]!.length);
    await page.waitForFunction(
      () => (window as unknown as Dash).ganfleet.charts.loss!.data[0]!.length >= 3,
      undefined,
      { timeout: 30_000 },
    );
    const first = await points();
    const polls = await page.evaluate(() => (window as unknown as Dash).ganfleet.polls());
    // Live: more points arrive without a reload.
    await page.waitForFunction(
      (n) => (window as unknown as Dash).ganfleet.charts.loss!.data[0]!.length > n + 5,
      first,
      { timeout: 60_000 },
    );
    assert.ok((await page.evaluate(() => (window as unknown as Dash).ganfleet.polls())) > polls);

    const data = await page.evaluate(() => {
      const g = (window as unknown as Dash).ganfleet;
      const arr = (k: string) => Array.from(g.charts[k]!.data, (s) => Array.from(s));
      return { loss: arr('loss'), d: arr('d'), ips: arr('ips') };
    });
    const [steps1, dLoss, gLoss] = data.loss;
    assert.ok(
      steps1!.every((s, i) => i === 0 || s! > steps1![i - 1]!),
      'steps increase',
    );
    for (const series of [dLoss, gLoss, data.d[1], data.d[2]])
      assert.ok(
        series!.every((v) => v !== null && Number.isFinite(v)),
        'finite values',
      );
    assert.ok(data.d[1]!.every((v) => v! >= 0 && v! <= 1));
    assert.equal(data.ips.length, 3, 'total + one worker');
    assert.ok(data.ips[1]!.some((v) => v! > 0) && data.ips[2]!.some((v) => v !== null && v > 0));
    // A sample-quality evaluation of the current generator, as at an epoch's end (epochs here are
    // longer than the test): its score and the floor reach the quality chart.
    await until(() => c.observe.evals!.floor !== undefined, 120_000, 'the evaluator');
    c.observe.evals!.onEpochEnd({ epoch: 1, step: c.trainer.currentStep, gen: c.trainer.params.gen, partial: false });
    await page.waitForFunction(
      () => (window as unknown as Dash).ganfleet.charts.quality!.data[0]!.length === 1,
      undefined,
      { timeout: 120_000 },
    );
    const quality = await page.evaluate(() =>
      Array.from((window as unknown as Dash).ganfleet.charts.quality!.data, (s) => Array.from(s)),
    );
    const score = c.observe.evals!.records[0]!;
    assert.deepEqual(quality, [
      [1],
      [score.fd],
      [c.observe.evals!.floor!.fd],
      [score.classifier_score],
      [score.digits],
    ]);
    assert.equal(await page.textContent('#fd'), score.fd.toFixed(2));

    // The charts are drawn (uPlot canvases of a real size).
    const canvases = await page.$$eval('.uplot canvas', (cs) => cs.map((c) => [(c as any).width, (c as any).height]));
    assert.equal(canvases.length, 4);
    for (const [w, h] of canvases) assert.ok(w! > 200 && h! > 100);

    const rows = await page.$$eval('#workers tr', (trs) =>
      trs.map((tr) => Array.from((tr as any).children as ArrayLike<any>, (td) => td.textContent as string)),
    );
    assert.equal(rows.length, 1);
    assert.equal(rows[0]![0], '1');
    assert.equal(rows[0]![1], 'active');
    assert.equal(rows[0]![2], 'wasm');
    assert.equal(rows[0]![4], '128', 'shard size');
    await page.waitForFunction(() => document.getElementById('samples').naturalWidth === 242, undefined, {
      timeout: 30_000,
    });
    assert.match((await page.textContent('#samples-step')) ?? '', /after step \d+/);
    assert.ok(Number(await page.textContent('#step')) > 0);

    // Every request went to the coordinator: no CDN.
    assert.ok(
      requests.length > 0 && requests.every((u) => u.startsWith(base) || u.startsWith('blob:')),
      requests.filter((u) => !u.startsWith(base)).join(', '),
    );
    assert.deepEqual(errors, []);
    if (process.env.GANFLEET_DASHBOARD_SCREENSHOT) {
      await until(() => c.observe.state.step >= Math.min(steps, 250), 240_000, 'more steps for the screenshot');
      await page.waitForTimeout(2500);
      await page.screenshot({ path: process.env.GANFLEET_DASHBOARD_SCREENSHOT, fullPage: true });
    }
  } finally {
    await browser.close();
    c.stop();
    await c.done.catch(() => undefined);
    await Promise.race([exited(worker), new Promise((r) => setTimeout(r, 5000))]);
    worker.kill('SIGKILL');
  }
});
