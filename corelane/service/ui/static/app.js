/* corelane image service page: live job list, job view and gallery. No framework, no CDN.
 * State arrives over Socket.IO (WebSocket transport only): a snapshot on (re)connect, then events.
 * Counts only grow while a job runs, so a late snapshot never moves a bar backwards.
 * The upload form lives in upload.js and hands each new job to window.corelanePage.jobCreated. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const jobs = new Map();          // job id -> job summary
  const items = new Map();         // item id -> item (current job only)
  const workers = Math.max(1, Number(document.body.dataset.workers) || 1);
  let currentJob = null;

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
  const NS = "http://www.w3.org/2000/svg";
  const ICONS = {
    trash: "M4 7h16M10 11v6M14 11v6M6 7l1 12a2 2 0 0 0 2 2h6a2 2 0 0 0 2-2l1-12M9 7V4h6v3",
    alert: "M12 3 2 20h20L12 3zM12 10v4M12 17.5v.5",
    spinner: "M12 3a9 9 0 1 0 9 9",
    clock: "M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM12 7v5l3 2",
    stop: "M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM8 8l8 8",
  };
  function icon(name) {
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24"); svg.setAttribute("aria-hidden", "true");
    const p = document.createElementNS(NS, "path");
    p.setAttribute("d", ICONS[name]); p.setAttribute("fill", "none"); p.setAttribute("stroke", "currentColor");
    p.setAttribute("stroke-width", "1.8"); p.setAttribute("stroke-linecap", "round"); p.setAttribute("stroke-linejoin", "round");
    svg.append(p);
    return svg;
  }
  const short = (id) => id.slice(0, 8);
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const fmtSecs = (s) => s == null ? "–" : s < 60 ? `${s.toFixed(s < 10 ? 1 : 0)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  const fmtBytes = (n) => n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} kB` : `${(n / 1048576).toFixed(1)} MB`;
  const isFinished = (s) => s === "done" || s === "failed" || s === "cancelled";
  function fmtWhen(ts) {
    if (!ts) return "";
    const d = new Date(ts * 1000), now = new Date();
    const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    if (d.toDateString() === now.toDateString()) return `today ${time}`;
    const opts = { day: "numeric", month: "short" };
    if (d.getFullYear() !== now.getFullYear()) opts.year = "numeric";
    return `${d.toLocaleDateString([], opts)}, ${time}`;
  }

  // ------------------------------------------------------------------ what a job's numbers mean
  function counts(j) {
    const total = j.total || 0, done = j.done || 0, failed = j.failed || 0, cancelled = j.cancelled || 0;
    const waiting = Math.max(0, total - done - failed - cancelled);
    const processing = j.state === "running" ? Math.min(workerShare(), waiting) : 0;
    return { total, done, failed, cancelled, processing, queued: waiting - processing };
  }
  // Running jobs take turns on the workers (runners/fair.py): each gets about an equal share.
  function workerShare() {
    let running = 0;
    for (const other of jobs.values()) {
      const left = (other.total || 0) - (other.done || 0) - (other.failed || 0) - (other.cancelled || 0);
      if (other.state === "running" && left > 0) running += 1;
    }
    return Math.max(1, Math.ceil(workers / Math.max(1, running)));
  }
  // The badge says how a job turned out: some images done and some failed is "partly done",
  // not "failed" (the job's stored state stays "failed" for the API).
  function outcome(j) {
    const c = counts(j);
    if (j.state === "failed" && c.done > 0) return { cls: "partial", text: "partly done" };
    if (j.state === "running") return { cls: "running", text: "processing" };
    return { cls: j.state, text: j.state };
  }
  function badge(j) {
    const o = outcome(j);
    return el("span", { class: `badge ${o.cls}`, "data-outcome": o.cls, text: o.text });
  }
  function makeBar() {
    return el("div", { class: "bar" });
  }
  function setBar(bar, j) {
    const c = counts(j);
    const pct = (n) => c.total ? `${(n * 100 / c.total).toFixed(2)}%` : "0%";
    // Widths through the CSSOM: the page's CSP forbids style attributes.
    const seg = (cls, n) => { const d = el("div", { class: `seg ${cls}` }); d.style.width = pct(n); return d; };
    bar.replaceChildren(seg("done", c.done), seg("failed", c.failed), seg("cancelled", c.cancelled),
      el("span", { class: "label", text: `${c.done} / ${c.total} done` }));
    const settled = c.done + c.failed + c.cancelled;
    bar.dataset.percent = String(c.total ? Math.round(settled * 100 / c.total) : 100);
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", String(c.total));
    bar.setAttribute("aria-valuenow", String(c.done));
    bar.setAttribute("aria-valuetext", `${c.done} of ${c.total} done, ${c.failed} failed`);
  }
  function countChips(box, j, withTiming) {
    const c = counts(j);
    const chip = (cls, text) => box.append(el("span", { class: cls, text }));
    chip("done", `${c.done} done`);
    if (c.failed) chip("failed", `${c.failed} failed`);
    if (c.cancelled) chip("cancelled", `${c.cancelled} cancelled`);
    if (c.processing) chip("processing", `${c.processing} processing`);
    if (c.queued) chip("queued", `${c.queued} queued`);
    // Jobs take turns on the workers; past the running ones, a job waits in line (its place).
    if (j.state === "queued" && j.queue_position) {
      chip("queued position", j.queue_position === 1 ? "next in line" : `#${j.queue_position} in line`);
    }
    if (!withTiming) return;
    if (j.state === "running") {
      if (j.rate) chip("plain", `${j.rate.toFixed(1)} img/s`);
      if (j.eta != null) chip("plain", `ETA ${fmtSecs(j.eta)}`);
    } else if (j.started_at && j.finished_at) {
      chip("plain", `took ${fmtSecs(j.finished_at - j.started_at)}`);
    }
  }

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

  socket.on("jobs_state", (msg) => {
    jobs.clear();
    for (const j of msg.jobs.slice().reverse()) mergeJob(j, true);
    renderJobs();
    if (currentJob && !jobs.has(currentJob)) closeJob();
  });
  for (const name of ["job_created", "job_finished", "job_failed", "job_cancelled", "job_queued"]) {
    socket.on(name, (msg) => {
      mergeJob(msg.job, true); renderJobs();
      if (msg.job_id === currentJob) { renderJobHead(); refreshPending(); notify(name); }
    });
  }
  socket.on("job_deleted", (msg) => forget(msg.job_id));
  socket.on("job_progress", (msg) => {
    const j = jobs.get(msg.job_id);
    if (!j) return;
    mergeJob(Object.assign({}, j, msg, { id: msg.job_id }));
    renderJobs();
    if (msg.job_id === currentJob) { renderJobHead(); refreshPending(); }
  });
  socket.on("job_state", (msg) => {
    if (msg.job_id !== currentJob) return;
    mergeJob(msg.job, true);
    items.clear();
    for (const it of msg.items) items.set(it.id, it);
    renderJobs(); renderJobHead(); renderGallery(); notify("job_state");
  });
  for (const name of ["item_done", "item_failed"]) {
    socket.on(name, (msg) => {
      if (msg.job_id !== currentJob) return;
      items.set(msg.item.id, msg.item);
      renderTile(msg.item);
      refreshPending();
    });
  }

  function mergeJob(j, authoritative) {
    const old = jobs.get(j.id);
    if (old && !authoritative && !isFinished(j.state)) {
      for (const k of ["done", "failed", "cancelled"]) j[k] = Math.max(j[k] || 0, old[k] || 0);
    }
    if (old && !authoritative && isFinished(old.state) && !isFinished(j.state)) j.state = old.state;
    if (old && old.state === "queued" && j.state !== "queued" && old.queue_position) {
      // It left the line (started, or cancelled): those behind it move up one place.
      for (const other of jobs.values()) {
        if (other.state === "queued" && other.queue_position > old.queue_position) other.queue_position -= 1;
      }
      j.queue_position = null;
    }
    jobs.set(j.id, Object.assign({}, old || {}, j));
  }
  function forget(id) {
    jobs.delete(id);
    if (id === currentJob) closeJob();
    renderJobs();
  }

  // ------------------------------------------------------------------ job list
  function renderJobs() {
    const list = $("job-list");
    const sorted = [...jobs.values()].sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
    if (!sorted.length) {
      list.replaceChildren(el("li", { class: "empty", text: "No jobs yet: drop some images." }));
      return;
    }
    list.replaceChildren(...sorted.map((j) => {
      const bar = makeBar(); setBar(bar, j);
      const view = el("button", { class: "small ghost", text: "View", "aria-label": `View job ${short(j.id)}` });
      view.onclick = () => selectJob(j.id);
      const zip = el("a", { class: "button small ghost", href: `/api/jobs/${j.id}/zip`, text: "ZIP" });
      if (!j.done) zip.hidden = true;
      const del = el("button", { class: "small ghost danger icon delete", "aria-label": `Delete job ${short(j.id)}`,
        title: j.state === "running" ? "Cancel the job before deleting it" : "Delete the job and its files" }, icon("trash"));
      del.disabled = j.state === "running";
      del.onclick = () => deleteJob(j.id);
      const box = el("div", { class: "counts" }); countChips(box, j, false);
      const when = el("span", { class: "when", text: fmtWhen(j.created_at), title: new Date((j.created_at || 0) * 1000).toLocaleString() });
      return el("li", { class: "job" + (j.id === currentJob ? " selected" : ""), "data-job": j.id, "data-state": j.state },
        el("div", { class: "title" }, el("strong", { text: plural(j.total || 0, "image") }), badge(j), when),
        el("div", { class: "btns" }, view, zip, del),
        bar, box);
    }));
  }

  // ------------------------------------------------------------------ job view
  // The duplicates view (duplicates.js) follows the open job through this event.
  function notify(why) {
    const j = currentJob && jobs.get(currentJob);
    document.dispatchEvent(new CustomEvent("corelane:job", { detail: { id: currentJob, state: j ? j.state : null, why } }));
  }
  function selectJob(id) {
    if (currentJob && currentJob !== id) socket.emit("leave", { job_id: currentJob });
    currentJob = id;
    items.clear();
    $("gallery").replaceChildren();
    $("job-view").hidden = false;
    history.replaceState(null, "", `#job=${id}`);
    socket.emit("join", { job_id: id });
    renderJobs(); renderJobHead(); notify("open");
    $("job-view").scrollIntoView({ behavior: "smooth", block: "start" });
  }
  function closeJob() {
    if (currentJob) socket.emit("leave", { job_id: currentJob });
    currentJob = null;
    items.clear();
    $("job-view").hidden = true;
    history.replaceState(null, "", location.pathname);
    renderJobs(); notify("close");
  }
  function renderJobHead() {
    const j = jobs.get(currentJob);
    if (!j) return;
    $("jv-id").textContent = short(j.id);
    $("jv-state").replaceWith(Object.assign(badge(j), { id: "jv-state" }));
    $("job-view").dataset.state = j.state;
    $("job-view").dataset.outcome = outcome(j).cls;
    const o = j.options || {};
    const fmt = (o.format || "").toUpperCase();
    const parts = [plural(j.total || 0, "image"), o.format === "png" ? "PNG (lossless)" : `${fmt} q${o.quality}`,
      `${(o.sizes || []).join(", ")} px`];
    if (o.crops && o.crops.length) parts.push(`crops ${o.crops.join(", ")}`);
    if (o.resize === "quality") parts.push("quality resize");
    parts.push(`features ${o.features ? "on" : "off"}`, `created ${fmtWhen(j.created_at)}`);
    if (j.finished_at) parts.push(`ended ${fmtWhen(j.finished_at)}`);
    $("jv-meta").textContent = parts.join(" · ");
    setBar($("jv-bar"), j);
    const s = $("jv-stats"); s.replaceChildren(); s.className = "stats counts";
    countChips(s, j, true);
    $("jv-cancel").disabled = isFinished(j.state);
    $("jv-retry").disabled = !isFinished(j.state) || !((j.failed || 0) + (j.cancelled || 0));
    $("jv-delete").disabled = j.state === "running";
    $("jv-delete").title = j.state === "running" ? "Cancel the job before deleting it" : "Delete the job and its files";
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
  // Which waiting images are on a worker right now: the runner hands them out in upload order,
  // one per worker, so the first ones of its share of the workers are processing, the rest queued.
  function pendingLabels() {
    const j = jobs.get(currentJob);
    const waiting = [...items.values()].filter((i) => i.state === "queued").sort((a, b) => a.idx - b.idx);
    const running = j && j.state === "running";
    return new Map(waiting.map((i, n) => [i.id, running && n < workerShare() ? "processing" : "queued"]));
  }
  function refreshPending() {
    const labels = pendingLabels();
    for (const node of document.querySelectorAll(".tile[data-state='queued']")) {
      const shown = labels.get(node.dataset.item) || "queued";
      if (node.dataset.shown !== shown) renderTile(items.get(node.dataset.item));
    }
  }

  function histogramSvg(h) {
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

  // How a picture sits in its 4:3 tile: each axis's scale against the tile (1 where it fits,
  // > 1 where cover-fit cuts it, < 1 where contain-fit letterboxes it, for pictures with alpha),
  // and the object-position that keeps the focal point as central as the picture's edges allow,
  // so a portrait's face is not cut off by the tile.
  function fit(aspect, contain, focal) {
    const r = aspect / (4 / 3);
    const alongX = (r >= 1) !== Boolean(contain);
    const sx = alongX ? r : 1, sy = alongX ? 1 : 1 / r;
    const shift = (v, s) => (s <= 1 ? 0.5 : Math.min(1, Math.max(0, (0.5 - v * s) / (1 - s))));
    return { sx, sy, px: focal ? shift(focal.x, sx) : 0.5, py: focal ? shift(focal.y, sy) : 0.5 };
  }
  // Where a point (0..1 of the picture) lands in the tile, in percent of the tile.
  const place = (v, s, p) => ((1 - s) * p + v * s) * 100;
  const FOCAL_SOURCE = { face: "a face", saliency: "the most salient region", center: "the centre (a flat picture)" };
  function focalMarks(focal, at) {
    const marks = [];
    for (const [x, y, w, h] of focal.faces || []) {
      const box = el("span", { class: "face-box", "aria-hidden": "true" });
      const left = place(x, at.sx, at.px), top = place(y, at.sy, at.py);
      box.style.left = `${left}%`; box.style.top = `${top}%`;
      box.style.width = `${place(x + w, at.sx, at.px) - left}%`; box.style.height = `${place(y + h, at.sy, at.py) - top}%`;
      marks.push(box);
    }
    const why = FOCAL_SOURCE[focal.source] || focal.source;
    const dot = el("span", { class: "focal", "data-source": focal.source, role: "img", "aria-label": `focal point: ${why}`,
      title: `Focal point (${focal.x.toFixed(2)}, ${focal.y.toFixed(2)}): ${why}; crops are centred here` });
    dot.style.left = `${Math.min(100, Math.max(0, place(focal.x, at.sx, at.px)))}%`;
    dot.style.top = `${Math.min(100, Math.max(0, place(focal.y, at.sy, at.py)))}%`;
    marks.push(dot);
    return marks;
  }
  // One small preview per crop ratio (the smallest output at least 96 px), linking to the
  // largest; the chip under it names the ratio.
  function cropStrip(item) {
    const strip = el("div", { class: "crops", "aria-label": "smart crops" });
    for (const [label, crop] of Object.entries(item.crops)) {
      const sizes = Object.keys(crop.outputs || {}).map(Number).sort((a, b) => a - b);
      if (!sizes.length) continue;
      const small = crop.outputs[sizes.find((s) => s >= 96) || sizes[sizes.length - 1]];
      const big = crop.outputs[sizes[sizes.length - 1]];
      const img = el("img", { alt: `${label} crop of ${item.name}`, loading: "lazy" });
      img.src = small.url;
      const [w, h] = label.split(":").map(Number);
      img.style.aspectRatio = `${w} / ${h}`;
      strip.append(el("a", { class: "crop", href: big.url, target: "_blank", rel: "noopener", "data-crop": label,
        title: `${label} crop around the focal point · ${sizes.map((s) => `${crop.outputs[s].width}×${crop.outputs[s].height}`).join(", ")}` },
      img, el("span", { text: label })));
    }
    return strip;
  }

  function tile(item) {
    const shown = item.state === "queued" ? (pendingLabels().get(item.id) || "queued") : item.state;
    const node = el("div", { class: `tile ${item.state}`, "data-item": item.id, "data-idx": String(item.idx),
      "data-state": item.state, "data-shown": shown });
    const hasAlpha = /A$/.test(item.mode || "") && item.output_format !== "jpeg";
    const thumb = el("div", { class: "thumb" + (hasAlpha ? " alpha" : "") });
    const sizes = Object.keys(item.outputs || {}).map(Number).sort((a, b) => a - b);
    const f = item.features;
    if (item.state === "done" && sizes.length) {
      // The smallest output that still fills a tile sharply; cover-fit, so no letterbox.
      const pick = sizes.find((s) => Math.max(item.outputs[s].width || s, item.outputs[s].height || s) >= 400) || sizes[sizes.length - 1];
      const aspect = item.width && item.height ? item.width / item.height : 4 / 3;
      const at = fit(aspect, hasAlpha, f && f.focal);
      const position = `${(at.px * 100).toFixed(1)}% ${(at.py * 100).toFixed(1)}%`;
      // The BlurHash placeholder shows at once; the image fades in over it when it has loaded.
      if (f && f.blurhash) {
        const canvas = el("canvas", { class: "blur", "aria-hidden": "true", "data-blurhash": f.blurhash });
        canvas.style.objectPosition = position;
        if (window.corelaneBlurhash && window.corelaneBlurhash.paint(canvas, f.blurhash, aspect)) thumb.append(canvas);
      }
      const img = el("img", { alt: item.name, loading: "lazy" });
      img.style.objectPosition = position;
      img.addEventListener("load", () => thumb.classList.add("loaded"));
      img.src = item.outputs[pick].url;
      thumb.append(img);
      if (f && f.focal) thumb.append(...focalMarks(f.focal, at));
    } else if (item.state === "failed") {
      thumb.append(icon("alert"));
    } else {
      const what = { processing: ["spinner", "processing…"], queued: ["clock", "queued"], cancelled: ["stop", "cancelled"] }[shown];
      thumb.append(el("span", { class: "placeholder" }, icon(what[0]), el("span", { text: what[1] })));
    }
    const body = el("div", { class: "body" }, el("div", { class: "name", title: item.name, text: item.name }));
    if (item.error) body.append(el("div", { class: "err", text: item.error }));
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
      // Each chip names the size actually produced; a small source is not upscaled, so two
      // requested sizes can give the same image, shown once.
      const links = el("div", { class: "row sizes" });
      const seen = new Map();
      for (const s of sizes.slice().reverse()) {
        const o = item.outputs[s];
        const real = o.width && o.height ? `${o.width}×${o.height}` : `${s} px`;
        if (seen.has(real)) { seen.get(real).push(s); continue; }
        seen.set(real, [s]);
        links.append(el("a", { href: o.url, target: "_blank", rel: "noopener", "data-size": String(s), text: real,
          title: `${fmtBytes(o.bytes || 0)} · asked for ${s} px long edge` }));
      }
      for (const a of links.children) {
        const asked = seen.get(a.textContent);
        if (asked.length > 1) a.title = `${a.title.split(" · ")[0]} · asked for ${asked.join(" and ")} px; the source is smaller`;
      }
      body.append(links);
    }
    if (item.crops && Object.keys(item.crops).length) body.append(cropStrip(item));
    node.append(thumb, body);
    return node;
  }

  // ------------------------------------------------------------------ actions
  async function call(method, url) {
    const r = await fetch(url, { method, headers: { Accept: "application/json" } });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) { alert((body.error && body.error.message) || r.statusText); return null; }
    return body;
  }
  async function post(url) {
    const j = await call("POST", url);
    if (j) { mergeJob(j, true); renderJobs(); renderJobHead(); }
    return j;
  }
  async function deleteJob(id) {
    const j = jobs.get(id);
    const what = j ? `${plural(j.total || 0, "image")} and every output` : "its files";
    if (!confirm(`Delete job ${short(id)}: ${what}? This cannot be undone.`)) return;
    if (await call("DELETE", `/api/jobs/${id}`)) forget(id);
  }
  $("jv-cancel").onclick = () => currentJob && post(`/api/jobs/${currentJob}/cancel`);
  $("jv-retry").onclick = async () => { if (currentJob && await post(`/api/jobs/${currentJob}/retry`)) socket.emit("join", { job_id: currentJob }); };
  $("jv-delete").onclick = () => currentJob && deleteJob(currentJob);
  $("jv-close").onclick = closeJob;
  $("jv-focal").onclick = () => {
    const on = $("jv-focal").getAttribute("aria-pressed") !== "true";
    $("jv-focal").setAttribute("aria-pressed", String(on));
    $("gallery").classList.toggle("show-focal", on);
  };
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && currentJob && !e.target.closest("input, select, textarea")) closeJob();
  });

  window.corelanePage = {
    fmtBytes, plural,
    jobCreated(job) { mergeJob(job, true); selectJob(job.id); },
    item: (id) => items.get(id),
    selectJob: (id) => selectJob(id),
    el,
  };
  const m = /job=([0-9a-f]{32})/.exec(location.hash);
  if (m) selectJob(m[1]);
})();
