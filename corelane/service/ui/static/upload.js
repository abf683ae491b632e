/* corelane image service page: the upload form. Chosen or dropped files gather in a preview list
 * (each removable before the start), the Start button says what it will do, and the upload shows
 * its percent, speed and bytes. A new job goes to app.js through window.corelanePage. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const page = window.corelanePage;
  const picked = [];               // {file, url, key}
  const PREVIEW_MAX = 200;         // thumbnails made for the first N files only (memory)
  let uploading = false;

  const keyOf = (f) => `${f.name}\u0000${f.size}\u0000${f.lastModified}`;
  function removeIcon() {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24"); svg.setAttribute("aria-hidden", "true");
    const p = document.createElementNS(NS, "path");
    p.setAttribute("d", "M6 6l12 12M18 6 6 18"); p.setAttribute("stroke", "currentColor");
    p.setAttribute("stroke-width", "2.2"); p.setAttribute("stroke-linecap", "round");
    svg.append(p);
    return svg;
  }

  function addFiles(files) {
    if (uploading) return;  // the running upload would clear them on success
    const known = new Set(picked.map((p) => p.key));
    for (const file of files) {
      const key = keyOf(file);
      if (known.has(key)) continue;
      known.add(key);
      const url = picked.length < PREVIEW_MAX && file.type.startsWith("image/") ? URL.createObjectURL(file) : null;
      picked.push({ file, url, key });
    }
    render();
  }
  function removeAt(i) {
    const [gone] = picked.splice(i, 1);
    if (gone && gone.url) URL.revokeObjectURL(gone.url);
    render();
  }
  function clearAll() {
    for (const p of picked) if (p.url) URL.revokeObjectURL(p.url);
    picked.length = 0;
    $("file-input").value = "";
    render();
  }

  function render() {
    const list = $("picked-list");
    list.replaceChildren(...picked.map((p, i) => {
      const li = document.createElement("li");
      li.dataset.name = p.file.name;
      const thumb = p.url ? Object.assign(document.createElement("img"), { src: p.url, alt: "" }) : document.createElement("span");
      if (!p.url) thumb.className = "noimg";
      const name = Object.assign(document.createElement("span"), { className: "fname", textContent: p.file.name, title: p.file.name });
      const size = Object.assign(document.createElement("span"), { className: "fsize", textContent: page.fmtBytes(p.file.size) });
      const rm = Object.assign(document.createElement("button"), { type: "button", className: "remove" });
      rm.setAttribute("aria-label", `Remove ${p.file.name}`);
      rm.append(removeIcon());
      rm.disabled = uploading;  // the list is what is being sent
      rm.onclick = (e) => { e.stopPropagation(); removeAt(i); };
      li.append(thumb, name, size, rm);
      return li;
    }));
    const bytes = picked.reduce((n, p) => n + p.file.size, 0);
    $("picked").hidden = !picked.length;
    $("picked-summary").textContent = `${page.plural(picked.length, "image")} · ${page.fmtBytes(bytes)}`;
    $("picked-clear").hidden = uploading;
    updateStart();
  }
  function updateStart() {
    const start = $("start");
    if (uploading) return;
    start.disabled = !picked.length;
    start.textContent = picked.length ? `Upload and process ${page.plural(picked.length, "image")}` : "Choose images to start";
  }

  // ------------------------------------------------------------------ choosing files
  const dz = $("dropzone"), input = $("file-input");
  dz.addEventListener("click", (e) => { if (e.target.tagName !== "LABEL" && e.target !== input) input.click(); });
  dz.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
  for (const ev of ["dragenter", "dragover"]) dz.addEventListener(ev, (e) => { e.preventDefault(); dz.classList.add("over"); });
  for (const ev of ["dragleave", "drop"]) dz.addEventListener(ev, (e) => { e.preventDefault(); dz.classList.remove("over"); });
  dz.addEventListener("drop", (e) => { if (e.dataTransfer && e.dataTransfer.files.length) addFiles(e.dataTransfer.files); });
  $("picked-clear").onclick = clearAll;

  // ------------------------------------------------------------------ options
  const quality = $("opt-quality"), qualityOut = $("opt-quality-out"), format = $("opt-format");
  function syncQuality() {
    const lossless = format.value === "png";
    quality.disabled = lossless;
    quality.closest("label").classList.toggle("off", lossless);
    qualityOut.textContent = lossless ? "lossless" : quality.value;
  }
  quality.addEventListener("input", syncQuality);
  format.addEventListener("change", syncQuality);
  syncQuality();

  // Crops: the preset chips toggle their ratio in the text field, which also takes any W:H.
  const crops = $("opt-crops");
  const CROPS_OK = /^\s*(\d{1,4}\s*:\s*\d{1,4}\s*(,\s*\d{1,4}\s*:\s*\d{1,4}\s*)*)?,?\s*$/;
  const ratios = () => crops.value.split(",").map((r) => r.replace(/\s+/g, "")).filter(Boolean);
  function syncCrops() {
    const have = new Set(ratios());
    for (const chip of document.querySelectorAll("#crop-presets .chip")) chip.setAttribute("aria-pressed", String(have.has(chip.dataset.ratio)));
    crops.setCustomValidity(CROPS_OK.test(crops.value) ? "" : "write ratios as W:H, comma-separated (e.g. 1:1,16:9)");
    clearFieldError();
  }
  // A message about a field goes once that field is put right.
  function clearFieldError() {
    const err = $("upload-error");
    if (err.dataset.field && $(err.dataset.field).checkValidity()) { err.hidden = true; delete err.dataset.field; }
  }
  $("opt-sizes").addEventListener("input", clearFieldError);
  for (const chip of document.querySelectorAll("#crop-presets .chip")) {
    chip.addEventListener("click", () => {
      const list = ratios(), at = list.indexOf(chip.dataset.ratio);
      if (at >= 0) list.splice(at, 1); else list.push(chip.dataset.ratio);
      crops.value = list.join(",");
      syncCrops();
    });
  }
  crops.addEventListener("input", syncCrops);
  syncCrops();

  // ------------------------------------------------------------------ upload
  function showProgress(loaded, total, started) {
    const secs = Math.max(0.001, (performance.now() - started) / 1000);
    const pct = total ? (loaded * 100) / total : 0;
    const box = $("upload-progress");
    box.querySelector(".fill").style.width = `${pct.toFixed(1)}%`;
    box.dataset.percent = pct.toFixed(0);
    $("upload-text").textContent = !loaded ? `Starting the upload of ${page.fmtBytes(total)}…`
      : loaded >= total ? `Uploaded ${page.fmtBytes(total)} · checking the images…`
      : `Uploading ${pct.toFixed(0)}% · ${page.fmtBytes(loaded)} of ${page.fmtBytes(total)} · ${page.fmtBytes(loaded / secs)}/s`;
    $("start").textContent = `Uploading… ${pct.toFixed(0)}%`;
  }

  $("options").addEventListener("submit", (e) => {
    e.preventDefault();
    if (!picked.length || uploading) return;
    const err = $("upload-error");
    // Say what is wrong before sending megabytes the server would refuse (the form is
    // novalidate so the message lands here, where it can be read, not in a bubble).
    const bad = [...$("options").elements].find((f) => f.willValidate && !f.checkValidity());
    if (bad) {
      const name = { "opt-sizes": "Sizes", "opt-crops": "Smart crops" }[bad.id] || bad.name;
      err.textContent = `${name}: ${bad.validity.patternMismatch ? "use whole numbers separated by commas" : bad.validationMessage}`;
      err.hidden = false;
      err.dataset.field = bad.id;
      bad.focus();
      return;
    }
    const form = new FormData();
    for (const p of picked) form.append("files", p.file, p.file.name);
    form.append("sizes", $("opt-sizes").value);
    form.append("format", format.value);
    form.append("quality", quality.value);
    form.append("features", $("opt-features").checked ? "true" : "false");
    form.append("crops", ratios().join(","));
    form.append("resize", $("opt-resize").value);
    err.hidden = true;
    const box = $("upload-progress"); box.hidden = false;
    uploading = true;
    $("start").disabled = true;
    render();
    const started = performance.now();
    const total = picked.reduce((n, p) => n + p.file.size, 0);
    showProgress(0, total, started);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/jobs");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (ev) => { if (ev.lengthComputable) showProgress(ev.loaded, ev.total, started); };
    xhr.onloadend = () => {
      uploading = false;
      render();
      box.hidden = true; box.querySelector(".fill").style.width = "0";
      let body = {}; try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status === 202) {
        clearAll();
        page.jobCreated(body);
      } else {
        err.textContent = (body.error && body.error.message) || `upload failed (HTTP ${xhr.status || "network error"})`;
        err.hidden = false;
        updateStart();
      }
    };
    xhr.send(form);
  });
})();
