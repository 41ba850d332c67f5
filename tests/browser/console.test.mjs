// The console and the chat page in a real browser (Playwright driving
// Debian's Chromium). Run by .ci/run against a fresh `scalelab up`:
//   BASE=http://127.0.0.1:PORT TOKEN=<admin token> node console.test.mjs
// SCREENSHOTS=DIR writes a screenshot of each page there. With LB_UI (a
// `scalelab lb serve` admin URL, its token LB_TOKEN) and AUTOSCALE_UI (the
// admin URL of a `scalelab autoscale` feeding that balancer), their
// consoles are checked too.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const base = process.env.BASE, token = process.env.TOKEN, shots = process.env.SCREENSHOTS;
assert.ok(base && token, "BASE and TOKEN are required");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const failures = [];
// Set while a step sends requests that must be refused (a spike's 409s):
// Chromium logs each refused fetch as a console error.
let expectedStatus = null;
const deadline = (ms) => ({ timeout: ms });

async function openPage(path) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (expectedStatus && m.text().includes(`status of ${expectedStatus} `)) return;
    failures.push(`${path}: console error: ${m.text()}`);
  });
  page.on("pageerror", (e) => failures.push(`${path}: page error: ${e.message}`));
  await page.goto(path.startsWith("http") ? path : base + path);
  return page;
}

async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failures.push(`${name}: ${e.message}`);
    console.log(`FAIL ${name}: ${e.message}`);
  }
}

const page = await openPage("/");
await page.fill("#token", token);
await page.dispatchEvent("#token", "change");

await step("the console loads and draws every system", async () => {
  await page.waitForSelector("#sys-raftkv .stats", deadline(10000));
  for (const name of ["idgen", "shortener", "dynamo", "raftkv", "chat", "albums", "shop"]) {
    assert.ok(await page.$("#sys-" + name), `no card for ${name}`);
  }
});

await step("the live numbers move under load", async () => {
  const load = setInterval(() => { for (let i = 0; i < 20; i++) fetch(base + "/idgen/api/v1/ids?count=5").catch(() => {}); }, 100);
  try {
    await page.waitForFunction(() => Number(document.querySelector("#sys-idgen .stats").dataset.rps) > 20, null, deadline(10000));
  } finally {
    clearInterval(load);
  }
});

await step("a load run started from the page runs, is charted and leaves its report", async () => {
  await page.fill("#load-path", "/idgen/api/v1/ids");
  await page.fill("#load-rate", "300");
  await page.fill("#load-duration", "3s");
  await page.click("#load-start");
  await page.waitForFunction(() => {
    const now = document.querySelector("#load-now");
    return now.dataset.running === "false" && Number(now.dataset.seconds) >= 2 && now.textContent.includes("done");
  }, null, deadline(20000));
  await page.waitForSelector('#load-runs a[href$="report.md"]', deadline(5000));
  const text = await page.textContent("#load-now");
  assert.ok(/done: \d+ requests, 0 errors/.test(text), `load result: ${text}`);
  // The closed model: 5 virtual users for 2 s.
  await page.selectOption("#load-model", "vus");
  await page.fill("#load-rate", "5");
  await page.fill("#load-duration", "2s");
  await page.click("#load-start");
  await page.waitForFunction(() => {
    const now = document.querySelector("#load-now");
    return now.dataset.running === "false" && now.textContent.includes("with 5 VUs") && now.textContent.includes("done");
  }, null, deadline(20000));
  await page.selectOption("#load-model", "rate");
});

await step("a stopped raft leader is replaced and the page shows the new one", async () => {
  const leaderRow = await page.waitForSelector('#raft-nodes tr[data-role="leader"]', deadline(10000));
  const old = (await leaderRow.getAttribute("id")).replace("raft-node-", "");
  await page.click(`#raft-node-${old} button[data-a="stop"]`);
  await page.waitForFunction((old) => {
    const leader = document.querySelector('#raft-nodes tr[data-role="leader"]');
    const stopped = document.querySelector(`#raft-node-${old}`);
    return leader && leader.id !== "raft-node-" + old && stopped.textContent.includes("stopped");
  }, old, deadline(15000));
  await page.waitForFunction(() => document.querySelectorAll("#raft-elections li").length >= 2, null, deadline(5000));
  await page.click(`#raft-node-${old} button[data-a="restart"]`);
  await page.waitForFunction((old) => document.querySelector(`#raft-node-${old}`).dataset.role === "follower", old, deadline(15000));
});

await step("a partition makes siblings that the dynamo page shows", async () => {
  const key = "console-" + Date.now();
  await page.click("#dyn-partition");
  await page.waitForFunction(() => document.querySelector("#dyn-msg").textContent.includes("done"), null, deadline(5000));
  // One write on each side of n1 | n2, n3, each accepted by its own side.
  for (const [node, value] of [["n1", "left"], ["n3", "right"]]) {
    const resp = await fetch(`${base}/dynamo/${node}/kv/${key}?w=1`, { method: "PUT", body: value });
    assert.equal(resp.status, 204, `write via ${node}: ${resp.status} ${await resp.text()}`);
  }
  await page.click("#dyn-heal");
  await page.fill("#dyn-key", key);
  await page.waitForFunction(async () => {
    document.querySelector("#dyn-read").click();
    await new Promise((r) => setTimeout(r, 300));
    return Number(document.querySelector("#dyn-versions").dataset.count) === 2;
  }, null, deadline(20000));
  const text = await page.textContent("#dyn-versions");
  assert.ok(text.includes("left") && text.includes("right"), `versions shown: ${text}`);
});

await step("an experiment runs from the console and its lesson is shown", async () => {
  await page.click('#lab-list button[data-x="concurrency"]');
  await page.waitForFunction(() => [...document.querySelectorAll("#lab-runs tr")].some((tr) => tr.id.startsWith("run-concurrency-") && tr.dataset.verdict === "held"),
    null, deadline(120000));
  const lesson = await page.textContent('#lab-runs tr[id^="run-concurrency-"]');
  assert.ok(lesson.includes("atomic.Int64") && lesson.includes("bufio.Writer"), `lesson shown: ${lesson}`);
});

await step("the shortener page makes a link, counts its clicks and charts its referrers", async () => {
  await page.fill("#sh-url", "https://example.com/from-the-console");
  await page.click("#sh-create");
  const short = await page.waitForSelector("#sh-short", deadline(5000));
  const code = (await short.textContent()).split("/").pop();
  await page.click("#sh-click");
  await page.waitForFunction(() => document.querySelector("#sh-msg").textContent.includes("20 clicks sent"), null, deadline(10000));
  // Counted through the broker, then listed among the most clicked (the admin-only list).
  await page.waitForFunction((code) => {
    const row = document.querySelector(`#sh-top tr[data-code="${code}"]`);
    return row && Number(row.dataset.clicks) >= 20 && Number(document.querySelector("#sh-selected").dataset.clicks) >= 20;
  }, code, deadline(20000));
  assert.ok(await page.$("#sh-ref-chart canvas"), "no referrer chart");
});

await step("an album uploaded from the albums page is served, and its likes are counted", async () => {
  await page.click("#al-upload");
  await page.waitForFunction(() => { const img = document.querySelector("#al-img"); return !img.hidden && img.complete && img.naturalWidth === 160; }, null, deadline(10000));
  for (let i = 0; i < 3; i++) {
    await page.click("#al-like");
    await page.waitForFunction(() => document.querySelector("#al-msg").textContent.includes("accepted"), null, deadline(5000));
  }
  await page.waitForFunction(() => Number(document.querySelector("#al-counts").dataset.likes) === 3, null, deadline(15000));
});

await step("the shop page checks out, and a stalled payment service opens the breaker, which closes again", async () => {
  await page.click("#shop-add-product");
  await page.waitForFunction(() => document.querySelector("#shop-msg").textContent.includes("added"), null, deadline(5000));
  await page.waitForSelector("#shop-products button", deadline(10000));
  await page.click("#shop-products button");
  await page.waitForFunction(() => !document.querySelector("#shop-checkout").disabled, null, deadline(5000));
  await page.click("#shop-checkout");
  await page.waitForFunction(() => document.querySelector("#shop-order").dataset.state === "paid", null, deadline(10000));

  const products = await (await fetch(`${base}/shop/api/v1/products?limit=1`)).json();
  const productId = products.products[0].productId;
  const checkout = async () => {
    const cart = await (await fetch(`${base}/shop/api/v1/carts`, { method: "POST" })).json();
    await fetch(`${base}/shop/api/v1/carts/${cart.cartId}/items`, { method: "POST", body: JSON.stringify({ productId, quantity: 1 }) });
    return fetch(`${base}/shop/api/v1/carts/${cart.cartId}/checkout`, { method: "POST", headers: { "Idempotency-Key": "k-" + cart.cartId } });
  };
  await page.click("#shop-dep-payment button");
  await page.waitForFunction(() => document.querySelector("#shop-dep-payment").dataset.stalled === "true", null, deadline(5000));
  // Checkouts time out against the stalled service until the breaker opens.
  for (let i = 0; i < 20 && (await page.getAttribute("#shop-dep-payment", "data-breaker")) !== "open"; i++) {
    await Promise.all([checkout(), checkout(), checkout()]);
  }
  await page.waitForFunction(() => document.querySelector("#shop-dep-payment").dataset.breaker === "open", null, deadline(5000));
  if (shots) await page.locator("#shop").screenshot({ path: `${shots}/shop.png` });
  await page.click("#shop-dep-payment button");
  await page.waitForFunction(() => document.querySelector("#shop-dep-payment").dataset.stalled === "false", null, deadline(5000));
  // After its delay the breaker lets a trial call through; a paid checkout closes it.
  const until = Date.now() + 30000;
  while ((await page.getAttribute("#shop-dep-payment", "data-breaker")) !== "closed") {
    assert.ok(Date.now() < until, "the payment breaker did not close within 30 s of the release");
    await checkout();
    await page.waitForTimeout(500); // the page redraws once a second
  }
});

await step("an experiment's report shows its plots", async () => {
  await page.click('#lab-runs tr[id^="run-concurrency-"] button[data-show]');
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll("#lab-report img")];
    return imgs.length >= 2 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  }, null, deadline(10000));
  if (shots) await page.locator("#lab").screenshot({ path: `${shots}/experiments.png` });
});

if (shots) {
  await page.screenshot({ path: `${shots}/console.png`, fullPage: true });
  for (const id of ["raftkv", "dynamo", "shortener", "albums", "load"]) await page.locator("#" + id).screenshot({ path: `${shots}/${id}.png` });
}

await step("a chat message sent in one page arrives in another", async () => {
  const [a, b] = [await openPage("/chat/page"), await openPage("/chat/page")];
  for (const p of [a, b]) {
    await p.click("#join");
    await p.waitForFunction(() => !document.querySelector("#send").disabled, null, deadline(10000));
  }
  const text = "hello from the browser " + Date.now();
  await a.fill("#text", text);
  await a.click("#send");
  await b.waitForFunction((t) => document.querySelector("#log").textContent.includes(t), text, deadline(10000));
  if (shots) await b.screenshot({ path: `${shots}/chat.png` });
});

await step("a message sent from the console's chat panel arrives in a chat page and is counted in its room", async () => {
  const other = await openPage("/chat/page");
  const room = String(2 + (Date.now() % 15)); // up runs rooms 1..20
  const frame = page.frameLocator("#chat-frame");
  await frame.locator("#room").fill(room);
  await frame.locator("#join").click();
  await other.fill("#room", room);
  await other.click("#join");
  for (const ready of [() => frame.locator("#send:not([disabled])").waitFor(deadline(10000)),
    () => other.waitForFunction(() => !document.querySelector("#send").disabled, null, deadline(10000))]) await ready();
  const text = "from the console " + Date.now();
  await frame.locator("#text").fill(text);
  await frame.locator("#send").click();
  await other.waitForFunction((t) => document.querySelector("#log").textContent.includes(t), text, deadline(10000));
  // Stored through the broker, then counted in the panel's busiest rooms.
  await page.waitForFunction((room) => {
    const row = document.querySelector(`#chat-rooms tr[data-room="${room}"]`);
    return row && Number(row.dataset.messages) >= 1;
  }, room, deadline(15000));
  if (shots) await page.locator("#chat").screenshot({ path: `${shots}/chat-panel.png` });
});

await step("a flash sale started from the page sells exactly its stock to a spike, and its books balance", async () => {
  await page.fill("#fs-stock", "40");
  await page.click("#fs-create");
  await page.waitForFunction(() => document.querySelector("#fs-msg").textContent.includes("started"), null, deadline(10000));
  await page.waitForFunction(() => document.querySelector("#fs-sales tr[data-sale]")?.dataset.left === "40", null, deadline(10000));
  await page.fill("#fs-buyers", "300");
  expectedStatus = 409; // sold out, 260 times
  try {
    await page.click("#fs-spike");
    await page.waitForFunction(() => document.querySelector("#fs-answers").dataset.accepted !== undefined, null, deadline(30000));
  } finally {
    expectedStatus = null;
  }
  const [accepted, refused] = await page.evaluate(() => [document.querySelector("#fs-answers").dataset.accepted, document.querySelector("#fs-answers").dataset.refused]);
  assert.equal(accepted, "40", `accepted ${accepted}`);
  assert.equal(refused, "260", `refused ${refused}`);
  await page.waitForFunction(() => { const r = document.querySelector("#fs-sales tr[data-sale]"); return r && r.dataset.paid === "40" && r.dataset.left === "0" && r.dataset.books === "balanced"; },
    null, deadline(30000));
  if (shots) await page.locator("#flashsale").screenshot({ path: `${shots}/flashsale.png` });
});

await step("a word count submitted from the mapreduce page runs on its two workers and draws its task timeline", async () => {
  await page.fill("#mr-mib", "4");
  await page.click("#mr-corpus");
  await page.waitForFunction(() => document.querySelector("#mr-msg").textContent.startsWith("corpus ready"), null, deadline(60000));
  await page.selectOption("#mr-job", "wordcount");
  await page.fill("#mr-reducers", "3");
  await page.fill("#mr-split", "0.5");
  await page.click("#mr-submit");
  await page.waitForFunction(() => document.querySelector("#mr-msg").textContent.includes("submitted"), null, deadline(10000));
  const id = await page.evaluate(() => document.querySelector("#mr-msg").textContent.split(" ")[1]);
  await page.waitForFunction((id) => document.querySelector(`#mr-jobs tr[data-job="${id}"]`)?.dataset.state === "done", id, deadline(120000));
  const status = await (await fetch(`${base}/mapreduce/api/v1/jobs/${id}`)).json();
  assert.ok(status.maps >= 8, `only ${status.maps} map tasks`);
  const workers = new Set(status.Attempts.map(a => a.worker));
  assert.ok(workers.size >= 2, `the tasks ran on ${workers.size} worker(s)`);
  await page.waitForFunction(([id, n]) => { const el = document.querySelector("#mr-timeline"); return el.dataset.job === id && Number(el.dataset.spans) >= n; },
    [id, status.maps + status.reduces], deadline(15000));
  const output = await (await fetch(`${base}/mapreduce/api/v1/jobs/${id}/output`)).text();
  const total = output.trim().split("\n").reduce((n, line) => n + Number(line.split(" ")[1]), 0);
  assert.ok(total > 500000, `the counts sum to ${total} words`);
  if (shots) await page.locator("#mapreduce").screenshot({ path: `${shots}/mapreduce.png` });
});

if (process.env.CRAWL_SEED) await step("a crawl started from the crawler page fetches the synthetic web politely, and its pages are searchable", async () => {
  await page.fill("#cr-seeds", process.env.CRAWL_SEED);
  await page.fill("#cr-delay", "50");
  await page.fill("#cr-max", "0");
  await page.click("#cr-start");
  await page.waitForFunction(() => document.querySelector("#cr-msg").textContent.includes("started"), null, deadline(10000));
  const id = await page.evaluate(() => document.querySelector("#cr-msg").textContent.split(" ")[1]);
  await page.waitForFunction(() => Number(document.querySelector("#cr-instances tr")?.dataset.shards) === 256, null, deadline(10000));
  await page.waitForFunction((id) => document.querySelector(`#cr-crawls tr[data-crawl="${id}"]`)?.dataset.state === "done", id, deadline(120000));
  const pages = await page.evaluate((id) => Number(document.querySelector(`#cr-crawls tr[data-crawl="${id}"]`).dataset.pages), id);
  assert.ok(pages >= 150, `the crawl stored ${pages} pages`);
  const check = await (await fetch(process.env.CRAWL_CHECK)).json();
  assert.equal(check.robots_violations, 0, JSON.stringify(check));
  assert.equal(check.politeness_violations, 0, JSON.stringify(check));
  assert.equal(check.duplicate_fetches, 0, JSON.stringify(check));
  await page.fill("#cr-q", "host3.test page");
  await page.click("#cr-search");
  await page.waitForFunction(() => Number(document.querySelector("#cr-pages").dataset.count) >= 5, null, deadline(10000));
  assert.ok(await page.$("#cr-chart canvas"), "no chart of pages stored");
  if (shots) await page.locator("#crawler").screenshot({ path: `${shots}/crawler.png` });
});

if (process.env.AUTOSCALE_UI) await step("the autoscaler's console shows its copies and its rounds", async () => {
  const as = await openPage(process.env.AUTOSCALE_UI + "/ui/");
  await as.waitForFunction(() => document.querySelectorAll('#autoscale-copies tr[data-state="serving"]').length >= 2, null, deadline(20000));
  await as.waitForFunction(() => document.querySelectorAll("#autoscale-rounds tr").length >= 1, null, deadline(20000));
  assert.ok(await as.$("#autoscale-chart canvas"), "no chart of copies over time");
  assert.ok(!(await as.$("#lab:not([hidden]) #lab-list tr")), "a node's console offers experiments");
  if (shots) await as.screenshot({ path: `${shots}/autoscale.png`, fullPage: true });
  await as.close();
});

if (process.env.LB_UI) await step("the balancer's console shows the autoscaler's copies and drains one", async () => {
  const lbp = await openPage(process.env.LB_UI + "/ui/");
  await lbp.fill("#token", process.env.LB_TOKEN);
  await lbp.dispatchEvent("#token", "change");
  await lbp.waitForFunction(() => document.querySelectorAll('#lb-backends tr[data-state="up"]').length >= 2, null, deadline(20000));
  const id = await lbp.getAttribute("#lb-backends tr:first-child", "data-id");
  await lbp.click(`#lb-backends tr[data-id="${id}"] button`);
  await lbp.waitForFunction((id) => document.querySelector(`#lb-backends tr[data-id="${id}"]`)?.dataset.state === "draining", id, deadline(10000));
  await lbp.click(`#lb-backends tr[data-id="${id}"] button`); // undrain: the autoscaler's copy goes back to work
  await lbp.waitForFunction((id) => document.querySelector(`#lb-backends tr[data-id="${id}"]`)?.dataset.state === "up", id, deadline(10000));
  await lbp.close();
});

await step("the feed app: two people sign up, follow, and a post arrives live, is liked, commented and deleted", async () => {
  const tag = Date.now().toString(36);
  const signUp = async (handle) => {
    const p = await openPage("/feed/app/");
    await p.fill("#handle", handle);
    await p.click("#signup");
    await p.click("#continue", deadline(10000));
    await p.waitForSelector("#draft", deadline(10000));
    return p;
  };
  const ann = await signUp("ann_" + tag), bob = await signUp("bob_" + tag);
  await bob.waitForFunction(() => document.querySelector("#live")?.textContent === "live", null, deadline(10000));
  // Bob finds Ann and follows her (optimistic: the button turns at once).
  await bob.fill('input[placeholder="@handle"]', "ann_" + tag);
  await bob.click('text=Find');
  const follow = `li[data-handle="ann_${tag}"] button.follow`;
  await bob.click(follow, deadline(10000));
  await bob.waitForSelector(`${follow}.on`, deadline(5000));
  // Ann posts; Bob's page gets it live, without a reload.
  const text = "hello from ann " + tag;
  await ann.fill("#draft", text);
  await ann.click("#post");
  await ann.waitForSelector(`#timeline article:not(.pending) >> text=${text}`, deadline(10000));
  const post = bob.locator("#timeline article", { hasText: text });
  await post.waitFor(deadline(15000));
  // Like: the count moves at once and the server's answer agrees.
  await post.locator("button.like").click();
  await bob.waitForFunction((t) => [...document.querySelectorAll("#timeline article")].some((a) =>
    a.textContent.includes(t) && a.querySelector("button.like.on .likes")?.textContent === "1"), text, deadline(5000));
  await post.locator("button.comment-toggle").click();
  await post.locator("input.comment-input").fill("nice one");
  await post.locator("form button").click();
  await post.locator(".comment", { hasText: "nice one" }).waitFor(deadline(5000));
  const id = await post.getAttribute("data-id");
  const got = await (await fetch(`${base}/feed/api/v1/posts/${id}`)).json();
  assert.equal(got.likes, 1, JSON.stringify(got));
  assert.equal(got.comments, 1, JSON.stringify(got));
  if (shots) await bob.screenshot({ path: `${shots}/feed.png`, fullPage: true });
  // Ann deletes it; it leaves Bob's page live too.
  await ann.locator("#timeline article", { hasText: text }).locator("button.delete").click();
  await bob.waitForFunction((t) => ![...document.querySelectorAll("#timeline article")].some((a) => a.textContent.includes(t)), text, deadline(10000));
  await ann.close();
  await bob.close();
});

await step("the feed's console panel makes a celebrity, shows its fan-out and the write amplification", async () => {
  await page.waitForSelector("#feed:not([hidden])", deadline(10000));
  await page.fill("#fd-followers", "3000");
  await page.click("#fd-celeb");
  await page.waitForFunction(() => document.querySelector("#fd-msg").textContent.includes("posted to 3000 followers"), null, deadline(60000));
  // Under the celebrity threshold (10,000) hybrid pushes it: 3,000 entries, every follower reached.
  await page.waitForFunction(() => document.querySelector('#fd-recent tr[data-targets="3000"]'), null, deadline(20000));
  await page.waitForFunction(() => Number(document.querySelector("#fd-amp")?.textContent) > 1, null, deadline(10000));
  if (shots) await page.locator("#feed").screenshot({ path: `${shots}/feed-console.png` });
});

await step("the server is still up after all of it", async () => {
  const resp = await fetch(base + "/readyz");
  assert.equal(resp.status, 200, `readyz ${resp.status}`);
});

await browser.close();
if (failures.length) {
  console.log("\n" + failures.join("\n"));
  process.exit(1);
}
console.log("browser tests: all passed");
