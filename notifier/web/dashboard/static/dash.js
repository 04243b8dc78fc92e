// notifier dashboard: the only script. It refreshes the parts of a page marked data-poll="URL" every
// data-every milliseconds (the counts, the timeline), until the campaign is finished or cancelled; the last
// refresh shows the end. A fresh part may carry its own data-every: the server slows the polling of counts that
// take long to read. It may also carry <template data-swap="ID">: fresh content for the element of that id
// elsewhere on the page (the campaign's actions, the simulated date). Everything works without it.
(function () {
  "use strict";
  // The page's own state badge follows the phase the fresh counts report.
  function badge(el) {
    var fresh = el.querySelector("[data-testid=phase]");
    var top = document.getElementById("state");
    // Only a change is written, so a screen reader announces the new phase once (the badge is aria-live).
    if (fresh && top && top.textContent !== fresh.textContent) {
      top.textContent = fresh.textContent; top.className = fresh.className;
    }
  }
  // Fresh content a part brought for other places of the page; only a change is written, so a button someone is
  // about to press stays the same element.
  function swap(el) {
    var parts = el.querySelectorAll("template[data-swap]");
    for (var i = 0; i < parts.length; i++) {
      var target = document.getElementById(parts[i].getAttribute("data-swap"));
      if (target && target.innerHTML !== parts[i].innerHTML) { target.innerHTML = parts[i].innerHTML; }
      parts[i].parentNode.removeChild(parts[i]);
    }
  }
  function poll(el) {
    var every = parseInt(el.getAttribute("data-every") || "3000", 10);
    var url = el.getAttribute("data-poll");
    var timer = null;
    function final() {
      var body = el.querySelector("[data-phase]");
      var phase = body ? body.getAttribute("data-phase") : "";
      return phase === "finished" || phase === "cancelled";
    }
    function refresh() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" }, cache: "no-store" })
        .then(function (r) {
          if (r.redirected || r.status === 401) { window.location.reload(); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== undefined) {
            el.innerHTML = html; badge(el); swap(el);
            var told = el.querySelector("[data-every]");
            if (told) { every = parseInt(told.getAttribute("data-every"), 10) || every; }
          }
          if (!final()) { timer = setTimeout(refresh, every); }
          else { document.dispatchEvent(new CustomEvent("notifier:final")); }
        })
        .catch(function () { timer = setTimeout(refresh, every * 2); });
    }
    if (!final()) { timer = setTimeout(refresh, every); }
    // When one part sees the end, the others fetch theirs at once.
    document.addEventListener("notifier:final", function () {
      if (!final()) { clearTimeout(timer); refresh(); }
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var els = document.querySelectorAll("[data-poll]");
    for (var i = 0; i < els.length; i++) { poll(els[i]); }
  });
})();
