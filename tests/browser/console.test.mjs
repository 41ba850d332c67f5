// The console and the chat page in a real browser (Playwright driving
// Debian's Chromium). Run by .ci/run against a fresh `scalelab up`:
//   BASE=http://127.0.0.1:PORT TOKEN=<admin token> node console.test.mjs
// SCREENSHOTS=DIR writes a screenshot of each page there.
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
const deadline = (ms) => ({ timeout: ms });

async function openPage(path) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("console", (m) => { if (m.type() === "error") failures.push(`${path}: console error: ${m.text()}`); });
  page.on("pageerror", (e) => failures.push(`${path}: page error: ${e.message}`));
  await page.goto(base + path);
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

if (shots) await page.screenshot({ path: `${shots}/console.png`, fullPage: true });

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

await browser.close();
if (failures.length) {
  console.log("\n" + failures.join("\n"));
  process.exit(1);
}
console.log("browser tests: all passed");
