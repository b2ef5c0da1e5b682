// Browser test of the lqos GUI with Debian's headless Chromium driven by playwright-core.
// Env: LQOS_URL, LQOS_USER, LQOS_PASSWORD, LQOS_CIRCUIT (circuit to open and edit),
// ARTIFACTS (screenshot directory). Exits non-zero on the first failed check.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const base = process.env.LQOS_URL || "http://127.0.0.1:19123";
const user = process.env.LQOS_USER || "admin";
const password = process.env.LQOS_PASSWORD || "admin-password";
const circuitId = process.env.LQOS_CIRCUIT || "c00001";
const out = process.env.ARTIFACTS || "artifacts/screenshots";
fs.mkdirSync(out, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
// The lab serves HTTPS with its self-signed certificate (its fingerprint is in lqos_web.log).
const page = await browser.newPage({ viewport: { width: 1366, height: 768 }, ignoreHTTPSErrors: true });
const consoleErrors = [];
// Expected 401/422 answers (wrong password, invalid edit) are logged as "Failed to load resource".
page.on("console", m => { if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) consoleErrors.push(m.text()); });
page.on("pageerror", e => consoleErrors.push(String(e)));
const external = [];
page.on("request", r => { if (!r.url().startsWith(base)) external.push(r.url()); });

let step = "start";
const shot = async name => { await page.screenshot({ path: path.join(out, name + ".png"), fullPage: true }); console.log("screenshot " + name); };
const check = (ok, msg) => { if (!ok) throw new Error(msg); console.log("ok: " + msg); };

try {
  step = "login";
  await page.goto(base + "/login");
  await shot("01-login");
  await page.fill("#username", user);
  await page.fill("#password", "definitely-wrong");
  await page.click("#login-button");
  await page.waitForFunction(() => document.getElementById("msg").textContent.length > 0);
  check((await page.textContent("#msg")).includes("Wrong"), "wrong password is refused");
  await page.fill("#password", password);
  await page.click("#login-button");
  await page.waitForURL(/\/app/);
  check(true, "logged in");

  step = "dashboard";
  await page.waitForFunction(() => { const e = document.getElementById("d-down"); return e && e.textContent !== "–"; }, null, { timeout: 15000 });
  const first = await page.textContent("#d-down") + "|" + await page.textContent("#d-up");
  await page.waitForFunction(f => (document.getElementById("d-down").textContent + "|" + document.getElementById("d-up").textContent) !== f, first, { timeout: 15000 });
  const second = await page.textContent("#d-down") + "|" + await page.textContent("#d-up");
  check(first !== second, `dashboard numbers change (${first} -> ${second})`);
  await page.waitForTimeout(2500);
  await shot("02-dashboard");
  await page.click("#theme");
  await page.waitForTimeout(300);
  await shot("03-dashboard-dark");
  await page.click("#theme");

  step = "tree";
  await page.goto(base + "/app#/tree");
  await page.waitForSelector("table a");
  await shot("04-tree");
  await page.click("table a");
  await page.waitForSelector("h2");
  await shot("05-tree-node");

  step = "circuits";
  await page.goto(base + "/app#/circuits");
  await page.waitForSelector("#circuit-page");
  check(/circuits/.test(await page.textContent("#circuit-page")), "circuit list paginates: " + await page.textContent("#circuit-page"));
  await page.click("th[data-sort=download_bps]");
  await page.waitForTimeout(500);
  await shot("06-circuits");
  await page.fill("#circuit-search", circuitId);
  await page.waitForFunction(() => /— 1 circuits/.test(document.getElementById("circuit-page")?.textContent || ""), null, { timeout: 10000 });
  check(true, "search finds the circuit");

  step = "circuit page";
  await page.click("#circuit-list tbody a");
  await page.waitForSelector("#c-plan");
  await page.waitForTimeout(3000);
  const planBefore = await page.textContent("#c-plan");
  // Current RTT cards, busiest flows and queue statistics (web/circuit.js).
  for (const id of ["c-rtt-access", "c-rtt-upstream", "c-retrans"]) check(await page.$("#" + id) !== null, "circuit page shows #" + id);
  await page.waitForFunction(() => !/Loading/.test(document.getElementById("circuit-flows")?.textContent || "Loading"), null, { timeout: 10000 });
  check((await page.$$("#circuit-flows tbody tr")).length > 0 || /No active flows/.test(await page.textContent("#circuit-flows")), "busiest flows: a table or the empty state");
  await page.waitForSelector("#circuit-queue .queue-dir", { timeout: 10000 });
  const dirs = await page.$$eval("#circuit-queue .queue-dir", e => e.map(d => d.dataset.direction));
  check(dirs.join(",") === "download,upload", "queue statistics for both directions: " + dirs.join(","));
  const access = await page.$eval("#c-rtt-access", e => ({ p50: e.dataset.p50Ms, p90: e.dataset.p90Ms, p99: e.dataset.p99Ms }));
  check(access.p50 === undefined || (Number(access.p50) <= Number(access.p90) && Number(access.p90) <= Number(access.p99)), "access RTT p50 <= p90 <= p99 (or no sample): " + JSON.stringify(access));
  await shot("07-circuit");

  step = "edit";
  await page.click("#edit-circuit");
  await page.waitForSelector("#circuit-form");
  const field = '[data-field="Download Max Mbps"]';
  const oldRate = Number(await page.inputValue(field));
  const newRate = oldRate === 77 ? 78 : 77;
  await page.fill(field, "lots");
  await page.click("#save-circuit");
  await page.waitForFunction(() => (document.querySelector('[data-error-for="Download Max Mbps"]')?.textContent || "").length > 0, null, { timeout: 10000 });
  check(true, "invalid rate shows an error next to the field: " + await page.textContent('[data-error-for="Download Max Mbps"]'));
  await shot("08-editor-error");
  await page.fill(field, String(newRate));
  await page.click("#save-circuit");
  await page.waitForSelector("#reload-report", { timeout: 30000 });
  const report = await page.textContent("#reload-report");
  check(/Applied/.test(report) && !/Not applied/.test(report), "reload report says applied: " + report.slice(0, 120));
  await shot("09-editor-saved");

  step = "applied";
  await page.goto(base + "/app#/circuit/" + encodeURIComponent(circuitId));
  await page.waitForSelector("#c-plan");
  await page.waitForFunction(r => document.getElementById("c-plan").textContent.startsWith(r + ".0 Mbps"), newRate, { timeout: 15000 });
  check(true, `new plan rate in force (${planBefore} -> ${await page.textContent("#c-plan")})`);
  await shot("10-circuit-after-edit");

  step = "devices";
  await page.goto(base + "/app#/devices");
  await page.waitForSelector("table");
  await shot("11-shaped-devices");

  step = "config";
  await page.goto(base + "/app#/config");
  await page.waitForSelector("#config-form, table", { timeout: 10000 });
  const body = await page.textContent("main");
  check(!/demo-secret-token/.test(body), "secrets are masked on the configuration page");
  await shot("12-config");

  step = "scheduler";
  await page.goto(base + "/app#/scheduler");
  await page.waitForSelector("#reload-button");
  await page.click("#reload-button");
  await page.waitForSelector("#reload-result #reload-report", { timeout: 30000 });
  await shot("13-scheduler-reload");

  step = "users";
  check(await page.isVisible("#nav-users"), "an admin sees the Users link");
  await page.goto(base + "/app#/users");
  await page.waitForSelector("#users-table tbody tr");
  check((await page.textContent("#users-table")).includes(user), "the users table lists " + user);
  const newUser = "browser-" + Date.now().toString(36);
  const row = `#users-table tr[data-username="${newUser}"]`;
  await page.fill("#new-username", newUser);
  await page.selectOption("#new-role", "read_only");
  await page.fill("#new-password", "short");
  await page.click("#create-user");
  check(await page.$(row) === null, "a too short password is refused (browser or server)");
  await page.fill("#new-password", "browser-password-1");
  await page.click("#create-user");
  await page.waitForSelector(row, { timeout: 10000 });
  // A name that is HTML, hand-edited into the users file (the API refuses such names): the
  // page shows it as text and runs nothing. Needs the file (LQOS_USERS_FILE, run.sh sets it).
  const usersFile = process.env.LQOS_USERS_FILE;
  if (usersFile) {
    const odd = '<img src=x onerror="window.__lqosInjected=1">';
    fs.appendFileSync(usersFile, `\n[[users]]\nusername = ${JSON.stringify(odd)}\npassword_hash = "not-a-hash"\nrole = "read_only"\n`);
    await page.waitForTimeout(1500);
    await page.reload();
    await page.waitForSelector("#users-table tbody tr");
    const oddRow = page.locator("#users-table tbody tr", { hasText: "<img src=x" });
    check(await oddRow.count() === 1, "an HTML user name is shown as text");
    check(await page.$("#users-table img") === null && !(await page.evaluate(() => window.__lqosInjected)), "and is not interpreted as HTML");
    page.once("dialog", d => d.accept());
    await oddRow.locator("button.danger").click();
    await page.waitForFunction(() => !document.getElementById("users-table").textContent.includes("<img src=x"), null, { timeout: 10000 });
    check(true, "and can be deleted from the page");
  }
  check((await page.textContent(row + " select")).includes("Read-only"), "user created through the page as read-only");
  await page.selectOption(row + " select", "admin");
  await page.click(row + " form:has(select) button");
  await page.waitForFunction(r => /is now Admin/.test(document.getElementById("users-msg")?.textContent || "") && document.querySelector(r + " select")?.value === "admin", row, { timeout: 10000 });
  check(true, "role changed to admin through the page");
  await shot("14-users");
  page.once("dialog", d => d.accept());
  await page.click(row + " button.danger");
  await page.waitForSelector(row, { state: "detached", timeout: 10000 });
  check(/Deleted/.test(await page.textContent("#users-msg")), "user deleted through the page");

  step = "api-docs";
  await page.goto(base + "/api-docs");
  await page.waitForSelector("details.api-op");
  const ops = await page.$$eval("section details.api-op", list => list.length);
  check(ops >= 30, "the API browser lists " + ops + " operations grouped by tag");
  await page.click("#op-get_status summary");
  await page.click("#op-get_status button[type=submit]");
  await page.waitForFunction(() => /\n200 /.test(document.querySelector("#op-get_status pre")?.textContent || ""), null, { timeout: 10000 });
  check(true, "GET /status tried from the API browser");
  await shot("15-api-docs");
  await page.goto(base + "/app#/dashboard");
  await page.waitForSelector("#logout");

  step = "logout";
  await page.click("#logout");
  await page.waitForURL(/\/login/);
  check(true, "logged out");
  check(external.length === 0, "no request left the shaper (" + external.length + " external)");
  check(consoleErrors.length === 0, "no console errors: " + consoleErrors.slice(0, 3).join(" | "));
  console.log("PASS");
} catch (e) {
  console.error(`FAIL at ${step}: ${e.message}`);
  try { await shot("failure-" + step.replace(/\W+/g, "-")); } catch (_) { /* ignore */ }
  await browser.close();
  process.exit(1);
}
await browser.close();
