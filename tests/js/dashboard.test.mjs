// The dashboard in a real headless browser: Debian's chromium, driven by puppeteer-core,
// against the built binary on 127.0.0.1 (a lone node on the tiny model, training). The page
// must load with no script or policy error, ask for the token once, show this node's layers
// and peers, and its loss chart must gain points live while the node trains.
//
// NEUROSHARD_BIN names the binary (make test builds it); CHROMIUM the browser
// (/usr/bin/chromium by default).

import puppeteer from "puppeteer-core";
import { run } from "./node.mjs";

const chromium = process.env.CHROMIUM || "/usr/bin/chromium";
const TOKEN = "dashboard-browser-test-token";

let browser;
const problems = [];
async function main(node) {
  const base = node.url;
  const status = await (await fetch(base + "/api/v1/status", { headers: { Authorization: "Bearer " + TOKEN } })).json();
  browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  const page = await browser.newPage();
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") problems.push("console error: " + m.text()); });

  // A wrong token is refused on the page, and the form stays.
  await page.goto(base + "/", { waitUntil: "load" });
  await page.waitForSelector("#login:not([hidden])", { timeout: 10000 });
  await page.type("#token", "not-the-token");
  await page.click("#login button");
  await page.waitForFunction(() => document.getElementById("login-error").textContent.includes("refused"), { timeout: 10000 });
  problems.length = 0; // the refused request's 401 is logged by the browser: expected here

  // The right token opens the dashboard.
  await page.evaluate(() => { document.getElementById("token").value = ""; });
  await page.type("#token", TOKEN);
  await page.click("#login button");
  await page.waitForSelector("#main:not([hidden])", { timeout: 15000 });
  await page.waitForFunction((id) => document.getElementById("node-id").textContent === id, { timeout: 15000 }, status.node_id);
  const layers = await page.$eval("#layers", (e) => e.textContent);
  if (layers !== "0-3") throw new Error(`layers shown: ${layers}, want 0-3`);
  // The coverage map: this node's row holds every layer of the tiny model.
  const selfCells = await page.$$eval("#coverage tr", (rows) => {
    const mine = rows.find((r) => r.cells[0] && r.cells[0].textContent === "this node");
    return mine ? [...mine.querySelectorAll("td.self")].length : -1;
  });
  if (selfCells !== 4) throw new Error(`coverage row of this node: ${selfCells} layers, want 4`);
  await page.waitForSelector("#peers tr", { timeout: 5000 });
  await page.waitForFunction(() => document.getElementById("live").textContent === "live", { timeout: 15000 });

  // Training: the loss chart has points, and gains more live (training.round events).
  await page.waitForFunction(() => Number(document.getElementById("loss-chart").dataset.points) >= 1, { timeout: 90000 });
  const before = await page.$eval("#loss-chart", (e) => Number(e.dataset.points));
  await page.waitForFunction((n) => Number(document.getElementById("loss-chart").dataset.points) > n, { timeout: 90000 }, before);
  const dots = await page.$$eval("#loss-chart circle", (cs) => cs.length);
  const bars = await page.$$eval("#agreement-chart rect", (rs) => rs.length);
  if (dots <= before || bars !== dots) throw new Error(`charts: ${dots} loss points, ${bars} agreement bars (had ${before})`);

  // Traffic: a task run through the API shows in the tasks figure at the next refresh.
  const sub = await (await fetch(base + "/api/tasks", { method: "POST", headers: { Authorization: "Bearer " + TOKEN, "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: "ROMEO:", max_tokens: 2 }) })).json();
  if (!sub.task_id) throw new Error("task not submitted: " + JSON.stringify(sub));
  await page.waitForFunction(() => document.getElementById("tasks").textContent.startsWith("1 ("), { timeout: 30000 });

  // The token is kept for the tab: a reload opens the dashboard without asking.
  await page.reload({ waitUntil: "load" });
  await page.waitForSelector("#main:not([hidden])", { timeout: 15000 });
  const loginShown = await page.$eval("#login", (e) => !e.hidden);
  if (loginShown) throw new Error("the reload asked for the token again");

  if (problems.length) throw new Error("the page logged:\n" + problems.join("\n"));
  console.log(`dashboard: node ${status.node_id.slice(-8)}, layers ${layers}, ${dots} rounds charted (${before} at first), live`);
}

await run("dashboard", TOKEN, ["--train=true", "--diloco-steps", "4"], async (node) => {
  try {
    await main(node);
  } finally {
    if (browser) await browser.close();
  }
});
