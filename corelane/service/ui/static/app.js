/* corelane image service page: upload, live job list, job gallery. No framework, no CDN.
 * State arrives over Socket.IO (WebSocket transport only): a snapshot on (re)connect, then events.
 * Counts only grow while a job runs, so a late snapshot never moves a bar backwards. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const jobs = new Map();          // job id -> job summary
  const items = new Map();         // item id -> item (current job only)
  let currentJob = null;
  let picked = [];

  function el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) node.append(kid);
    return node;
  }
  const short = (id) => id.slice(0, 8);
  const fmtSecs = (s) => s == null ? "–" : s < 60 ? `${s.toFixed(s < 10 ? 1 : 0)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  const fmtBytes = (n) => n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} kB` : `${(n / 1048576).toFixed(1)} MB`;
  const isFinished = (s) => s === "done" || s === "failed" || s === "cancelled";

  // ------------------------------------------------------------------ socket
  const socket = io({ transports: ["websocket"], reconnectionDelayMax: 3000 });
  const conn = $("conn");
  socket.on("connect", () => {
    conn.dataset.state = "live";
    conn.dataset.transport = socket.io.engine.transport.name;
    $("conn-text").textContent = "live";
    socket.emit("subscribe_jobs");
    if (currentJob) socket.emit("join", { job_id: currentJob });
  });
  socket.on("disconnect", () => { conn.dataset.state = "offline"; $("conn-text").textContent = "reconnecting…"; });
  socket.on("connect_error", () => { conn.dataset.state = "offline"; $("conn-text").textContent = "offline"; });

  socket.on("jobs_state", (msg) => { for (const j of msg.jobs.slice().reverse()) mergeJob(j); renderJobs(); });
  for (const name of ["job_created", "job_finished", "job_failed", "job_cancelled", "job_queued"]) {
    socket.on(name, (msg) => { mergeJob(msg.job, true); renderJobs(); if (msg.job_id === currentJob) renderJobHead(); });
  }
  socket.on("job_progress", (msg) => {
    const j = jobs.get(msg.job_id);
    if (!j) return;
    mergeJob(Object.assign({}, j, msg, { id: msg.job_id }));
    renderJobs();
    if (msg.job_id === currentJob) renderJobHead();
  });
  socket.on("job_state", (msg) => {
    if (msg.job_id !== currentJob) return;
    mergeJob(msg.job, true);
    items.clear();
    for (const it of msg.items) items.set(it.id, it);
    renderJobs(); renderJobHead(); renderGallery();
  });
  for (const name of ["item_done", "item_failed"]) {
    socket.on(name, (msg) => {
      if (msg.job_id !== currentJob) return;
      items.set(msg.item.id, msg.item);
      renderTile(msg.item);
    });
  }

  function mergeJob(j, authoritative) {
    const old = jobs.get(j.id);
    if (old && !authoritative && !isFinished(j.state)) {
      for (const k of ["done", "failed", "cancelled"]) j[k] = Math.max(j[k] || 0, old[k] || 0);
    }
    if (old && !authoritative && isFinished(old.state) && !isFinished(j.state)) j.state = old.state;
    jobs.set(j.id, Object.assign({}, old || {}, j));
  }

  // ------------------------------------------------------------------ progress bars
  function setBar(bar, j) {
    const total = j.total || 0;
    const ok = total ? (j.done || 0) / total : 0;
    const bad = total ? ((j.failed || 0) + (j.cancelled || 0)) / total : 0;
    const fills = bar.querySelectorAll(".fill");
    fills[0].style.width = `${(ok * 100).toFixed(2)}%`;
    fills[1].style.width = `${(bad * 100).toFixed(2)}%`;
    const pct = total ? Math.round(((j.done || 0) + (j.failed || 0) + (j.cancelled || 0)) * 100 / total) : 100;
    bar.dataset.percent = String(pct);
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuenow", String(pct));
    bar.querySelector(".label").textContent = `${pct}%`;
  }
  function makeBar() {
    return el("div", { class: "bar" }, el("div", { class: "fill ok" }), el("div", { class: "fill bad" }), el("span", { class: "label" }));
  }
  function numbers(j) {
    const parts = [`${j.done || 0}/${j.total} done`];
    if (j.failed) parts.push(`${j.failed} failed`);
    if (j.cancelled) parts.push(`${j.cancelled} cancelled`);
    if (j.state === "running") {
      if (j.rate) parts.push(`${j.rate.toFixed(1)} img/s`);
      if (j.eta != null) parts.push(`ETA ${fmtSecs(j.eta)}`);
    } else if (j.started_at && j.finished_at) {
      parts.push(`took ${fmtSecs(j.finished_at - j.started_at)}`);
    }
    return parts.join(" · ");
  }

  // ------------------------------------------------------------------ job list
  function renderJobs() {
    const list = $("job-list");
    const sorted = [...jobs.values()].sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
    if (!sorted.length) return;
    list.replaceChildren(...sorted.map((j) => {
      const bar = makeBar(); setBar(bar, j);
      const view = el("button", { class: "small ghost", text: "View" });
      view.onclick = () => selectJob(j.id);
      const zip = el("a", { class: "button small ghost", href: `/api/jobs/${j.id}/zip`, text: "ZIP" });
      if (!j.done) zip.hidden = true;
      const li = el("li", { class: "job" + (j.id === currentJob ? " selected" : ""), "data-job": j.id, "data-state": j.state },
        el("div", { class: "title" }, el("code", { text: short(j.id) }), el("span", { class: `badge ${j.state}`, text: j.state }),
          el("span", { class: "muted", text: new Date((j.created_at || 0) * 1000).toLocaleTimeString() })),
        el("div", { class: "btns" }, view, zip),
        bar, el("div", { class: "nums", text: numbers(j) }));
      return li;
    }));
  }

  // ------------------------------------------------------------------ job view
  function selectJob(id) {
    if (currentJob && currentJob !== id) socket.emit("leave", { job_id: currentJob });
    currentJob = id;
    items.clear();
    $("gallery").replaceChildren();
    $("job-view").hidden = false;
    history.replaceState(null, "", `#job=${id}`);
    socket.emit("join", { job_id: id });
    renderJobs(); renderJobHead();
    $("job-view").scrollIntoView({ behavior: "smooth", block: "start" });
  }
  function renderJobHead() {
    const j = jobs.get(currentJob);
    if (!j) return;
    $("jv-id").textContent = short(j.id);
    const st = $("jv-state"); st.textContent = j.state; st.className = `badge ${j.state}`;
    $("job-view").dataset.state = j.state;
    const o = j.options || {};
    $("jv-meta").textContent = `${j.total} image(s) · sizes ${(o.sizes || []).join(", ")} px · ${(o.format || "").toUpperCase()} q${o.quality} · features ${o.features ? "on" : "off"}`;
    setBar($("jv-bar"), j);
    const s = $("jv-stats"); s.replaceChildren();
    const stat = (label, value) => s.append(el("span", null, `${label} `, el("b", { text: value })));
    stat("done", `${j.done || 0}/${j.total}`); stat("failed", String(j.failed || 0));
    if (j.cancelled) stat("cancelled", String(j.cancelled));
    if (j.state === "running") { stat("rate", j.rate ? `${j.rate.toFixed(1)} img/s` : "–"); stat("ETA", fmtSecs(j.eta)); }
    $("jv-cancel").disabled = isFinished(j.state);
    $("jv-retry").disabled = !isFinished(j.state) || !((j.failed || 0) + (j.cancelled || 0));
    const zip = $("jv-zip"); zip.href = `/api/jobs/${j.id}/zip`; zip.hidden = !(j.done > 0);
  }
  function renderGallery() {
    const sorted = [...items.values()].sort((a, b) => a.idx - b.idx);
    $("gallery").replaceChildren(...sorted.map(tile));
  }
  function renderTile(item) {
    const old = document.querySelector(`.tile[data-item="${item.id}"]`);
    const fresh = tile(item);
    if (old) old.replaceWith(fresh);
    else {
      const g = $("gallery");
      const after = [...g.children].find((c) => Number(c.dataset.idx) > item.idx);
      g.insertBefore(fresh, after || null);
    }
  }

  function histogramSvg(h) {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 100 40"); svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("class", "hist"); svg.setAttribute("aria-label", "colour histogram");
    const chans = [["r", "#e03131"], ["g", "#2f9e44"], ["b", "#1c7ed6"]];
    const peak = Math.max(1e-9, ...chans.flatMap(([c]) => h[c] || []));
    for (const [c, colour] of chans) {
      const vals = h[c] || []; if (!vals.length) continue;
      const step = 100 / vals.length;
      let d = `M0,40`;
      vals.forEach((v, i) => { d += ` L${(i * step + step / 2).toFixed(2)},${(40 - (v / peak) * 38).toFixed(2)}`; });
      d += ` L100,40 Z`;
      const p = document.createElementNS(NS, "path");
      p.setAttribute("d", d); p.setAttribute("fill", colour); p.setAttribute("fill-opacity", "0.22");
      p.setAttribute("stroke", colour); p.setAttribute("stroke-width", "0.6");
      svg.append(p);
    }
    return svg;
  }

  function tile(item) {
    const node = el("div", { class: `tile ${item.state}`, "data-item": item.id, "data-idx": String(item.idx), "data-state": item.state });
    const thumb = el("div", { class: "thumb" });
    const sizes = Object.keys(item.outputs || {}).map(Number).sort((a, b) => a - b);
    if (item.state === "done" && sizes.length) {
      const pick = sizes.find((s) => s >= 256) || sizes[sizes.length - 1];
      thumb.append(el("img", { src: item.outputs[pick].url, alt: item.name, loading: "lazy" }));
    } else if (item.state === "failed") {
      thumb.textContent = "⚠";
    } else {
      thumb.append(el("span", { class: "placeholder", text: item.state === "cancelled" ? "cancelled" : "processing…" }));
    }
    const body = el("div", { class: "body" }, el("div", { class: "name", title: item.name, text: item.name }));
    if (item.error) body.append(el("div", { class: "err", text: item.error }));
    const f = item.features;
    if (item.width) {
      body.append(el("div", { class: "row kv" }, el("b", { text: `${item.width}×${item.height}` }),
        ` ${item.format || ""}${item.mode ? " · " + item.mode : ""}${item.source_bytes ? " · " + fmtBytes(item.source_bytes) : ""}`));
    }
    if (f) {
      if (f.mean_color) {
        const mean = el("span", { class: "swatch big", title: `mean ${f.mean_color}` }); mean.style.background = f.mean_color;
        const row = el("div", { class: "row" }, mean, el("span", { class: "kv", text: f.mean_color }));
        const doms = el("span", { class: "row dominant" });
        for (const d of f.dominant_colors || []) {
          const sw = el("span", { class: "swatch", title: `${d.hex} · ${(d.fraction * 100).toFixed(0)}%` });
          sw.style.background = d.hex; doms.append(sw);
        }
        row.append(doms); body.append(row);
      }
      if (f.histogram) body.append(histogramSvg(f.histogram));
      const facts = el("dl", { class: "facts" });
      const fact = (k, v, cls) => { facts.append(el("dt", { text: k }), el("dd", { class: cls || null, text: v })); };
      fact("phash", f.phash || "–", "mono");
      fact("sharpness", f.sharpness != null ? Number(f.sharpness).toFixed(1) : "–");
      if (f.exif) {
        const camera = [f.exif.make, f.exif.model].filter(Boolean).join(" ");
        if (camera) fact("camera", camera, "exif");
        if (f.exif.taken) fact("taken", f.exif.taken.replace("T", " "), "exif");
      }
      body.append(facts);
    }
    if (sizes.length) {
      const links = el("div", { class: "row sizes" });
      for (const s of sizes.slice().reverse()) {
        const o = item.outputs[s];
        links.append(el("a", { href: o.url, target: "_blank", rel: "noopener", title: `${o.width}×${o.height} · ${fmtBytes(o.bytes)}`, text: `${s}px` }));
      }
      body.append(links);
    }
    node.append(thumb, body);
    return node;
  }

  // ------------------------------------------------------------------ actions
  async function post(url) {
    const r = await fetch(url, { method: "POST", headers: { Accept: "application/json" } });
    if (!r.ok) { const e = await r.json().catch(() => ({})); alert((e.error && e.error.message) || r.statusText); return null; }
    const j = await r.json(); mergeJob(j, true); renderJobs(); renderJobHead(); return j;
  }
  $("jv-cancel").onclick = () => currentJob && post(`/api/jobs/${currentJob}/cancel`);
  $("jv-retry").onclick = async () => { if (currentJob && await post(`/api/jobs/${currentJob}/retry`)) socket.emit("join", { job_id: currentJob }); };
  $("jv-close").onclick = () => { if (currentJob) socket.emit("leave", { job_id: currentJob }); currentJob = null; $("job-view").hidden = true; history.replaceState(null, "", "#"); renderJobs(); };

  // ------------------------------------------------------------------ upload
  const dz = $("dropzone"), input = $("file-input");
  function setPicked(files) {
    picked = [...files];
    const p = $("picked");
    p.hidden = !picked.length;
    const bytes = picked.reduce((n, f) => n + f.size, 0);
    p.textContent = `${picked.length} file(s) selected · ${fmtBytes(bytes)}`;
    $("start").disabled = !picked.length;
  }
  dz.addEventListener("click", (e) => { if (e.target.tagName !== "LABEL" && e.target !== input) input.click(); });
  dz.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  input.addEventListener("change", () => setPicked(input.files));
  for (const ev of ["dragenter", "dragover"]) dz.addEventListener(ev, (e) => { e.preventDefault(); dz.classList.add("over"); });
  for (const ev of ["dragleave", "drop"]) dz.addEventListener(ev, (e) => { e.preventDefault(); dz.classList.remove("over"); });
  dz.addEventListener("drop", (e) => { if (e.dataTransfer && e.dataTransfer.files.length) setPicked(e.dataTransfer.files); });
  $("opt-quality").addEventListener("input", (e) => { $("opt-quality-out").textContent = e.target.value; });

  $("options").addEventListener("submit", (e) => {
    e.preventDefault();
    if (!picked.length) return;
    const form = new FormData();
    for (const f of picked) form.append("files", f, f.name);
    form.append("sizes", $("opt-sizes").value);
    form.append("format", $("opt-format").value);
    form.append("quality", $("opt-quality").value);
    form.append("features", $("opt-features").checked ? "true" : "false");
    const err = $("upload-error"); err.hidden = true;
    const bar = $("upload-progress"); bar.hidden = false;
    $("start").disabled = true;
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/jobs");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (ev) => { if (ev.lengthComputable) bar.firstElementChild.style.width = `${(ev.loaded * 100 / ev.total).toFixed(1)}%`; };
    xhr.onloadend = () => {
      bar.hidden = true; bar.firstElementChild.style.width = "0";
      let body = {}; try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status === 202) {
        mergeJob(body, true); setPicked([]); input.value = ""; selectJob(body.id);
      } else {
        err.textContent = (body.error && body.error.message) || `upload failed (HTTP ${xhr.status || "network error"})`;
        err.hidden = false; $("start").disabled = !picked.length;
      }
    };
    xhr.send(form);
  });

  const m = /job=([0-9a-f]{32})/.exec(location.hash);
  if (m) selectJob(m[1]);
})();
