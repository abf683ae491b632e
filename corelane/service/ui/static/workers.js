// The workers page: polls /api/workers every 2 s and redraws the table (textContent only).
"use strict";
(function () {
  const body = document.getElementById("workers-body");
  const mode = document.getElementById("mode");

  const labels = [...document.querySelectorAll("table.workers th")].map((th) => th.textContent);

  function cell(row, value, cls) {
    const td = document.createElement("td");
    td.dataset.label = labels[row.children.length] || "";
    td.textContent = value === null || value === undefined ? "–" : String(value);
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function ago(ts) {
    const s = Math.max(0, Date.now() / 1000 - ts);
    return s < 1 ? "now" : `${s.toFixed(0)} s ago`;
  }

  async function refresh() {
    try {
      const res = await fetch("/api/workers", { credentials: "same-origin" });
      const data = await res.json();
      if (!res.ok) throw new Error((data.error && data.error.message) || res.statusText);
      mode.textContent = data.mode === "celery" ? "Celery workers" : "this machine";
      body.replaceChildren();
      for (const w of data.workers) {
        const row = document.createElement("tr");
        cell(row, w.name, "name");
        [w.host, w.pid, w.kind].forEach((v) => cell(row, v));
        cell(row, w.concurrency, "num");
        const state = cell(row, "");
        const badge = document.createElement("span");
        badge.className = `badge ${w.busy > 0 ? "running" : "idle"}`;
        badge.textContent = w.busy > 0 ? `busy · ${w.busy}` : "idle";
        state.appendChild(badge);
        [w.done, w.failed].forEach((v) => cell(row, v, "num"));
        cell(row, ago(w.last_seen));
        body.appendChild(row);
      }
      if (!data.workers.length) {
        const row = document.createElement("tr");
        cell(row, "no worker is running").colSpan = 9;
        body.appendChild(row);
      }
    } catch (err) {
      mode.textContent = `unreachable: ${err.message}`;
    }
  }

  refresh();
  setInterval(refresh, 2000);
})();
