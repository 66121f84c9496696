// cachegate admin UI: the little script the pages use. Every page works
// without it; it only saves clicks. No inline handlers: the page's CSP
// allows scripts from /static/ alone, so behaviour hangs off data-*
// attributes and classes here.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  function csrfToken() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }

  // toast shows a short message in #toasts; kind is "ok", "bad" or "".
  // Messages are text, never HTML.
  function toast(message, kind, timeoutMs) {
    var area = document.getElementById("toasts");
    if (!area) return null;
    var el = document.createElement("div");
    el.className = "toast" + (kind ? " " + kind : "");
    el.setAttribute("role", kind === "bad" ? "alert" : "status");
    el.setAttribute("data-testid", "toast");
    var body = document.createElement("div");
    body.className = "toast-body";
    body.textContent = message;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    close.addEventListener("click", function () { el.remove(); });
    el.appendChild(body);
    el.appendChild(close);
    area.appendChild(el);
    if (timeoutMs !== 0) {
      setTimeout(function () { el.remove(); }, timeoutMs || (kind === "bad" ? 10000 : 5000));
    }
    return el;
  }

  // The backend picker submits itself; without script its Go button does.
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t instanceof HTMLSelectElement && t.hasAttribute("data-autosubmit") && t.form) {
      t.form.requestSubmit ? t.form.requestSubmit() : t.form.submit();
    }
  });

  // Forms and buttons with data-confirm ask before they act.
  document.addEventListener("submit", function (e) {
    var f = e.target;
    var msg = f.getAttribute && f.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) e.preventDefault();
  }, true);

  // Times marked data-local show in the reader's time zone; the server
  // renders UTC so the page reads right without script too.
  function localTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) {
        t.title = t.textContent;
        t.textContent = d.toLocaleString();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () { localTimes(document); });

  // htmx: state-changing requests carry the CSRF token; failures become a
  // toast instead of a silent nothing.
  document.addEventListener("htmx:configRequest", function (e) {
    var token = csrfToken();
    if (token) e.detail.headers["X-CSRF-Token"] = token;
  });
  document.addEventListener("htmx:afterSwap", function (e) { localTimes(e.target); });
  document.addEventListener("htmx:responseError", function (e) {
    var x = e.detail.xhr;
    toast("The server answered " + x.status + (x.statusText ? " " + x.statusText : "") + "; nothing was changed.", "bad");
  });
  document.addEventListener("htmx:sendError", function () {
    toast("Could not reach cachegate; check that it is running.", "bad");
  });

  // A server answer can ask for a toast with the header
  //   HX-Trigger: {"cachegate:toast": {"message": "Deleted 3 entries", "kind": "ok"}}
  document.addEventListener("cachegate:toast", function (e) {
    var d = e.detail || {};
    if (d.message) toast(String(d.message), d.kind === "ok" || d.kind === "bad" ? d.kind : "");
  });

  // For the other scripts (live.js, pages added later).
  // bytes formats a size as the server does (humanize.IBytes): "512 B",
  // "1.5 KiB", "12 MiB".
  function bytes(n) {
    n = Math.max(0, n || 0);
    var units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if (n < 10) return n + " B";
    var e = Math.min(Math.floor(Math.log(n) / Math.log(1024)), units.length - 1);
    if (e === 0) return n + " B";
    var v = n / Math.pow(1024, e);
    return (v < 10 ? (Math.floor(v * 10 + 0.5) / 10).toFixed(1) : Math.floor(v + 0.5).toString()) + " " + units[e];
  }

  // plural is "1 entry" or "1,234 entries".
  function plural(n, one, many) {
    return Math.round(n || 0).toLocaleString("en-US") + " " + (n === 1 ? one : many);
  }

  window.cachegate = { toast: toast, csrfToken: csrfToken, bytes: bytes, plural: plural };
})();
