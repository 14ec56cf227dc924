// The statemachines console: no framework, no build step, nothing from the network but this server.
// 1. An instance page polls its fingerprint every second and reloads when the instance changed
//    (unless someone is typing in one of its forms: then it shows a "changed, reload" line).
// 2. Timer countdowns tick, measured from the server's clock at render time (the engine's clock
//    may not be the browser's).
"use strict";

(function () {
  const page = document.getElementById("instance");
  if (!page) return;

  const serverNow = Date.parse(page.dataset.now);
  const loadedAt = Date.now();

  function span(ms) {
    const overdue = ms < 0;
    let s = Math.floor(Math.abs(ms) / 1000);
    const parts = [];
    for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]]) {
      const n = Math.floor(s / size);
      s -= n * size;
      if (n) parts.push(n + unit);
    }
    return (overdue ? "overdue " : "") + (parts.slice(0, 2).join(" ") || "0s");
  }

  function tick() {
    const now = serverNow + (Date.now() - loadedAt);
    for (const el of document.querySelectorAll(".countdown[data-due]")) {
      el.textContent = span(Date.parse(el.dataset.due) - now);
    }
  }

  function typing() {
    const el = document.activeElement;
    return el && (el.tagName === "TEXTAREA" || el.tagName === "INPUT") && el.value !== "";
  }

  let stopped = false;
  // A form sent from this page changes the instance itself: the page its POST answers with
  // (and its notice) must not be replaced by a reload that the change triggers meanwhile.
  document.addEventListener("submit", () => { stopped = true; }, true);
  async function poll() {
    if (stopped) return;
    try {
      const r = await fetch(page.dataset.poll, { credentials: "same-origin", cache: "no-store" });
      if (r.ok) {
        const body = await r.json();
        if (stopped) return;
        if (body.fingerprint !== page.dataset.fingerprint) {
          if (typing()) {
            document.getElementById("refresh").hidden = false;
          } else {
            stopped = true;
            const url = new URL(window.location.href);
            url.searchParams.delete("done");
            window.location.replace(url.toString());
            return;
          }
        }
      }
    } catch (e) {
      // The server may be restarting: try again on the next round.
    }
    setTimeout(poll, 1000);
  }

  tick();
  setInterval(tick, 1000);
  setTimeout(poll, 1000);
})();
