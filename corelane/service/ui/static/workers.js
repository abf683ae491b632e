// The workers page: polls /api/workers every 2 s and redraws the table (textContent only).
"use strict";
(function () {
  const body = document.getElementById("workers-body");
  const mode = document.getElementById("mode");

  function cell(row, value) {
    const td = document.createElement("td");
    td.textContent = value === null || value === undefined ? "–" : String(value);
    row.appendChild(td);
  }

  function ago(ts) {
    const s = Math.max(0, Date.now() / 1000 - ts);
    return s < 1 ? "now" : `${s.toFixed(0)} s ago`;
  }

  async function refresh() {
    try {
      const res = await fetch("/api/workers", { credentials: "same-origin" });
      const data = await res.json();
      mode.textContent = `(${data.mode})`;
      body.replaceChildren();
      for (const w of data.workers) {
        const row = document.createElement("tr");
        [w.name, w.host, w.pid, w.kind, w.concurrency].forEach((v) => cell(row, v));
        cell(row, w.busy > 0 ? `busy (${w.busy})` : "idle");
        [w.done, w.failed].forEach((v) => cell(row, v));
        cell(row, ago(w.last_seen));
        body.appendChild(row);
      }
      if (!data.workers.length) {
        const row = document.createElement("tr");
        cell(row, "no worker is running");
        row.firstChild.colSpan = 9;
        body.appendChild(row);
      }
    } catch (err) {
      mode.textContent = "(unreachable)";
    }
  }

  refresh();
  setInterval(refresh, 2000);
})();
