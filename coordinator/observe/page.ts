/**
 * The dashboard page: one HTML document with its script inline. Charts are uPlot, served by the
 * coordinator from the `uplot` npm package (/assets/…); nothing is fetched from anywhere else.
 * The page polls /api/state once a second (only new history points come back) and redraws.
 * A token given as `/?token=…` is kept in sessionStorage, dropped from the address bar, and sent
 * as `Authorization: Bearer` with every request.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ganfleet</title>
<link rel="stylesheet" href="assets/uPlot.min.css">
<style>
  :root { --fg: #1d2330; --muted: #667085; --line: #e4e7ec; --bg: #f7f8fa; }
  * { box-sizing: border-box; }
  body {
    margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
    color: var(--fg); background: var(--bg);
  }
  header {
    display: flex; flex-wrap: wrap; gap: 24px; align-items: baseline; padding: 14px 20px; background: #fff;
    border-bottom: 1px solid var(--line);
  }
  header h1 { font-size: 18px; margin: 0 8px 0 0; }
  .kv { color: var(--muted); } .kv b { color: var(--fg); font-variant-numeric: tabular-nums; }
  #status.err { color: #b42318; }
  progress { width: 220px; vertical-align: middle; }
  main { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 16px; padding: 16px 20px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; min-width: 0; }
  section h2 { font-size: 14px; margin: 0 0 8px; color: var(--muted); font-weight: 600; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { color: var(--muted); font-weight: 600; }
  td.left { color: var(--muted); }
  #samples { image-rendering: pixelated; width: 100%; max-width: 484px; display: block; background: #000; }
  .chart { min-height: 260px; }
</style>
</head>
<body>
<header>
  <h1>ganfleet</h1>
  <span class="kv">step <b id="step">–</b> / <b id="total">–</b></span>
  <progress id="progress" max="1" value="0"></progress>
  <span class="kv">epoch <b id="epoch">–</b></span>
  <span class="kv">images/s <b id="ips">–</b></span>
  <span class="kv">workers <b id="nworkers">–</b></span>
  <span class="kv">d_loss <b id="dloss">–</b> g_loss <b id="gloss">–</b></span>
  <span class="kv">FD <b id="fd">–</b></span>
  <span class="kv" id="status">connecting…</span>
</header>
<main>
  <section><h2>Loss (batch mean)</h2><div id="chart-loss" class="chart"></div></section>
  <section><h2>D output (mean over the batch)</h2><div id="chart-d" class="chart"></div></section>
  <section><h2>Images per second (total and per worker)</h2><div id="chart-ips" class="chart"></div></section>
  <section><h2>Samples (fixed z; <span id="samples-step">–</span>)</h2>
    <img id="samples" alt="latest sample grid"></section>
  <section><h2>Sample quality by epoch: Fréchet distance (log, lower is better; <span id="fd-floor">–</span>),
    classifier score and digits ≥ 5 % (0–10)</h2><div id="chart-quality" class="chart"></div></section>
  <section style="grid-column: 1 / -1"><h2>Workers</h2>
    <table><thead><tr><th>id</th><th>state</th><th>backend</th><th>device</th><th>shard size</th><th>shards</th>
      <th>images/s</th><th>compute ms</th><th>round trip ms</th><th>last seen</th></tr></thead>
    <tbody id="workers"></tbody></table>
  </section>
</main>
<script src="assets/uPlot.iife.min.js"></script>
<script>
(function () {
  'use strict';
  var params = new URLSearchParams(location.search);
  var token = params.get('token');
  if (token) {
    try { sessionStorage.setItem('ganfleet-token', token); } catch (e) {}
    params.delete('token');
    var q = params.toString();
    history.replaceState(null, '', location.pathname + (q ? '?' + q : '') + location.hash);
  } else {
    try { token = sessionStorage.getItem('ganfleet-token'); } catch (e) {}
  }
  var headers = token ? { Authorization: 'Bearer ' + token } : {};
  var COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22',
    '#7f7f7f'];

  // Client-side copies of the history, column-wise, as uPlot wants them.
  var H = { step: [], d_loss: [], g_loss: [], d_real: [], d_fake: [], ips: [], workers: [] };
  var stride = undefined, lastStep = -1, sampleStep = null, polls = 0, workerIds = [];
  var charts = {};

  function width(id) { return Math.max(300, document.getElementById(id).clientWidth); }
  function makeChart(id, series, data, yRange) {
    var opts = {
      width: width(id), height: 250,
      scales: { x: { time: false }, y: yRange ? { range: yRange } : {} },
      axes: [{ label: 'step' }, { size: 64 }],
      series: [{ label: 'step' }].concat(series),
      legend: { live: true },
    };
    var el = document.getElementById(id);
    el.innerHTML = '';
    return new uPlot(opts, data, el);
  }
  function line(label, i) {
    return { label: label, stroke: COLORS[i % COLORS.length], width: 1.5, points: { show: false } };
  }

  function buildIpsChart() {
    var series = [line('total', 0)];
    var data = [H.step, H.ips];
    workerIds.forEach(function (id, k) {
      series.push(line('worker ' + id + ' (compute)', k + 1));
      data.push(H.workers.map(function (w) { return w[id] === undefined ? null : w[id]; }));
    });
    if (charts.ips) charts.ips.destroy();
    charts.ips = makeChart('chart-ips', series, data);
  }
  // Sample-quality scores, one point per evaluated epoch (the whole list comes with every poll).
  var Q = { epoch: [], fd: [], floor: [], score: [], digits: [] };
  function buildQualityChart() {
    var opts = {
      width: width('chart-quality'), height: 250,
      scales: { x: { time: false }, fd: { distr: 3 }, ten: { range: [0, 10] } },
      axes: [{ label: 'epoch' }, { scale: 'fd', size: 64, label: 'Fréchet distance' },
        { scale: 'ten', side: 1, grid: { show: false }, label: 'score, digits' }],
      series: [{ label: 'epoch' },
        { label: 'Fréchet distance', scale: 'fd', stroke: COLORS[4], width: 1.5 },
        { label: 'floor (real images)', scale: 'fd', stroke: COLORS[9], width: 1, dash: [6, 4],
          points: { show: false } },
        { label: 'classifier score', scale: 'ten', stroke: COLORS[5], width: 1.5 },
        { label: 'digits ≥ 5 %', scale: 'ten', stroke: COLORS[7], width: 1.5 }],
      legend: { live: true },
    };
    var el = document.getElementById('chart-quality');
    el.innerHTML = '';
    charts.quality = new uPlot(opts, [Q.epoch, Q.fd, Q.floor, Q.score, Q.digits], el);
  }
  function applyQuality(s) {
    var ev = s.evals || [];
    var floor = s.evalFloor ? s.evalFloor.fd : null;
    Q.epoch = ev.map(function (e) { return e.epoch; });
    Q.fd = ev.map(function (e) { return e.fd > 0 ? e.fd : null; });
    Q.floor = ev.map(function () { return floor; });
    Q.score = ev.map(function (e) { return e.classifier_score; });
    Q.digits = ev.map(function (e) { return e.digits; });
    charts.quality.setData([Q.epoch, Q.fd, Q.floor, Q.score, Q.digits]);
    if (ev.length) setText('fd', fmt(ev[ev.length - 1].fd, 2));
    if (floor !== null) setText('fd-floor', 'floor ' + fmt(floor, 2));
  }

  function initCharts() {
    charts.loss = makeChart('chart-loss', [line('D loss', 0), line('G loss', 1)], [H.step, H.d_loss, H.g_loss]);
    charts.d = makeChart('chart-d', [line('D(real)', 2), line('D(fake)', 3)], [H.step, H.d_real, H.d_fake], [0, 1]);
    buildIpsChart();
    buildQualityChart();
  }

  function fmt(x, d) { return x === null || x === undefined || !isFinite(x) ? '–' : Number(x).toFixed(d); }
  function ago(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    return s < 60 ? s + ' s ago' : Math.round(s / 60) + ' min ago';
  }
  function setText(id, t) { document.getElementById(id).textContent = t; }

  function apply(s) {
    if (s.reset || stride !== s.stride) { Object.keys(H).forEach(function (k) { H[k] = []; }); stride = s.stride; }
    s.history.forEach(function (p) {
      H.step.push(p.step); H.d_loss.push(p.d_loss); H.g_loss.push(p.g_loss);
      H.d_real.push(p.d_real); H.d_fake.push(p.d_fake);
      H.ips.push(p.images_per_s); H.workers.push(p.workers);
      if (p.step > lastStep) lastStep = p.step;
    });
    var ids = [];
    H.workers.forEach(function (w) {
      Object.keys(w).forEach(function (id) { if (ids.indexOf(id) < 0) ids.push(id); });
    });
    ids.sort(function (a, b) { return a - b; });
    if (ids.join(',') !== workerIds.join(',')) { workerIds = ids; buildIpsChart(); }
    else {
      charts.ips.setData([H.step, H.ips].concat(workerIds.map(function (id) {
        return H.workers.map(function (w) { return w[id] === undefined ? null : w[id]; });
      })));
    }
    charts.loss.setData([H.step, H.d_loss, H.g_loss]);
    charts.d.setData([H.step, H.d_real, H.d_fake]);
    applyQuality(s);

    setText('step', s.step); setText('total', s.totalSteps); setText('epoch', s.epoch + 1 + ' / ' + s.run.epochs);
    var pr = document.getElementById('progress'); pr.max = s.totalSteps || 1; pr.value = s.step;
    setText('ips', fmt(s.imagesPerSecond, 0));
    var last = s.history.length ? s.history[s.history.length - 1] : null;
    if (last) { setText('dloss', fmt(last.d_loss, 4)); setText('gloss', fmt(last.g_loss, 4)); }
    var active = s.workers.filter(function (w) { return w.state === 'active'; });
    setText('nworkers', active.length);
    var tb = document.getElementById('workers');
    tb.innerHTML = '';
    s.workers.forEach(function (w) {
      var tr = document.createElement('tr');
      [w.id, w.state, w.backend, w.device, w.shardSize, w.shards, fmt(w.imagesPerSecond, 0), fmt(w.computeMs, 1),
        fmt(w.roundTripMs, 1), ago(s.now - w.lastSeen)].forEach(function (v, i) {
        var td = document.createElement('td'); td.textContent = String(v);
        if (w.state !== 'active') td.className = 'left';
        tr.appendChild(td);
      });
      tb.appendChild(tr);
    });
    if (s.step !== sampleStep) refreshSamples(s.step);
  }

  var sampleBusy = false;
  function refreshSamples(step) {
    if (sampleBusy) return;
    sampleBusy = true;
    fetch('api/samples.png', { headers: headers, cache: 'no-store' }).then(function (r) {
      if (!r.ok) throw new Error('samples: HTTP ' + r.status);
      var at = r.headers.get('x-ganfleet-step');
      return r.blob().then(function (b) {
        var img = document.getElementById('samples');
        var old = img.src;
        img.src = URL.createObjectURL(b);
        if (old && old.indexOf('blob:') === 0) URL.revokeObjectURL(old);
        sampleStep = at === null ? step : Number(at);
        setText('samples-step', 'after step ' + sampleStep);
      });
    }).catch(function () {}).then(function () { sampleBusy = false; });
  }

  function poll() {
    var url = 'api/state?since=' + lastStep + (stride === undefined ? '' : '&stride=' + stride);
    fetch(url, { headers: headers, cache: 'no-store' }).then(function (r) {
      if (r.status === 401) throw new Error('unauthorized: open this page as /?token=<token>');
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    }).then(function (s) {
      apply(s);
      polls++;
      var st = document.getElementById('status'); st.className = '';
      st.textContent = s.step >= s.totalSteps && s.totalSteps > 0 ? 'finished' : 'live';
    }).catch(function (e) {
      var st = document.getElementById('status'); st.className = 'err'; st.textContent = String(e.message || e);
    }).then(function () { setTimeout(poll, 1000); });
  }

  initCharts();
  window.addEventListener('resize', function () {
    Object.keys(charts).forEach(function (k) {
      var c = charts[k]; c.setSize({ width: width(c.root.parentNode.id), height: 250 });
    });
  });
  // For tests and the curious: the charts and the number of polls so far.
  window.ganfleet = { charts: charts, history: H, polls: function () { return polls; } };
  poll();
})();
</script>
</body>
</html>
`;
