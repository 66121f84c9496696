// jobs.js keeps the Jobs pages current. live.js moves the progress bars
// of running jobs over /ws; this script swaps in the server's card of a
// job when it ends (so the outcome shows as the server renders it) and
// adds the card of a job started while the list is open. Without it the
// pages are right as of their loading; a reload brings them up to date.
(function () {
  'use strict';

  var pending = {}; // job id -> a card fetch is under way

  function cards(id) {
    return document.querySelectorAll('article[data-testid="job"][data-job-id="' + CSS.escape(id) + '"]');
  }

  // fetchCard asks the server for a job's card and hands it to place.
  function fetchCard(id, detail, place) {
    var key = id + '/' + detail;
    if (pending[key]) return;
    pending[key] = true;
    fetch('/jobs/' + encodeURIComponent(id) + '/card?detail=' + detail, { credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var tpl = document.createElement('template');
        tpl.innerHTML = html;
        var card = tpl.content.querySelector('article[data-testid="job"]');
        if (card) {
          place(card);
          document.dispatchEvent(new CustomEvent('cachegate:job-card', { detail: { id: id, state: card.dataset.state } }));
        }
      })
      .catch(function () { /* offline: the next message or a reload catches up */ })
      .then(function () { delete pending[key]; });
  }

  document.addEventListener('cachegate:job', function (ev) {
    var job = ev.detail && ev.detail.job;
    if (!job || !job.id) return;
    var found = cards(job.id);
    if (found.length === 0) {
      var list = document.querySelector('[data-jobs-list]');
      if (!list) return;
      fetchCard(job.id, 'false', function (card) {
        if (cards(job.id).length) return;
        list.prepend(card);
        var empty = document.querySelector('[data-jobs-empty]');
        if (empty) empty.remove();
      });
      return;
    }
    if (job.state === 'running') return;
    found.forEach(function (card) {
      // The class is the state the server rendered; live.js has already
      // set data-state to the new one.
      if (!card.classList.contains('job-running')) return;
      fetchCard(job.id, card.dataset.detail || 'false', function (fresh) {
        if (card.isConnected) card.replaceWith(fresh);
      });
    });
  });

  // A job that ended between the page's rendering and the socket opening
  // sends no more messages by itself: ask for the running ones' state.
  document.addEventListener('cachegate:connection', function (ev) {
    if (!ev.detail || ev.detail.state !== 'open' || !window.cachegateLive) return;
    var ids = [];
    document.querySelectorAll('article.job-running[data-job-id]').forEach(function (c) { ids.push(c.dataset.jobId); });
    if (ids.length) window.cachegateLive.askJobs(ids);
  });
})();
