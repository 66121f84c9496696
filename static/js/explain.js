// Explain page: with htmx the form swaps #explain-out in place. htmx
// leaves 4xx answers unswapped; the page's 400 and 404 carry the readable
// message for the form, so they are swapped in like a result.
(function () {
  "use strict";
  document.addEventListener("htmx:beforeSwap", function (e) {
    var t = e.detail.target;
    var s = e.detail.xhr.status;
    if (t && t.id === "explain-out" && (s === 400 || s === 404)) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
})();
