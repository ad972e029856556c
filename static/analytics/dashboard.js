// The dashboard's "now" tiles: polled from admin/analytics/live/ every few seconds, no reload.
// A static file (the page's CSP allows no inline script); it only writes numbers into the
// elements the template rendered, so without JavaScript the page still shows the figures
// of its load.
(function () {
  "use strict";
  var EVERY_MS = 5000;
  var root = document.getElementById("analytics");
  if (!root) return;
  var url = root.getAttribute("data-live-url");
  var state = document.getElementById("live-state");

  function put(id, text) {
    var el = document.getElementById(id);
    if (!el) return;
    var target = el.querySelector("a") || el;
    target.textContent = text;
  }

  function show(live) {
    put("live-sockets", String(live.sockets));
    put("live-users", String(live.usersOnline));
    put("live-mpm", String(live.messagesLastMinute));
    put("live-mpm5", live.messagesPerMinute5m.toFixed(1));
    if (live.openReports !== null) put("live-reports", String(live.openReports));
    var p = live.delivery || {};
    put("live-p95", p.p95_seconds === null || p.p95_seconds === undefined ? "–" : Math.round(p.p95_seconds * 1000) + " ms");
    put("live-errors", p.error_rate === null || p.error_rate === undefined ? "–" : p.error_rate.toFixed(3));
    state.textContent = "live, updated " + new Date(live.at).toLocaleTimeString();
    state.classList.remove("stale");
    root.setAttribute("data-live-updates", String(Number(root.getAttribute("data-live-updates") || "0") + 1));
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(show)
      .catch(function (error) {
        state.textContent = "not updating: " + error.message;
        state.classList.add("stale");
      })
      .finally(function () {
        window.setTimeout(poll, EVERY_MS);
      });
  }
  window.setTimeout(poll, 0);
})();
