"use strict";
// The news feed panel: the deployment's mode, how many timeline entries
// fan-out wrote per post (write amplification), how long the latest posts
// took to reach every pushed follower, and a button that makes an account
// with many followers and posts from it, to watch the celebrity problem.
// Everything comes from the feed's own API on this origin.

const fd = {last: 0, wired: false, chart: null, series: new Series(2), prev: null};

function drawFeed(st) {
  const base = systemBase(st, "feed");
  document.getElementById("feed").hidden = !base;
  if (!base) return;
  if (!fd.wired) {
    fd.wired = true;
    document.getElementById("fd-app").href = base + "/app/";
    document.getElementById("fd-celeb").onclick = async () => {
      const followers = Number(document.getElementById("fd-followers").value) || 0;
      say("fd-msg", `making an account with ${followers} followers…`);
      const [ok, c, err] = await answerOf(await fetch(base + "/api/v1/celebrities", {method: "POST",
        headers: adminHeaders({"Content-Type": "application/json"}), body: JSON.stringify({followers})}));
      say("fd-msg", ok ? `@${c.user.handle} posted to ${c.followers} followers: ${c.pushed ? "pushed into each timeline" : "pulled by each reader (over the celebrity threshold)"}` : err);
      fd.last = 0;
    };
  }
  if (Date.now() - fd.last < 1000) return;
  fd.last = Date.now();
  fetch(base + "/api/v1/stats").then(answerOf).then(([ok, s]) => {
    if (!ok) return;
    const box = document.getElementById("fd-stats");
    box.dataset.posts = s.posts;
    box.innerHTML = `mode <b>${s.mode}</b> · hybrid pulls accounts with ≥ ${s.celebrity} followers ·
      ${s.posts} posts · ${s.timeline_entries} timeline entries written ·
      write amplification <b id="fd-amp">${s.write_amplification.toFixed(1)}</b> entries per post ·
      ${s.timeline_rebuilds} cold timelines rebuilt · ${s.fanout_in_flight} fan-outs in flight · ${s.live_listeners} live readers`;
    const now = Date.now() / 1000;
    if (fd.prev) {
      const dt = now - fd.prev.t;
      fd.series.push(now, (s.posts - fd.prev.posts) / dt, (s.timeline_entries - fd.prev.entries) / dt);
      if (!fd.chart) fd.chart = lineChart("fd-chart", ["posts/s", "timeline entries/s"], ["#457b9d", "#e76f51"]);
      fd.chart.setData(fd.series.data);
    }
    fd.prev = {t: now, posts: s.posts, entries: s.timeline_entries};
    const body = document.getElementById("fd-recent");
    const recent = (s.recent_fanouts || []).slice().reverse();
    body.innerHTML = recent.length ? "" : `<tr><td colspan="3" class="muted">no post fanned out here yet</td></tr>`;
    for (const v of recent) {
      const tr = document.createElement("tr");
      tr.dataset.targets = v.targets;
      tr.innerHTML = `<td>${v.post}</td><td class="num">${v.targets}</td><td class="num">${v.seconds < 1 ? (v.seconds * 1000).toFixed(0) + " ms" : v.seconds.toFixed(2) + " s"}</td>`;
      body.appendChild(tr);
    }
  }, () => {});
}
