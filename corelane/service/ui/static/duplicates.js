/* corelane image service page: the duplicates view of the open job. It asks
 * GET /api/jobs/{id}/duplicates when a job is opened, when its snapshot arrives and when it ends
 * (app.js says so with a "corelane:job" event), and on Refresh; it shows each group (exact copies:
 * the same bytes; near duplicates: perceptual hashes a few bits apart) with thumbnails, and the
 * images already seen in earlier jobs. A member's thumbnail scrolls to its tile in the gallery. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const page = window.corelanePage;
  const el = page.el;
  let jobId = null, jobState = null, asked = 0;

  function thumbOf(id, name) {
    const item = page.item(id);
    const outs = (item && item.outputs) || {};
    const sizes = Object.keys(outs).map(Number).sort((a, b) => a - b);
    const box = el("span", { class: "dup-thumb" });
    if (sizes.length) {
      const img = el("img", { alt: "", loading: "lazy" });
      img.src = outs[sizes.find((s) => s >= 96) || sizes[sizes.length - 1]].url;
      box.append(img);
    } else {
      box.textContent = (name || "?").slice(0, 1).toUpperCase();
    }
    return box;
  }
  function showTile(id) {
    const tile = document.querySelector(`.tile[data-item="${id}"]`);
    if (!tile) return;
    tile.scrollIntoView({ behavior: "smooth", block: "center" });
    tile.classList.remove("flash");
    void tile.offsetWidth;  // restart the animation
    tile.classList.add("flash");
  }

  function group(g, n) {
    const identical = new Map();  // id -> how many members share its bytes
    for (const ids of g.exact || []) for (const id of ids) identical.set(id, ids.length);
    const exact = g.kind === "exact";
    const head = el("div", { class: "dup-head" },
      el("span", { class: `badge ${exact ? "done" : "queued"}`, text: exact ? "exact copies" : "near duplicates" }),
      el("span", { class: "muted", text: exact ? `${g.items.length} identical files`
        : g.max_distance === 0 ? `${g.items.length} images · the same perceptual hash`
          : `${g.items.length} images · up to ${g.max_distance} bit${g.max_distance === 1 ? "" : "s"} apart` }));
    const list = el("ul", { class: "dup-members" });
    for (const m of g.items) {
      const btn = el("button", { type: "button", class: "dup-member", "data-item": m.id, title: `${m.name} · pHash ${m.phash} · show it in the gallery` },
        thumbOf(m.id, m.name), el("span", { class: "fname", text: m.name }));
      if (!exact && identical.get(m.id) > 1) btn.append(el("span", { class: "same", text: "same bytes" }));
      btn.onclick = () => showTile(m.id);
      list.append(el("li", null, btn));
    }
    return el("li", { class: "dup-group", "data-kind": g.kind, "aria-label": `group ${n + 1}` }, head, list);
  }
  function earlierList(earlier) {
    const list = el("ul", { class: "dup-earlier" });
    for (const e of earlier) {
      const matches = el("span", { class: "matches" });
      for (const m of e.matches) {
        const a = el("a", { href: `#job=${m.job_id}`, title: `open job ${m.job_id.slice(0, 8)}`,
          text: `${m.name} · job ${m.job_id.slice(0, 8)} · ${m.exact ? "identical file" : m.distance === 0 ? "same pHash" : `${m.distance} bits apart`}` });
        a.onclick = (ev) => { ev.preventDefault(); page.selectJob(m.job_id); };
        matches.append(a);
      }
      const name = el("button", { type: "button", class: "linkish", text: e.name, "data-item": e.item_id });
      name.onclick = () => showTile(e.item_id);
      list.append(el("li", null, name, matches));
    }
    return list;
  }

  function render(body) {
    const groups = body.groups || [], earlier = body.earlier || [];
    const inGroups = groups.reduce((n, g) => n + g.items.length, 0);
    const sofar = jobState === "running" || jobState === "queued" ? " so far" : "";
    $("dups-summary").textContent = groups.length
      ? `${groups.length} group${groups.length === 1 ? "" : "s"} · ${inGroups} images${sofar}`
      : `none in this job${sofar}`;
    const out = [];
    if (groups.length) out.push(el("ul", { class: "dup-groups" }, ...groups.map(group)));
    else out.push(el("p", { class: "muted empty", text: "No two finished images of this job look alike (pHash within " + body.radius + " bits)." }));
    if (earlier.length) {
      out.push(el("h4", { text: `Seen in earlier jobs · ${earlier.length}` }), earlierList(earlier));
    }
    $("dups-body").replaceChildren(...out);
    $("jv-dups").dataset.groups = String(groups.length);
  }

  async function load() {
    if (!jobId) return;
    const mine = ++asked, id = jobId;
    $("jv-dups").setAttribute("aria-busy", "true");
    try {
      const r = await fetch(`/api/jobs/${id}/duplicates`, { headers: { Accept: "application/json" } });
      const body = await r.json().catch(() => ({}));
      if (mine !== asked || id !== jobId) return;  // a newer request or another job since
      if (!r.ok) throw new Error((body.error && body.error.message) || r.statusText);
      render(body);
    } catch (err) {
      if (mine !== asked) return;
      $("dups-summary").textContent = "";
      $("dups-body").replaceChildren(el("p", { class: "error-box", text: `Duplicates: ${err.message}` }));
    } finally {
      if (mine === asked) $("jv-dups").removeAttribute("aria-busy");
    }
  }

  document.addEventListener("corelane:job", (ev) => {
    const { id, state, why } = ev.detail;
    if (id !== jobId) { $("dups-body").replaceChildren(); $("dups-summary").textContent = ""; delete $("jv-dups").dataset.groups; }
    jobId = id; jobState = state;
    if (id && why !== "job_queued") load();
  });
  $("dups-refresh").onclick = load;
})();
