// live.js keeps an admin page live over cachegate's /ws websocket.
//
// It connects to /ws on the page's own origin (wss: on https:), reconnects
// with backoff when the socket drops, and shows the connection in
// #live-status when the page has one. Job messages update every element
// [data-job-id="ID"]: its children [data-field="done|total|failed|state|
// skipped|rate|eta"] and a <progress data-field="progress">. While a job
// this page started runs, a toast in #toasts shows its progress bar, done
// of total, rate and time left; when it ends the toast says how it went
// and links to /jobs/ID. Every message is also dispatched on document as a CustomEvent
// with the message as detail, so other pages hook in without editing this
// file: cachegate:job, cachegate:stats, cachegate:requests (a batch) and
// cachegate:request (each request in it, as {type: "request", request}),
// and cachegate:connection ({state: "connecting" | "open" | "closed"}).
//
// A page marks the jobs it started in any of three ways: an element with
// both data-job-id and data-job-watch, a cachegate:watch-job event on
// document with detail {id: "..."}, or window.cachegateLive.watchJob(id).
// window.cachegateLive.askJobs([ids]) asks for jobs' state once (a page
// rendered with a job running that may have ended before the socket
// opened).
// Watched ids live in sessionStorage, so the toast still comes when the
// job ends after a navigation. Topics other than the default (jobs and
// stats) are asked for with data-live-topics="jobs,stats,requests" on any
// element, or window.cachegateLive.subscribe([...]).
//
// Only a page that needs the socket opens one: one with #live-status,
// [data-job-id] or [data-live-topics], one with a watched job, or one
// that calls watchJob, subscribe or connect. A page that needs none (the
// sign-in form, a plain listing) holds no socket on the server.
(function () {
  'use strict';

  var WATCH_KEY = 'cachegate.watchJobs';
  var MIN_DELAY = 1000;
  var MAX_DELAY = 30000;
  var RATE_WINDOW = 10000; // ms of samples a job's rate is measured over

  var socket = null;
  var delay = MIN_DELAY;
  var retryTimer = 0;
  var topics = null; // null: the server's default
  var samples = {}; // job id -> [{t, n}], recent progress for the rate
  var seen = {}; // job id -> last state seen on this page
  var dismissed = {}; // job id -> its progress toast was closed on this page
  var watched = loadWatched();

  function loadWatched() {
    try {
      var ids = JSON.parse(sessionStorage.getItem(WATCH_KEY) || '[]');
      var out = {};
      ids.forEach(function (id) { out[id] = true; });
      return out;
    } catch (e) {
      return {};
    }
  }

  function saveWatched() {
    try {
      sessionStorage.setItem(WATCH_KEY, JSON.stringify(Object.keys(watched)));
    } catch (e) {
      // Storage off or full: the toast still works on this page.
    }
  }

  function watchJob(id) {
    if (!id) return;
    if (!watched[id]) {
      watched[id] = true;
      saveWatched();
    }
    ensureConnected();
  }

  var started = false;
  // ensureConnected opens the socket the first time something needs it;
  // after that, connect and retry keep it open.
  function ensureConnected() {
    if (started) return;
    started = true;
    connect();
  }

  function needed(root) {
    return !!(document.getElementById('live-status') ||
      root.querySelector('[data-job-id], [data-live-topics]') ||
      Object.keys(watched).length);
  }

  // scan watches the jobs marked in root and connects when root needs it.
  function scan(root) {
    root.querySelectorAll('[data-job-id][data-job-watch]').forEach(function (el) {
      watchJob(el.dataset.jobId);
    });
    var t = pageTopics();
    if (t) topics = t;
    if (needed(root)) ensureConnected();
  }

  function emit(name, detail) {
    document.dispatchEvent(new CustomEvent('cachegate:' + name, { detail: detail }));
  }

  // Connection indicator.

  function setStatus(state, text) {
    var el = document.getElementById('live-status');
    if (el) {
      el.dataset.state = state;
      el.textContent = text;
      el.title = state === 'open' ? 'Live updates are on' : 'Live updates are off: ' + text;
    }
    emit('connection', { state: state });
  }

  // Socket.

  function url() {
    var scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + location.host + '/ws';
  }

  function pageTopics() {
    var el = document.querySelector('[data-live-topics]');
    if (!el) return null;
    return el.dataset.liveTopics.split(',').map(function (s) { return s.trim(); }).filter(Boolean);
  }

  function sendTopics() {
    if (topics && socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ subscribe: topics }));
    }
  }

  function connect() {
    clearTimeout(retryTimer);
    setStatus('connecting', 'connecting…');
    var ws;
    try {
      ws = new WebSocket(url());
    } catch (e) {
      retry();
      return;
    }
    socket = ws;
    ws.addEventListener('open', function () {
      setStatus('open', 'live');
      sendTopics();
      catchUp();
    });
    ws.addEventListener('message', function (ev) {
      var msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      // A message proves the connection works: the next drop retries soon.
      delay = MIN_DELAY;
      handle(msg);
    });
    ws.addEventListener('close', function (ev) {
      if (socket !== ws) return;
      socket = null;
      retry(ev.reason);
    });
  }

  function retry(reason) {
    var wait = delay + Math.floor(Math.random() * delay / 2);
    delay = Math.min(delay * 2, MAX_DELAY);
    setStatus('closed', 'offline, retrying in ' + Math.round(wait / 1000) + ' s' + (reason ? ' (' + reason + ')' : ''));
    retryTimer = setTimeout(connect, wait);
  }

  // After a (re)connect the server sends the running jobs; a watched job
  // that ended while the socket was down is asked for over the socket
  // ({"jobs": [ids]}, at most JOBS_ASKED a message), which needs no more
  // than the socket's own sign-in. The answer is a job message, or
  // job_not_found for a job the server forgot.
  var JOBS_ASKED = 16;
  function catchUp() {
    askJobs(Object.keys(watched).filter(function (id) { return !ended(id); }));
  }

  // askJobs asks for the state of jobs now, when the socket is open (a
  // page that opens later asks on open anyway).
  function askJobs(ids) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    for (var i = 0; i < ids.length; i += JOBS_ASKED) {
      socket.send(JSON.stringify({ jobs: ids.slice(i, i + JOBS_ASKED) }));
    }
  }

  function ended(id) {
    return !!seen[id] && seen[id] !== 'running';
  }

  function handle(msg) {
    switch (msg.type) {
      case 'job':
        handleJob(msg.job);
        emit('job', msg);
        break;
      case 'stats':
        emit('stats', msg);
        break;
      case 'requests':
        // One event per request for simple listeners, the batch for
        // pages that render many at once.
        (msg.requests || []).forEach(function (r) {
          emit('request', { type: 'request', request: r });
        });
        emit('requests', msg);
        break;
      case 'job_not_found':
        if (watched[msg.job_id]) {
          delete watched[msg.job_id]; // forgotten by the server
          saveWatched();
        }
        break;
      case 'error':
        if (window.console) console.warn('cachegate /ws:', msg.error);
        break;
    }
  }

  // Jobs.

  function processed(job) {
    return (job.done || 0) + (job.failed || 0) + (job.skipped || 0);
  }

  // rate returns items per second: from the job's whole run once it has
  // ended, else from the progress seen over the last RATE_WINDOW.
  function rate(job) {
    if (job.finished) {
      var secs = (Date.parse(job.finished) - Date.parse(job.started)) / 1000;
      return secs > 0 ? processed(job) / secs : 0;
    }
    var now = Date.now();
    var s = samples[job.id] || (samples[job.id] = []);
    s.push({ t: now, n: processed(job) });
    while (s.length > 2 && now - s[0].t > RATE_WINDOW) s.shift();
    var first = s[0];
    var dt = (now - first.t) / 1000;
    if (dt > 0.2) return (processed(job) - first.n) / dt;
    // Too soon to measure here: the whole run's rate, as the server
    // renders it, rather than a blank.
    var run = (now - Date.parse(job.started)) / 1000;
    return run > 0.2 && processed(job) > 0 ? processed(job) / run : NaN;
  }

  function human(seconds) {
    if (!isFinite(seconds) || seconds < 0) return '—';
    seconds = Math.round(seconds);
    if (seconds < 60) return seconds + ' s';
    var m = Math.floor(seconds / 60);
    if (m < 60) return m + ' min ' + (seconds % 60) + ' s';
    var h = Math.floor(m / 60);
    if (h < 24) return h + ' h ' + (m % 60) + ' min';
    return Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
  }

  function num(n) {
    return Number(n || 0).toLocaleString();
  }

  function setField(root, name, text) {
    root.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) {
      el.textContent = text;
    });
  }

  function handleJob(job) {
    if (!job || !job.id) return;
    // An end is final: a running snapshot that overtook it on the way
    // (a catch-up answer and the stream cross) changes nothing.
    if (job.state === 'running' && ended(job.id)) return;
    if (job.state === 'running' && watched[job.id]) progressToast(job);
    var r = rate(job);
    var left = job.total - processed(job);
    var eta = job.state !== 'running' ? '—' : (job.total > 0 && r > 0 ? human(left / r) : '…');
    var sel = '[data-job-id="' + CSS.escape(job.id) + '"]';
    document.querySelectorAll(sel).forEach(function (root) {
      root.dataset.state = job.state;
      setField(root, 'done', num(job.done));
      setField(root, 'total', job.total > 0 ? num(job.total) : '?');
      setField(root, 'failed', num(job.failed));
      setField(root, 'skipped', num(job.skipped));
      setField(root, 'state', job.state);
      setField(root, 'rate', isFinite(r) ? (r < 10 ? r.toFixed(1) : num(Math.round(r))) + '/s' : '…');
      setField(root, 'eta', eta);
      root.querySelectorAll('progress[data-field="progress"]').forEach(function (p) {
        if (job.total > 0) {
          p.max = job.total;
          p.value = Math.min(processed(job), job.total);
        } else if (job.state === 'running') {
          p.removeAttribute('value'); // indeterminate until the total is known
        } else {
          p.max = 1;
          p.value = 1;
        }
      });
    });
    var before = seen[job.id];
    seen[job.id] = job.state;
    if (job.state !== 'running') {
      delete samples[job.id];
      if (watched[job.id] && before !== job.state) {
        delete watched[job.id];
        saveWatched();
        toast(job);
      }
    }
  }

  // Toasts.

  function jobName(job) {
    var what = job.kind ? job.kind.charAt(0).toUpperCase() + job.kind.slice(1) : 'Job';
    return job.target ? what + ' of ' + job.target : what;
  }

  function jobLink(job) {
    var link = document.createElement('a');
    link.href = '/jobs/' + encodeURIComponent(job.id);
    link.textContent = 'Details';
    link.dataset.testid = 'job-toast-link';
    return link;
  }

  function span(field, text) {
    var el = document.createElement('span');
    el.dataset.field = field;
    el.dataset.testid = 'job-toast-' + field;
    el.textContent = text;
    return el;
  }

  // toastFor returns the toast of a job on this page, or null.
  function toastFor(id) {
    var box = document.getElementById('toasts');
    return box ? box.querySelector('[data-testid="job-toast"][data-job-id="' + CSS.escape(id) + '"]') : null;
  }

  // progressToast shows a running job this page watches: a progress bar
  // and the fields handleJob fills (it carries data-job-id like any job
  // element). It stays until the job ends, then becomes the outcome.
  function progressToast(job) {
    if (toastFor(job.id) || dismissed[job.id]) return;
    var box = document.getElementById('toasts');
    if (!box) return;
    var t = document.createElement('div');
    t.className = 'toast';
    t.setAttribute('role', 'status');
    t.dataset.testid = 'job-toast';
    t.dataset.jobId = job.id;
    var body = document.createElement('div');
    body.className = 'toast-body';
    var title = document.createElement('div');
    title.className = 'job-toast-title';
    title.textContent = jobName(job);
    var bar = document.createElement('progress');
    bar.dataset.field = 'progress';
    bar.dataset.testid = 'job-toast-progress';
    var counts = document.createElement('div');
    counts.className = 'job-toast-counts';
    counts.append(span('done', '0'), ' of ', span('total', '?'), ' · ', span('rate', '…'), ' · ', span('eta', '…'), ' left · ');
    counts.append(jobLink(job));
    body.append(title, bar, counts);
    t.append(body, closeButton(t));
    box.append(t);
  }

  function closeButton(t) {
    var close = document.createElement('button');
    close.type = 'button';
    close.className = 'toast-close';
    close.setAttribute('aria-label', 'Dismiss');
    close.textContent = '\u00d7';
    close.addEventListener('click', function () {
      // A dismissed progress toast stays away; the outcome still comes.
      if (t.dataset.jobId) dismissed[t.dataset.jobId] = true;
      t.remove();
    });
    return close;
  }

  function outcome(job) {
    var what = jobName(job);
    var counts = num(job.done) + ' done, ' + num(job.failed) + ' failed';
    if (job.skipped) counts += ', ' + num(job.skipped) + ' skipped';
    if (job.total > 0) counts += ' of ' + num(job.total);
    switch (job.state) {
      case 'done':
        var extra = [];
        if (job.result && typeof job.result === 'object') {
          Object.keys(job.result).forEach(function (k) {
            if (typeof job.result[k] === 'number' && job.result[k] !== 0) extra.push(k.replace(/_/g, ' ') + ' ' + num(job.result[k]));
          });
        }
        return what + ' finished: ' + counts + (extra.length ? ' (' + extra.join(', ') + ')' : '') + '.';
      case 'cancelled':
        return what + ' was cancelled: ' + counts + '.';
      default:
        return what + ' failed: ' + (job.error || counts) + '.';
    }
  }

  // toast shows the outcome in #toasts, shaped like app.js's toasts (the
  // admin CSS styles .toast, .ok, .bad, .toast-body, .toast-close) with a
  // link to the job; the job's progress toast, when there is one, turns
  // into it. A success goes away by itself; a failure stays until
  // dismissed.
  function toast(job) {
    var box = document.getElementById('toasts');
    if (!box) return;
    if (!box.hasAttribute('aria-live')) box.setAttribute('aria-live', 'polite');
    var bad = job.state === 'failed' || job.failed > 0;
    var t = toastFor(job.id) || document.createElement('div');
    t.textContent = '';
    t.className = 'toast' + (job.state === 'done' && !bad ? ' ok' : bad ? ' bad' : '');
    t.setAttribute('role', bad ? 'alert' : 'status');
    t.dataset.testid = 'job-toast';
    t.dataset.jobId = job.id;
    t.dataset.state = job.state;
    var body = document.createElement('div');
    body.className = 'toast-body';
    var text = document.createElement('span');
    text.dataset.testid = 'job-toast-outcome';
    text.textContent = outcome(job) + ' ';
    body.append(text, jobLink(job));
    t.append(body, closeButton(t));
    if (!t.parentNode) box.append(t);
    if (!bad) setTimeout(function () { t.remove(); }, 10000);
  }

  // Start.

  var api = {
    watchJob: watchJob,
    subscribe: function (list) {
      topics = list.slice();
      sendTopics();
      ensureConnected();
    },
    connect: ensureConnected,
    askJobs: askJobs,
  };
  window.cachegateLive = api;
  if (window.cachegate) window.cachegate.live = api;
  document.addEventListener('cachegate:watch-job', function (ev) {
    if (ev.detail && ev.detail.id) watchJob(String(ev.detail.id));
  });
  // Content swapped in by htmx may carry a job the page just started.
  document.addEventListener('htmx:afterSettle', function (ev) {
    if (ev.target && ev.target.querySelectorAll) scan(ev.target);
  });

  function start() {
    scan(document);
  }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
