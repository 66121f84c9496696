// cachegate admin UI, Entries page: the bulk bar's conveniences. The
// page works without this file: the checkboxes post with the form, and a
// delete asks on a confirmation page. Here a dialog asks instead, the
// page's checkbox ticks every row, and the bar counts what is ticked.
// Listeners hang off document because htmx swaps the table.
(function () {
  "use strict";

  var bytes = window.cachegate.bytes, plural = window.cachegate.plural;

  function rowChecks() {
    return document.querySelectorAll('input[type=checkbox][name=key][form="bulk-form"]');
  }

  // selection says what the bulk form would act on: the ticked rows, or
  // all matching when that box is ticked and no row is.
  function selection(form) {
    var n = 0, size = 0;
    rowChecks().forEach(function (c) {
      if (c.checked) { n++; size += parseInt(c.getAttribute("data-size"), 10) || 0; }
    });
    if (n > 0) return { n: n, bytes: size, what: "the ticked entries" };
    var all = form.querySelector('input[name=all]');
    if (all && all.checked) {
      return { n: parseInt(form.getAttribute("data-total"), 10) || 0,
        bytes: parseInt(form.getAttribute("data-total-bytes"), 10) || 0, what: "all matching entries" };
    }
    return null;
  }

  function updateCount() {
    var form = document.getElementById("bulk-form");
    if (!form) return;
    var out = form.querySelector(".bulk-selected");
    var s = selection(form);
    if (out) out.textContent = s ? plural(s.n, "entry", "entries") + " (" + bytes(s.bytes) + ") selected" : "";
  }

  document.addEventListener("change", function (e) {
    var t = e.target;
    if (!(t instanceof HTMLInputElement) || t.type !== "checkbox") return;
    if (t.classList.contains("select-page")) {
      rowChecks().forEach(function (c) { c.checked = t.checked; });
    }
    if (t.classList.contains("select-page") || t.name === "key" || t.name === "all") updateCount();
  });

  // Delete asks in a dialog with the count and bytes; confirming posts
  // with confirm=yes, which skips the server's confirmation page.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!(form instanceof HTMLFormElement) || form.id !== "bulk-form") return;
    var btn = e.submitter;
    if (!btn || !btn.hasAttribute("data-bulk-delete")) return;
    var dialog = document.getElementById("delete-dialog");
    var s = selection(form);
    // Nothing selected: let the server say so.
    if (!s || !dialog || typeof dialog.showModal !== "function") return;
    e.preventDefault();
    dialog.querySelector('[data-testid="delete-dialog-text"]').textContent =
      "Delete " + plural(s.n, "entry", "entries") + " (" + bytes(s.bytes) + "), " + s.what + "? This cannot be undone.";
    dialog.returnValue = "";
    dialog.addEventListener("close", function onClose() {
      dialog.removeEventListener("close", onClose);
      if (dialog.returnValue !== "confirm") return;
      var c = document.createElement("input");
      c.type = "hidden";
      c.name = "confirm";
      c.value = "yes";
      form.appendChild(c);
      form.action = btn.formAction;
      form.submit();
    });
    dialog.showModal();
  });

  document.addEventListener("htmx:afterSwap", updateCount);

  // The header's backend picker carries the page's query in hidden
  // fields, drawn with the page; after htmx changed the view (and the
  // address), picking a backend must keep the new view, not the old one.
  function syncPicker() {
    var picker = document.querySelector('form.picker');
    if (!picker) return;
    picker.querySelectorAll('input[type=hidden]').forEach(function (i) { i.remove(); });
    var first = picker.firstChild;
    new URLSearchParams(location.search).forEach(function (value, name) {
      if (["backend", "next", "prev", "deleted", "freed", "job"].indexOf(name) >= 0) return;
      var i = document.createElement("input");
      i.type = "hidden";
      i.name = name;
      i.value = value;
      picker.insertBefore(i, first);
    });
  }
  document.addEventListener("htmx:pushedIntoHistory", syncPicker);
})();
