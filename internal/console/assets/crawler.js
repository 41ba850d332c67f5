"use strict";
// The crawler panel: start a crawl, watch its pages per second and its
// queues, pause, resume or stop it, see which instances hold which share
// of the hosts, and search the pages it stored. Everything comes from the
// crawler's own API on this origin.

const cr = {last: 0, wired: false, chart: null, series: new Series(1), chartOf: ""};

function drawCrawler(st) {
  const base = systemBase(st, "crawler");
  document.getElementById("crawler").hidden = !base;
  if (!base) return;
  if (!cr.wired) {
    cr.wired = true;
    document.getElementById("cr-start").onclick = async () => {
      const seeds = document.getElementById("cr-seeds").value.split(/\s+/).filter(Boolean);
      const resp = await fetch(base + "/api/v1/crawls", {method: "POST", headers: adminHeaders({"Content-Type": "application/json"}),
        body: JSON.stringify({seeds, delay_ms: Number(document.getElementById("cr-delay").value) || 0,
          max_pages: Number(document.getElementById("cr-max").value) || 0, max_per_pattern: 30, fetchers: 16})});
      const [ok, body, err] = await answerOf(resp);
      say("cr-msg", ok ? `crawl ${body.id} started` : err);
      cr.last = 0;
    };
    document.getElementById("cr-search").onclick = async () => {
      const id = document.getElementById("cr-search-crawl").value;
      if (!id) { say("cr-msg", "no crawl to search"); return; }
      const q = document.getElementById("cr-q").value;
      const [ok, pages, err] = await answerOf(await fetch(base + `/api/v1/crawls/${id}/pages?limit=20&q=` + encodeURIComponent(q)));
      const body = document.getElementById("cr-pages");
      body.innerHTML = "";
      if (!ok) { say("cr-msg", err); return; }
      body.dataset.count = pages.length;
      for (const p of pages) {
        const tr = document.createElement("tr");
        tr.innerHTML = `<td>${escapeHTML(p.url)}</td><td>${escapeHTML(p.title || "")}</td><td class="num">${p.status}</td>
          <td class="num">${p.bytes}</td><td>${escapeHTML(p.duplicate ? p.duplicate + " duplicate" : "")}</td>`;
        body.appendChild(tr);
      }
    };
  }
  if (Date.now() - cr.last < 1000) return;
  cr.last = Date.now();
  fetch(base + "/api/v1/instances").then(answerOf).then(([ok, b]) => {
    if (!ok) return;
    const body = document.getElementById("cr-instances");
    body.innerHTML = "";
    for (const m of b.members) {
      const tr = document.createElement("tr");
      tr.dataset.shards = m.shards;
      const ago = ((Date.parse(st.at) - Date.parse(m.heartbeat)) / 1000).toFixed(1);
      tr.innerHTML = `<td>${escapeHTML(m.instance)}${m.instance === b.instance ? " <span class=\"muted\">(this one)</span>" : ""}</td>
        <td class="num">${m.shards} of ${b.shards}</td><td class="num">${ago} s ago</td>`;
      body.appendChild(tr);
    }
  }, () => {});
  fetch(base + "/api/v1/crawls").then(answerOf).then(async ([ok, list]) => {
    if (!ok) return;
    const body = document.getElementById("cr-crawls");
    body.innerHTML = list.length ? "" : `<tr><td colspan="10" class="muted">no crawl yet</td></tr>`;
    for (const c of list.slice(0, 6)) {
      const s = c.stats || {};
      const errors = Object.entries(s.errors_by_kind || {}).map(([k, v]) => `${v} ${k}`).join(", ");
      const tr = document.createElement("tr");
      tr.dataset.crawl = c.id;
      tr.dataset.state = c.state;
      tr.dataset.pages = c.pages;
      tr.innerHTML = `<td>${c.id}</td><td class="${c.state === "done" ? "leader" : c.state === "stopped" ? "down" : ""}">${c.state}</td>
        <td class="num">${c.pages}</td><td class="num">${c.urls_queued}</td><td class="num">${c.urls_skipped}</td>
        <td class="num">${c.exact_duplicates} / ${c.near_duplicates}</td><td class="num">${s.pages_per_s ? s.pages_per_s.toFixed(1) : "—"}</td>
        <td class="num">${s.robots_skipped ?? "—"}</td><td>${escapeHTML(errors)}</td>
        <td>${["running", "paused"].includes(c.state) ? `<button data-op="${c.state === "paused" ? "resume" : "pause"}">${c.state === "paused" ? "resume" : "pause"}</button> <button data-op="stop">stop</button>` : ""}</td>`;
      for (const b of tr.querySelectorAll("button")) {
        b.onclick = async () => {
          const [ok2, , err] = await answerOf(await fetch(base + `/api/v1/crawls/${c.id}/${b.dataset.op}`, {method: "POST", headers: adminHeaders()}));
          say("cr-msg", ok2 ? `crawl ${c.id}: ${b.dataset.op}` : err);
          cr.last = 0;
        };
      }
      body.appendChild(tr);
    }
    const newest = list[0];
    if (!newest) return;
    document.getElementById("cr-search-crawl").value = newest.id;
    if (cr.chartOf !== newest.id) { cr.chartOf = newest.id; cr.series = new Series(1); }
    cr.series.push(Date.now() / 1000, newest.pages);
    if (!cr.chart) cr.chart = lineChart("cr-chart", ["pages stored"], ["#457b9d"]);
    cr.chart.setData(cr.series.data);
    const [vok, v] = await answerOf(await fetch(base + `/api/v1/crawls/${newest.id}?hosts=1`));
    if (!vok || !v.stats) return;
    const hosts = Object.entries(v.stats.queue_by_host || {}).sort((a, b) => b[1] - a[1]).slice(0, 10);
    const qb = document.getElementById("cr-hosts");
    qb.innerHTML = hosts.length ? "" : `<tr><td colspan="2" class="muted">nothing queued here</td></tr>`;
    for (const [h, n] of hosts) {
      const tr = document.createElement("tr");
      tr.innerHTML = `<td>${escapeHTML(h)}</td><td class="num">${n}</td>`;
      qb.appendChild(tr);
    }
  }, () => {});
}
