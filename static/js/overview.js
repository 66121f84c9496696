// overview.js keeps the overview page live. live.js owns the socket (the
// page asks for the stats and requests topics with data-live-topics, and
// jobs, so that a job's toast follows it here too); this file listens to
// its events:
//
//   cachegate:stats       tiles, tables and charts; the first message after
//                         every (re)connect carries the server's whole
//                         history, which replaces the charts, so a gap
//                         while disconnected is filled from the server.
//   cachegate:requests    the live tail.
//   cachegate:connection  when the socket drops the page says so at once
//                         and greys the figures until it is back.
//
// The charts are the server's SVG (views/overview_charts.go); this redraws
// their paths with the same geometry. Keep the two in step.
(function () {
  'use strict';

  var root = document.querySelector('[data-testid="overview"]');
  if (!root) return;

  var WINDOW = 900; // seconds charted: one unit of x per second
  var HEIGHT = 160;
  var RATIO_HEIGHT = 60;
  var SPARK_HEIGHT = 24;
  var LAT_MIN = -2, LAT_MAX = 4; // log10 ms: 0.01 ms to 10 s
  var TAIL_ROWS = 100;
  var STACK = [
    ['hits', 's-hit'], ['stale', 's-stale'], ['revalidated', 's-reval'],
    ['misses', 's-miss'], ['bypass', 's-bypass'], ['errors', 's-error'],
  ];

  var samples = []; // {t: ms, total: {...}, upstreams: {...}}, oldest first

  // Formatting, as views/format.go and overview_charts.go do it.

  function count(n) {
    return Math.round(n || 0).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }
  function percent(r) {
    return ((r || 0) * 100).toFixed(1) + ' %';
  }
  var bytes = window.cachegate.bytes;
  function duration(ms) {
    ms = ms || 0;
    if (ms > 0 && ms < 1) return Math.max(1, Math.round(ms * 1000)) + ' µs';
    if (ms < 10) return ms.toFixed(1) + ' ms';
    if (ms < 1000) return Math.floor(ms) + ' ms';
    var s = ms / 1000;
    if (s < 60) return s.toFixed(1) + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + Math.floor(s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor(s % 3600 / 60) + ' min';
  }
  var plural = window.cachegate.plural;
  function ratio(p) {
    var served = (p.hits || 0) + (p.stale || 0);
    var all = served + (p.misses || 0) + (p.revalidated || 0);
    return all > 0 ? served / all : 0;
  }
  function num(f) {
    return String(Math.round(f * 10) / 10);
  }
  function niceMax(v) {
    if (v <= 1) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var ms = [1, 1.5, 2, 3, 5, 7.5, 10];
    for (var i = 0; i < ms.length; i++) if (v <= ms[i] * p) return ms[i] * p;
    return 10 * p;
  }

  function setText(el, text) {
    if (el && el.textContent !== text) el.textContent = text;
  }
  function field(name, text) {
    root.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) { setText(el, text); });
  }
  function note(name, text) {
    root.querySelectorAll('[data-note="' + name + '"]').forEach(function (el) { setText(el, text); });
  }

  // Samples.

  function addSamples(msg) {
    var incoming = (msg.samples || []).map(function (s) {
      return { t: Date.parse(s.time), total: s.total || {}, upstreams: s.upstreams || {} };
    });
    if (msg.history) {
      samples = incoming;
    } else {
      var last = samples.length ? samples[samples.length - 1].t : -Infinity;
      incoming.forEach(function (s) { if (s.t > last) samples.push(s); });
    }
    if (!samples.length) return;
    var from = samples[samples.length - 1].t - WINDOW * 1000;
    while (samples.length && samples[0].t <= from) samples.shift();
  }

  // Charts.

  function xOf(t, now) {
    return WINDOW - (now - t) / 1000;
  }

  function drawRequests(now) {
    var svg = root.querySelector('svg[data-chart="requests"]');
    if (!svg) return;
    var peak = 0;
    samples.forEach(function (s) {
      var sum = 0;
      STACK.forEach(function (k) { sum += s.total[k[0]] || 0; });
      peak = Math.max(peak, sum);
    });
    var top = niceMax(peak);
    setText(root.querySelector('[data-peak="requests"]'), num(top));
    STACK.forEach(function (k, idx) {
      var d = '';
      samples.forEach(function (s, i) {
        var cum = 0;
        for (var j = 0; j <= idx; j++) cum += s.total[STACK[j][0]] || 0;
        var x = num(xOf(s.t, now)), y = num(HEIGHT - cum / top * HEIGHT);
        d += i === 0 ? 'M' + x + ',' + HEIGHT + 'L' + x + ',' + y : 'L' + x + ',' + y;
        if (i === samples.length - 1) d += 'L' + x + ',' + HEIGHT + 'Z';
      });
      var path = svg.querySelector('[data-series="' + k[1] + '"]');
      if (path) path.setAttribute('d', d);
    });
  }

  function line(now, y) {
    var d = '', pen = false;
    samples.forEach(function (s) {
      var v = y(s);
      if (v === null) {
        pen = false;
        return;
      }
      d += (pen ? 'L' : 'M') + num(xOf(s.t, now)) + ',' + num(v);
      pen = true;
    });
    return d;
  }

  function drawRatio(now) {
    var path = root.querySelector('svg[data-chart="ratio"] [data-series="ratio"]');
    if (!path) return;
    path.setAttribute('d', line(now, function (s) {
      var p = s.total;
      if (!((p.hits || 0) + (p.stale || 0) + (p.misses || 0) + (p.revalidated || 0))) return null;
      return RATIO_HEIGHT - ratio(p) * RATIO_HEIGHT;
    }));
  }

  function latY(ms) {
    var l = Math.min(Math.max(Math.log10(ms), LAT_MIN), LAT_MAX);
    return HEIGHT - (l - LAT_MIN) / (LAT_MAX - LAT_MIN) * HEIGHT;
  }

  function drawLatency(now) {
    var svg = root.querySelector('svg[data-chart="latency"]');
    if (!svg) return;
    [['l-miss99', 'miss_p99_ms'], ['l-miss50', 'miss_p50_ms'], ['l-hit99', 'hit_p99_ms'], ['l-hit50', 'hit_p50_ms']].forEach(function (k) {
      var path = svg.querySelector('[data-series="' + k[0] + '"]');
      if (!path) return;
      path.setAttribute('d', line(now, function (s) {
        var v = s.total[k[1]];
        return v > 0 ? latY(v) : null;
      }));
    });
  }

  function drawSparks() {
    root.querySelectorAll('svg[data-spark]').forEach(function (svg) {
      var name = svg.dataset.spark;
      var vals = samples.map(function (s) { return (s.upstreams[name] || {}).requests || 0; });
      var top = niceMax(Math.max.apply(null, [0].concat(vals)));
      var d = '';
      vals.forEach(function (v, i) {
        d += (i === 0 ? 'M' : 'L') + num(WINDOW - vals.length + 1 + i) + ',' + num(SPARK_HEIGHT - v / top * SPARK_HEIGHT);
      });
      var path = svg.querySelector('path');
      if (path) path.setAttribute('d', d);
    });
  }

  // Figures.

  function upstreamCells(name, v) {
    var row = root.querySelector('[data-testid="upstream-row"][data-upstream="' + CSS.escape(name) + '"]');
    if (!row) return;
    var set = function (f, text) { setText(row.querySelector('[data-u="' + f + '"]'), text); };
    set('requests', count(v.requests));
    set('ratio', percent(v.hit_ratio));
    set('hits', count(v.hits));
    set('misses', count(v.misses));
    set('bytes_from_cache', bytes(v.bytes_from_cache));
    set('time_saved', duration(v.time_saved_ms));
    set('errors', count(v.errors));
  }

  function backends(figs) {
    if (!figs) return;
    var entries = 0, size = 0;
    root.querySelectorAll('[data-testid="backend-summary-row"]').forEach(function (row) {
      var f = figs[row.dataset.backend];
      if (!f || f.error) return;
      entries += f.entries;
      size += f.bytes;
      setText(row.querySelector('[data-testid="backend-entries"]'), count(f.entries));
      setText(row.querySelector('[data-testid="backend-bytes"]'), bytes(f.bytes));
    });
    field('stored', bytes(size));
    note('stored', plural(entries, 'entry', 'entries'));
  }

  function onStats(msg) {
    addSamples(msg);
    var st = msg.stats || {};
    var t = st.total || {};
    var latest = samples.length ? samples[samples.length - 1] : null;
    field('rps', count(latest ? latest.total.requests || 0 : 0) + '/s');
    if (msg.minute) {
      field('minute_ratio', percent(msg.minute.hit_ratio));
      note('minute_ratio', plural(msg.minute.requests || 0, 'request', 'requests'));
    }
    field('ratio', percent(t.hit_ratio));
    note('ratio', plural((t.hits || 0) + (t.stale || 0), 'answer', 'answers') + ' from cache');
    field('requests', count(t.requests));
    field('bytes_from_cache', bytes(t.bytes_from_cache));
    field('time_saved', duration(t.time_saved_ms));
    ['hits', 'misses', 'stale', 'revalidated', 'coalesced', 'bypass', 'errors'].forEach(function (k) {
      field(k, count(t[k]));
    });
    Object.keys(st.upstreams || {}).forEach(function (name) { upstreamCells(name, st.upstreams[name]); });
    backends(msg.backends);
    if (latest) {
      drawRequests(latest.t);
      drawRatio(latest.t);
      drawLatency(latest.t);
      drawSparks();
    }
    root.dataset.updated = String(Date.now());
  }

  // Connection.

  var banner = document.getElementById('live-banner');
  function onConnection(state) {
    var down = state === 'closed';
    root.classList.toggle('disconnected', down);
    root.dataset.connection = state;
    if (banner) banner.hidden = !down;
  }

  // Live tail.

  var tbody = root.querySelector('[data-tail-rows]');
  var upSel = root.querySelector('[data-testid="tail-upstream"]');
  var outSel = root.querySelector('[data-testid="tail-outcome"]');
  var pauseBtn = root.querySelector('[data-tail-pause]');
  var stateEl = root.querySelector('[data-tail-state]');
  var paused = false;
  var missed = 0;

  function cell(label, text, cls) {
    var td = document.createElement('td');
    td.dataset.label = label;
    if (cls) td.className = cls;
    td.textContent = text;
    return td;
  }

  function badgeKind(c) {
    switch (c) {
      case 'HIT': return 'ok';
      case 'STALE': case 'REVALIDATED': return 'warn';
      case 'ERROR': return 'bad';
      case 'MISS': return 'info';
    }
    return '';
  }

  function tailRow(r) {
    var tr = document.createElement('tr');
    tr.dataset.testid = 'tail-row';
    tr.dataset.upstream = r.upstream || '';
    tr.dataset.cache = r.cache || '';
    var time = new Date(r.time);
    tr.append(cell('Time', time.toLocaleTimeString(), 'nowrap'));
    tr.append(cell('Upstream', r.upstream || ''));
    tr.append(cell('Method', r.method || ''));
    var url = cell('URL', r.url || '', 'mono wrap');
    url.title = r.url || '';
    tr.append(url);
    var c = cell('Cache', '');
    var b = document.createElement('span');
    b.className = 'badge plain ' + badgeKind(r.cache);
    b.textContent = r.cache || '';
    c.append(b);
    tr.append(c);
    tr.append(cell('Status', String(r.status || ''), 'num'));
    tr.append(cell('Bytes', bytes(r.bytes), 'num'));
    tr.append(cell('Latency', (r.duration_ms || 0).toFixed(1) + ' ms', 'num'));
    tr.hidden = !matches(tr);
    return tr;
  }

  function matches(tr) {
    return (!upSel || !upSel.value || tr.dataset.upstream === upSel.value) &&
      (!outSel || !outSel.value || tr.dataset.cache === outSel.value);
  }

  function refilter() {
    if (!tbody) return;
    tbody.querySelectorAll('tr[data-testid="tail-row"]').forEach(function (tr) { tr.hidden = !matches(tr); });
  }

  function tailState() {
    if (!stateEl) return;
    setText(stateEl, paused ? 'paused' + (missed ? ', ' + plural(missed, 'request', 'requests') + ' not shown' : '') : '');
  }

  function onRequests(msg) {
    if (!tbody) return;
    var list = msg.requests || [];
    if (paused) {
      missed += list.length;
      tailState();
      return;
    }
    var empty = tbody.querySelector('.tail-empty');
    if (empty && list.length) empty.remove();
    list.forEach(function (r) { tbody.prepend(tailRow(r)); });
    while (tbody.children.length > TAIL_ROWS) tbody.lastElementChild.remove();
  }

  if (pauseBtn) {
    pauseBtn.addEventListener('click', function () {
      paused = !paused;
      if (!paused) missed = 0;
      pauseBtn.textContent = paused ? 'Resume' : 'Pause';
      pauseBtn.setAttribute('aria-pressed', paused ? 'true' : 'false');
      root.dataset.tailPaused = paused ? 'true' : 'false';
      tailState();
    });
  }
  [upSel, outSel].forEach(function (s) { if (s) s.addEventListener('change', refilter); });
  var empty = tbody && tbody.querySelector('.tail-empty td');
  if (empty) empty.textContent = 'Waiting for requests through /fetch/…';

  document.addEventListener('cachegate:stats', function (ev) { onStats(ev.detail || {}); });
  document.addEventListener('cachegate:requests', function (ev) { onRequests(ev.detail || {}); });
  document.addEventListener('cachegate:connection', function (ev) { onConnection((ev.detail || {}).state); });
})();
