"use strict";
// The shortener, albums and shop panels. Each drives its system through
// the system's own public API on this origin (with the admin token where
// the system asks for one) and charts the system's own metrics from the
// console's state: nothing here is simulated.

const panelHistory = 120; // samples kept per chart, one a second

function systemBase(st, name) {
  const s = st.systems.find(x => x.name === name);
  return s ? s.base_url : null;
}
// ownRate is a counter's rate per second in the last sample (0 when the
// system does not export it yet), summed over the series whose labels
// contain every given "k=v".
function ownRate(st, system, name, ...labels) {
  const s = st.systems.find(x => x.name === system);
  let sum = 0;
  for (const m of (s && s.own) || []) {
    if (m.name === name && labels.every(l => (m.labels || "").split(",").includes(l))) sum += m.rate || 0;
  }
  return sum;
}
function escapeHTML(t) {
  return String(t).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function adminHeaders(extra) {
  return Object.assign({"Authorization": "Bearer " + tokenInput.value.trim()}, extra || {});
}
function say(id, text) { document.getElementById(id).textContent = text; }
async function answerOf(resp) {
  const body = await resp.json().catch(() => ({}));
  return [resp.ok, body, resp.ok ? "" : (body.error || body.msg || ("HTTP " + resp.status))];
}
// Series is a rolling set of lines for one uPlot chart.
class Series {
  constructor(n) { this.data = Array.from({length: n + 1}, () => []); }
  push(t, ...ys) {
    if (this.data[0].length && this.data[0][this.data[0].length - 1] >= t) return;
    this.data[0].push(t);
    ys.forEach((y, i) => this.data[i + 1].push(y));
    if (this.data[0].length > panelHistory) this.data.forEach(d => d.shift());
  }
}
function lineChart(el, labels, colours, width) {
  return new uPlot({width: width || 420, height: 160, series: [{}, ...labels.map((l, i) => ({label: l, stroke: colours[i], width: 2}))]},
    Array.from({length: labels.length + 1}, () => []), document.getElementById(el));
}

// ---- shortener ------------------------------------------------------------

const sh = {chart: null, refs: null, series: new Series(2), selected: null, made: null, lastTop: 0};

function drawShortener(st) {
  const base = systemBase(st, "shortener");
  document.getElementById("shortener").hidden = !base;
  if (!base) return;
  if (!sh.chart) sh.chart = lineChart("sh-clicks-chart", ["recorded/s", "counted/s"], ["#457b9d", "#2a9d8f"]);
  const t = Math.floor(new Date(st.at).getTime() / 1000);
  sh.series.push(t, ownRate(st, "shortener", "click_events_recorded_total"), ownRate(st, "shortener", "click_events_counted_total"));
  sh.chart.setData(sh.series.data);
  if (Date.now() - sh.lastTop > 2000) {
    sh.lastTop = Date.now();
    refreshTopLinks(base);
  }
}

async function refreshTopLinks(base) {
  const body = document.getElementById("sh-top");
  if (!tokenInput.value.trim()) {
    body.innerHTML = `<tr><td colspan="3" class="muted">enter the admin token to list them</td></tr>`;
  } else {
    const [ok, out, err] = await answerOf(await fetch(base + "/api/v1/links?limit=10", {headers: adminHeaders()}));
    if (!ok) {
      body.innerHTML = `<tr><td colspan="3" class="down">${escapeHTML(err)}</td></tr>`;
    } else {
      body.innerHTML = "";
      for (const l of out.links) {
        const tr = document.createElement("tr");
        tr.dataset.code = l.code;
        tr.dataset.clicks = l.clicks;
        tr.style.cursor = "pointer";
        tr.innerHTML = `<td><a href="${escapeHTML(l.short_url)}" target="_blank">${escapeHTML(l.code)}</a></td><td class="num">${l.clicks}</td><td>${escapeHTML(l.url.slice(0, 48))}</td>`;
        tr.onclick = e => { if (e.target.tagName !== "A") { sh.selected = l.code; refreshReferrers(base); } };
        body.appendChild(tr);
      }
      if (!sh.selected && out.links.length) sh.selected = out.links[0].code;
    }
  }
  refreshReferrers(base);
}

async function refreshReferrers(base) {
  if (!sh.selected) return;
  const [ok, st] = await answerOf(await fetch(base + "/api/v1/links/" + encodeURIComponent(sh.selected) + "/stats"));
  if (!ok) return;
  const el = document.getElementById("sh-selected");
  el.textContent = `${sh.selected} (${st.clicks} clicks counted)`;
  el.dataset.clicks = st.clicks;
  const refs = st.top_referrers.length ? st.top_referrers : [{host: "(none yet)", clicks: 0}];
  const hosts = refs.map(r => r.host || "(direct)");
  if (sh.refs) sh.refs.destroy();
  sh.refs = new uPlot({width: 360, height: 160, legend: {show: false}, scales: {x: {time: false, range: [-0.5, hosts.length - 0.5]}},
    axes: [{values: (u, splits) => splits.map(i => Number.isInteger(i) ? hosts[i] || "" : ""), incrs: [1]}, {}],
    series: [{}, {label: "clicks", fill: "#457b9d", stroke: "#457b9d", paths: uPlot.paths.bars({size: [0.6, 80]}), points: {show: false}}]},
    [hosts.map((_, i) => i), refs.map(r => r.clicks)], document.getElementById("sh-ref-chart"));
}

document.getElementById("sh-create").onclick = async () => {
  const base = systemBase(lastState, "shortener");
  const [ok, out, err] = await answerOf(await fetch(base + "/api/v1/links", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({url: document.getElementById("sh-url").value.trim()})}));
  if (!ok) { say("sh-msg", err); return; }
  sh.made = out;
  sh.selected = out.code;
  document.getElementById("sh-made").innerHTML = `<a id="sh-short" href="${escapeHTML(out.short_url)}" target="_blank">${escapeHTML(out.short_url)}</a>`;
  document.getElementById("sh-click").disabled = false;
  say("sh-msg", "");
};
document.getElementById("sh-click").onclick = async () => {
  // Each fetch is one redirect the shortener serves and counts; the page
  // does not follow it ("manual"), so example.com is never asked.
  for (let i = 0; i < 20; i++) await fetch(sh.made.short_url, {redirect: "manual", cache: "no-store"});
  say("sh-msg", "20 clicks sent: recorded now, counted once the click consumer has flushed them");
};

// ---- albums ---------------------------------------------------------------

const al = {chart: null, series: new Series(2), album: null, lastList: 0, polling: false};

function drawAlbums(st) {
  const base = systemBase(st, "albums");
  document.getElementById("albums").hidden = !base;
  if (!base) return;
  if (!al.chart) al.chart = lineChart("al-chart", ["likes", "dislikes"], ["#2a9d8f", "#e63946"]);
  if (al.album && !al.polling) {
    al.polling = true;
    fetch(base + "/api/v1/albums/" + al.album.albumId + "/reviews").then(answerOf).then(([ok, c]) => {
      al.polling = false;
      if (!ok) return;
      al.series.push(Math.floor(Date.now() / 1000), c.likes, c.dislikes);
      al.chart.setData(al.series.data);
      const el = document.getElementById("al-counts");
      el.textContent = `${c.likes} likes · ${c.dislikes} dislikes (counted)`;
      el.dataset.likes = c.likes;
    }, () => { al.polling = false; });
  }
  if (Date.now() - al.lastList > 3000) {
    al.lastList = Date.now();
    fetch(base + "/api/v1/albums?limit=5").then(answerOf).then(([ok, out]) => {
      if (!ok) return;
      const body = document.getElementById("al-list");
      body.innerHTML = "";
      for (const a of out.albums) {
        const tr = document.createElement("tr");
        tr.innerHTML = `<td><img src="${escapeHTML(a.imageUrl)}" alt="" style="height:28px"></td><td>${escapeHTML(a.artist)} — ${escapeHTML(a.title)} (${a.year})</td>`;
        tr.style.cursor = "pointer";
        tr.onclick = () => showAlbum(a);
        body.appendChild(tr);
      }
    });
  }
}

function showAlbum(a) {
  if (!al.album || al.album.albumId !== a.albumId) al.series = new Series(2);
  al.album = a;
  const img = document.getElementById("al-img");
  img.src = a.imageUrl;
  img.hidden = false;
  document.getElementById("al-like").disabled = document.getElementById("al-dislike").disabled = false;
}

// A picture for an upload when no file is chosen: drawn here, sent as PNG.
function drawnImage() {
  const c = document.createElement("canvas");
  c.width = c.height = 160;
  const g = c.getContext("2d");
  g.fillStyle = "#1d3557"; g.fillRect(0, 0, 160, 160);
  g.fillStyle = "#f4a261"; g.beginPath(); g.arc(80, 80, 50, 0, 2 * Math.PI); g.fill();
  g.fillStyle = "#fff"; g.font = "bold 22px sans-serif"; g.fillText(new Date().toLocaleTimeString(), 18, 150);
  return new Promise(resolve => c.toBlob(resolve, "image/png"));
}

document.getElementById("al-upload").onclick = async () => {
  const base = systemBase(lastState, "albums"), v = id => document.getElementById(id).value.trim();
  const file = document.getElementById("al-image").files[0] || await drawnImage();
  const form = new FormData();
  form.append("profile", JSON.stringify({artist: v("al-artist"), title: v("al-title"), year: Number(v("al-year"))}));
  form.append("image", file, file.name || "drawn.png");
  const [ok, out, err] = await answerOf(await fetch(base + "/api/v1/albums", {method: "POST", body: form}));
  if (!ok) { say("al-msg", err); return; }
  say("al-msg", `album ${out.albumId}: ${out.imageSize} bytes stored`);
  const [gotIt, album] = await answerOf(await fetch(base + "/api/v1/albums/" + out.albumId));
  if (gotIt) showAlbum(album);
  al.lastList = 0;
};
for (const kind of ["like", "dislike"]) {
  document.getElementById("al-" + kind).onclick = async () => {
    const base = systemBase(lastState, "albums");
    const [ok, , err] = await answerOf(await fetch(base + "/api/v1/albums/" + al.album.albumId + "/reviews/" + kind, {method: "POST"}));
    say("al-msg", ok ? kind + " accepted (on the broker; counted when the consumer applies it)" : err);
  };
}

// ---- shop -----------------------------------------------------------------

const shop = {chart: null, series: new Series(3), cart: null, lastProducts: 0};

function drawShop(st) {
  const base = systemBase(st, "shop");
  document.getElementById("shop").hidden = !base;
  if (!base) return;
  if (!shop.chart) shop.chart = lineChart("shop-chart", ["paid/s", "pending/s", "out of stock/s"], ["#2a9d8f", "#f4a261", "#6d597a"], 380);
  const t = Math.floor(new Date(st.at).getTime() / 1000);
  const pending = ["pending_unavailable", "pending_timeout", "pending_internal"].reduce((s, o) => s + ownRate(st, "shop", "checkouts_total", "outcome=" + o), 0);
  shop.series.push(t, ownRate(st, "shop", "checkouts_total", "outcome=paid"), pending, ownRate(st, "shop", "checkouts_total", "outcome=out_of_stock"));
  shop.chart.setData(shop.series.data);
  const deps = document.getElementById("shop-deps");
  deps.innerHTML = "";
  const s = st.shop || {dependencies: []};
  for (const d of s.dependencies) {
    const f = s.faults && s.faults[d.name];
    const tr = document.createElement("tr");
    tr.id = "shop-dep-" + d.name;
    tr.dataset.breaker = d.breaker;
    tr.dataset.stalled = f ? f.stalled : "";
    const colour = d.breaker === "open" ? "down" : d.breaker === "half-open" ? "muted" : "leader";
    tr.innerHTML = `<td>${escapeHTML(d.name)}</td><td class="${colour}">${escapeHTML(d.breaker)}</td><td>${f ? (f.stalled ? "stalled" : "healthy") : ""}</td>
      <td>${f ? `<button>${f.stalled ? "release" : "stall"}</button>` : ""}</td>`;
    const b = tr.querySelector("button");
    if (b) b.onclick = () => control(`console/shop/${d.name}/${f.stalled ? "release" : "stall"}`, null, "shop-msg");
    deps.appendChild(tr);
  }
  if (s.downstream) {
    const x = s.downstream;
    say("shop-down", `downstream: ${x.reservations} reservations, ${x.charges} charges, ${x.stalledRequests} requests met a stall (${x.abandonedInStall} abandoned by the shop)`);
  }
  if (Date.now() - shop.lastProducts > 3000) {
    shop.lastProducts = Date.now();
    refreshProducts(base);
  }
}

async function refreshProducts(base) {
  const [ok, out] = await answerOf(await fetch(base + "/api/v1/products?limit=8"));
  if (!ok) return;
  const body = document.getElementById("shop-products");
  body.innerHTML = out.products.length ? "" : `<tr><td colspan="4" class="muted">no products yet: add one (admin token)</td></tr>`;
  for (const p of out.products) {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td>${escapeHTML(p.name)}</td><td class="num">${(p.price_cents / 100).toFixed(2)}</td><td class="num">${p.stock}</td><td><button>add to cart</button></td>`;
    tr.querySelector("button").onclick = () => addToCart(base, p);
    body.appendChild(tr);
  }
}

async function addToCart(base, p) {
  if (!shop.cart) {
    const [ok, cart, err] = await answerOf(await fetch(base + "/api/v1/carts", {method: "POST"}));
    if (!ok) { say("shop-msg", err); return; }
    shop.cart = cart;
  }
  const [ok, cart, err] = await answerOf(await fetch(base + "/api/v1/carts/" + shop.cart.cartId + "/items", {method: "POST",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({productId: p.productId, quantity: 1})}));
  if (!ok) { say("shop-msg", err); return; }
  shop.cart = cart;
  const el = document.getElementById("shop-cart");
  el.textContent = cart.items.map(i => `${i.quantity} × ${i.name}`).join(", ") + ` — ${(cart.totalCents / 100).toFixed(2)}`;
  document.getElementById("shop-checkout").disabled = false;
}

document.getElementById("shop-checkout").onclick = async () => {
  const base = systemBase(lastState, "shop");
  const key = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());
  const started = performance.now();
  const resp = await fetch(base + "/api/v1/carts/" + shop.cart.cartId + "/checkout", {method: "POST", headers: {"Idempotency-Key": key}});
  const [ok, order, err] = await answerOf(resp);
  const ms = (performance.now() - started).toFixed(0);
  const el = document.getElementById("shop-order");
  el.dataset.state = ok ? order.state : "refused";
  el.textContent = ok ? `order ${order.orderId}: ${order.state}${order.reason ? " (" + order.reason + ")" : ""} in ${ms} ms`
    : `checkout ${resp.status} in ${ms} ms: ${err}`;
  if (ok || resp.status === 409) {
    shop.cart = null;
    document.getElementById("shop-cart").textContent = "empty";
    document.getElementById("shop-checkout").disabled = true;
  }
  shop.lastProducts = 0;
};
document.getElementById("shop-add-product").onclick = async () => {
  const base = systemBase(lastState, "shop");
  const [ok, p, err] = await answerOf(await fetch(base + "/api/v1/products", {method: "POST", headers: adminHeaders({"Content-Type": "application/json"}),
    body: JSON.stringify({name: document.getElementById("shop-pname").value.trim(), category: "console",
      price_cents: Number(document.getElementById("shop-price").value), stock: 100})}));
  say("shop-msg", ok ? `product ${p.productId} added` : err);
  shop.lastProducts = 0;
};

// ---- chat -----------------------------------------------------------------

const chat = {chart: null, lastStats: 0};

function drawChat(st) {
  const base = systemBase(st, "chat");
  if (!base || Date.now() - chat.lastStats < 1000) return;
  chat.lastStats = Date.now();
  fetch(base + "/api/v1/stats").then(answerOf).then(([ok, s]) => {
    if (!ok) return;
    if (!chat.chart) chat.chart = new uPlot({width: 420, height: 160, series: [{}, {label: "messages/s", stroke: "#457b9d", width: 2}]},
      [[], []], document.getElementById("chat-chart"));
    chat.chart.setData([s.perSecond.map(p => Date.parse(p.second) / 1000), s.perSecond.map(p => p.messages)]);
    const body = document.getElementById("chat-rooms");
    body.innerHTML = s.topRooms.length ? "" : `<tr><td colspan="3" class="muted">no messages in the last minute</td></tr>`;
    for (const r of s.topRooms) {
      const tr = document.createElement("tr");
      tr.dataset.room = r.roomId;
      tr.dataset.messages = r.messages;
      tr.innerHTML = `<td>${escapeHTML(r.roomId)}</td><td class="num">${r.messages}</td><td class="num">${(r.messages / s.windowSeconds).toFixed(2)}</td>`;
      body.appendChild(tr);
    }
  }, () => {});
}

// ---- lb ---------------------------------------------------------------------

const lbp = {chart: null, ids: "", series: null};

function drawLB(st) {
  const s = st.lb;
  document.getElementById("lb").hidden = !s;
  if (!s) return;
  document.getElementById("lb-title").textContent = `lb — the load balancer, policy ${s.policy}, ${s.backends.length} backends`;
  const ids = s.backends.map(b => b.id).join(" ");
  if (ids !== lbp.ids) { // the set changed: a new chart, one line per backend
    lbp.ids = ids;
    if (lbp.chart) lbp.chart.destroy();
    lbp.series = new Series(s.backends.length);
    lbp.chart = new uPlot({width: 640, height: 160, series: [{}, ...s.backends.map((b, i) => ({label: b.id, stroke: colours[i % colours.length], width: 2}))]},
      lbp.series.data, document.getElementById("lb-chart"));
  }
  lbp.series.push(Math.floor(new Date(st.at).getTime() / 1000), ...s.backends.map(b => b.in_flight));
  lbp.chart.setData(lbp.series.data);
  const body = document.getElementById("lb-backends");
  body.innerHTML = "";
  for (const b of s.backends) {
    const tr = document.createElement("tr");
    tr.dataset.state = b.state;
    tr.dataset.id = b.id;
    const cls = b.state === "up" ? "leader" : "down";
    tr.innerHTML = `<td>${escapeHTML(b.url)}</td><td class="${cls}">${escapeHTML(b.state)}${b.ejected_until ? " until " + new Date(b.ejected_until).toLocaleTimeString() : ""}</td>
      <td class="num">${b.weight}</td><td class="num">${b.in_flight}</td><td class="num">${b.requests}</td><td class="num">${b.failures}</td>
      <td class="num">${b.ewma_ms.toFixed(2)} ms</td><td class="num">${(100 * b.slow_start).toFixed(0)} %</td>
      <td><button>${b.state === "draining" ? "undrain" : "drain"}</button></td>`;
    tr.querySelector("button").onclick = async () => {
      // The balancer's own admin API, on the port this page is served from.
      const resp = await fetch("../admin/backends/" + encodeURIComponent(b.id) + "/drain", {method: "POST", headers: adminHeaders({"Content-Type": "application/json"}),
        body: JSON.stringify({on: b.state !== "draining"})});
      const [ok, , err] = await answerOf(resp);
      say("lb-msg", ok ? b.id + ": done" : err);
    };
    body.appendChild(tr);
  }
}

// ---- flashsale --------------------------------------------------------------

const fs = {last: 0, wired: false, newest: null};

function drawFlashsale(st) {
  const base = systemBase(st, "flashsale");
  document.getElementById("flashsale").hidden = !base;
  if (!base) return;
  if (!fs.wired) {
    fs.wired = true;
    document.getElementById("fs-create").onclick = async () => {
      const resp = await fetch(base + "/api/v1/sales", {method: "POST", headers: adminHeaders({"Content-Type": "application/json"}),
        body: JSON.stringify({item: document.getElementById("fs-item").value, stock: Number(document.getElementById("fs-stock").value)})});
      const [ok, body, err] = await answerOf(resp);
      say("fs-msg", ok ? "sale " + body.id + " started" : err);
      fs.last = 0;
    };
    document.getElementById("fs-spike").onclick = async () => {
      if (!fs.newest) { say("fs-msg", "start a sale first"); return; }
      const n = Math.min(5000, Number(document.getElementById("fs-buyers").value) || 0), tag = Date.now();
      const counts = {};
      await Promise.all(Array.from({length: n}, (_, i) => fetch(base + "/api/v1/sales/" + fs.newest + "/orders", {method: "POST",
          headers: {"Content-Type": "application/json", "Idempotency-Key": `spike-${tag}-${i}`}, body: JSON.stringify({userId: `buyer-${tag}-${i}`})})
        .then(r => { counts[r.status] = (counts[r.status] || 0) + 1; }, () => { counts.failed = (counts.failed || 0) + 1; })));
      const el = document.getElementById("fs-answers");
      el.dataset.accepted = (counts[201] || 0) + (counts[202] || 0);
      el.dataset.refused = counts[409] || 0;
      el.textContent = `${n} buyers: ` + Object.entries(counts).map(([k, v]) => `${v} × ${k}`).join(", ");
      fs.last = 0;
    };
  }
  if (Date.now() - fs.last < 1000) return;
  fs.last = Date.now();
  fetch(base + "/api/v1/sales").then(answerOf).then(async ([ok, list]) => {
    if (!ok) return;
    const body = document.getElementById("fs-sales");
    fs.newest = list.sales.length ? list.sales[0].id : null;
    const rows = await Promise.all(list.sales.slice(0, 5).map(async s => {
      const [vok, v] = await answerOf(await fetch(base + "/api/v1/sales/" + s.id));
      let books = "";
      if (tokenInput.value.trim()) {
        const [rok, r] = await answerOf(await fetch(base + "/api/v1/sales/" + s.id + "/reconcile", {headers: adminHeaders()}));
        books = rok ? (r.ok ? "balanced" : r.problems.join("; ")) : "";
      }
      return vok ? [s, v, books] : null;
    }));
    body.innerHTML = rows.length ? "" : `<tr><td colspan="9" class="muted">no sale yet</td></tr>`;
    for (const row of rows.filter(Boolean)) {
      const [s, v, books] = row;
      const tr = document.createElement("tr");
      tr.dataset.sale = s.id;
      tr.dataset.paid = v.orders_settled;
      tr.dataset.left = v.stock_left;
      tr.dataset.books = books;
      tr.innerHTML = `<td>${escapeHTML(s.item)} <span class="muted">${s.id}</span></td><td>${v.mode}</td><td class="num">${s.stock}</td><td class="num">${v.stock_left}</td>
        <td class="num">${v.orders_accepted}</td><td class="num">${v.orders_settled}</td><td class="num">${v.orders_failed}</td><td class="num">${v.orders_in_flight}</td>
        <td class="${books === "balanced" ? "leader" : "down"}">${escapeHTML(books)}</td>`;
      body.appendChild(tr);
    }
  }, () => {});
}

// ---- mapreduce --------------------------------------------------------------

const mr = {last: 0, wired: false, input: null, timelineOf: "", timelineAt: 0};

function drawMapreduce(st) {
  const base = systemBase(st, "mapreduce");
  document.getElementById("mapreduce").hidden = !base;
  if (!base) return;
  if (!mr.wired) {
    mr.wired = true;
    fetch(base + "/api/v1/jobtypes").then(answerOf).then(([ok, b]) => {
      if (!ok) return;
      const sel = document.getElementById("mr-job");
      for (const j of b.jobs.filter(j => !j.name.startsWith("test-"))) {
        const o = document.createElement("option");
        o.value = j.name; o.textContent = j.name; o.title = j.description;
        sel.appendChild(o);
      }
    }, () => {});
    document.getElementById("mr-corpus").onclick = async () => {
      const mib = Math.max(1, Math.min(256, Number(document.getElementById("mr-mib").value) || 8));
      say("mr-msg", `generating ${mib} MiB …`);
      const resp = await fetch(base + "/api/v1/corpus", {method: "POST", headers: adminHeaders({"Content-Type": "application/json"}),
        body: JSON.stringify({name: "console-" + mib, bytes: mib * 1048576, seed: 1})});
      const [ok, body, err] = await answerOf(resp);
      if (ok) mr.input = body.input;
      say("mr-msg", ok ? `corpus ready: ${body.input}` : err);
    };
    document.getElementById("mr-submit").onclick = async () => {
      if (!mr.input) { say("mr-msg", "generate a corpus first"); return; }
      const job = document.getElementById("mr-job").value;
      const params = job === "grep" ? {pattern: "^a"} : {};
      const resp = await fetch(base + "/api/v1/jobs", {method: "POST", headers: adminHeaders({"Content-Type": "application/json"}),
        body: JSON.stringify({job, input: mr.input, params, reducers: Number(document.getElementById("mr-reducers").value) || 4,
          split_size: Math.max(4096, Math.round((Number(document.getElementById("mr-split").value) || 1) * 1048576))})});
      const [ok, body, err] = await answerOf(resp);
      say("mr-msg", ok ? `job ${body.id} submitted: ${body.maps} map tasks, ${body.reduces} reduce tasks` : err);
      mr.last = 0;
    };
  }
  if (Date.now() - mr.last < 1000) return;
  mr.last = Date.now();
  fetch(base + "/api/v1/workers").then(answerOf).then(([ok, b]) => {
    if (!ok) return;
    const body = document.getElementById("mr-workers");
    body.innerHTML = b.workers.length ? "" : `<tr><td colspan="4" class="muted">no worker heard from</td></tr>`;
    for (const w of b.workers) {
      const tr = document.createElement("tr");
      tr.dataset.worker = w.id;
      const running = (w.running || []).map(r => `${r.kind} ${r.index}.${r.attempt}`).join(", ");
      const ago = w.seen && !w.seen.startsWith("0001") ? ((Date.parse(st.at) - Date.parse(w.seen)) / 1000).toFixed(1) + " s ago" : "—";
      tr.innerHTML = `<td>${escapeHTML(w.id)}</td><td class="num">${w.slots}</td><td>${escapeHTML(running || "idle")}</td><td class="num">${ago}</td>`;
      body.appendChild(tr);
    }
  }, () => {});
  fetch(base + "/api/v1/jobs").then(answerOf).then(([ok, b]) => {
    if (!ok) return;
    const body = document.getElementById("mr-jobs");
    body.innerHTML = b.jobs.length ? "" : `<tr><td colspan="7" class="muted">no job yet</td></tr>`;
    for (const j of b.jobs.slice(0, 6)) {
      const tr = document.createElement("tr");
      tr.dataset.job = j.id;
      tr.dataset.state = j.state;
      tr.innerHTML = `<td>${j.id}</td><td>${escapeHTML(j.job)}</td><td class="${j.state === "done" ? "leader" : j.state === "failed" ? "down" : ""}">${j.state}${j.error ? ": " + escapeHTML(j.error) : ""}</td>
        <td class="num">${j.maps}</td><td class="num">${j.reduces}</td><td class="num">${j.seconds.toFixed(2)}</td>
        <td><a href="${base}/api/v1/jobs/${j.id}/output" target="_blank">output</a> · <a href="${base}/api/v1/jobs/${j.id}" target="_blank">attempts</a></td>`;
      body.appendChild(tr);
    }
    const newest = b.jobs[0];
    if (!newest) return;
    // Redraw the timeline while the job runs, and once more when it ends.
    const key = newest.id + ":" + newest.state;
    if (key === mr.timelineOf && (newest.state === "done" || newest.state === "failed" || Date.now() - mr.timelineAt < 2000)) return;
    mr.timelineOf = key;
    mr.timelineAt = Date.now();
    fetch(base + "/api/v1/jobs/" + newest.id + "/timeline.svg").then(r => r.ok ? r.text() : "").then(svg => {
      if (!svg) return;
      const el = document.getElementById("mr-timeline");
      el.innerHTML = svg;
      el.dataset.job = newest.id;
      el.dataset.spans = el.querySelectorAll("rect title").length;
    }, () => {});
  }, () => {});
}

// ---- autoscale --------------------------------------------------------------

const asp = {copies: null, metric: null};

function drawAutoscale(st) {
  const s = st.autoscale;
  document.getElementById("autoscale").hidden = !s;
  if (!s) return;
  const serving = s.copies.filter(c => c.state === "serving").length;
  document.getElementById("autoscale-title").textContent = `autoscale — ${serving} cop${serving === 1 ? "y" : "ies"} serving (${s.min} to ${s.max}), holding ${s.metric} at ${s.target} per copy`;
  document.getElementById("autoscale-policy").textContent = `tolerance ${(100 * s.tolerance).toFixed(0)} %, scale-down window ${s.window}, cool-down ${s.cooldown}, every ${s.interval}; balancer ${s.lb_admin}; command: ${s.command}`;
  const body = document.getElementById("autoscale-copies");
  body.innerHTML = s.copies.length ? "" : `<tr><td colspan="4" class="muted">no copy</td></tr>`;
  for (const c of s.copies) {
    const tr = document.createElement("tr");
    tr.dataset.state = c.state;
    tr.dataset.addr = c.addr;
    const up = Math.max(0, (Date.parse(st.at) - Date.parse(c.started)) / 1000);
    tr.innerHTML = `<td>${escapeHTML(c.addr)}</td><td class="num">${c.pid}</td><td class="${c.state === "serving" ? "leader" : "muted"}">${escapeHTML(c.state)}</td><td class="num">${up.toFixed(0)} s</td>`;
    body.appendChild(tr);
  }
  // The rounds are the history: redraw both charts from them.
  const t = s.rounds.map(r => Date.parse(r.at) / 1000);
  if (!asp.copies) {
    asp.copies = lineChart("autoscale-chart", ["copies", "desired"], ["#457b9d", "#e76f51"]);
    asp.metric = lineChart("autoscale-metric", [s.metric + " per copy", "target"], ["#2a9d8f", "#999"]);
  }
  asp.copies.setData([t, s.rounds.map(r => r.copies), s.rounds.map(r => r.desired)]);
  asp.metric.setData([t, s.rounds.map(r => r.metric), s.rounds.map(() => s.target)]);
  const rounds = document.getElementById("autoscale-rounds");
  rounds.innerHTML = "";
  for (const r of s.rounds.slice(-8).reverse()) {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td>${new Date(r.at).toLocaleTimeString()}</td><td class="num">${r.copies}</td><td class="num">${r.metric === null ? "—" : r.metric.toPrecision(3)}</td>
      <td class="num">${r.desired}</td><td>${escapeHTML(r.reason)}${r.replaced ? `; ${r.replaced} replaced` : ""}</td>`;
    rounds.appendChild(tr);
  }
}

function drawPanels(st) {
  drawLB(st);
  drawFlashsale(st);
  drawMapreduce(st);
  drawCrawler(st);
  drawFeed(st);
  drawAutoscale(st);
  drawChat(st);
  drawShortener(st);
  drawAlbums(st);
  drawShop(st);
}
