// cachegate entry page: a live countdown to the entry's expiry and the
// copy-as-curl button. Without it the server's "in 5 min" stays and the
// command is selectable text.
(function () {
  "use strict";

  // span matches views.span: the largest whole unit, rounded down.
  function span(ms) {
    var s = Math.floor(ms / 1000);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 48 * 3600) return Math.floor(s / 3600) + " h";
    return Math.floor(s / 86400) + " d";
  }

  // expiry matches views.Expiry.
  function expiry(t, now) {
    var d = t - now;
    return d > 0 ? "in " + span(d) : "expired " + span(-d) + " ago";
  }

  // Elements are looked up on every tick: htmx swaps the page's content
  // after a revalidation, with a new expiry.
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(t)) el.textContent = expiry(t, now);
    });
  }

  document.addEventListener("DOMContentLoaded", tick);
  setInterval(tick, 1000);

  document.addEventListener("click", function (e) {
    var btn = e.target.closest && e.target.closest("[data-copy]");
    if (!btn) return;
    var src = document.querySelector(btn.getAttribute("data-copy"));
    if (!src) return;
    var toast = window.cachegate && window.cachegate.toast;
    if (!navigator.clipboard) {
      // Not a secure context: select the text for Ctrl+C instead.
      var range = document.createRange();
      range.selectNodeContents(src);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      if (toast) toast("Selected: press Ctrl+C (or Cmd+C) to copy.", "");
      return;
    }
    navigator.clipboard.writeText(src.textContent).then(function () {
      btn.textContent = "Copied";
      btn.setAttribute("data-copied", "");
      setTimeout(function () { btn.textContent = "Copy"; btn.removeAttribute("data-copied"); }, 2000);
    }, function () {
      if (toast) toast("Could not copy; select the command and copy it by hand.", "bad");
    });
  });
})();
