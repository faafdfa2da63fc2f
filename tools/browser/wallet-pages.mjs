// Browser test of the Provider Hub against a running devnet, in headless Debian Chromium driven by
// playwright-core. Run by cli/tests/it/testnet.rs; by hand:
//   node tools/browser/wallet-pages.mjs API_URL RPC_URL CONTRACT WALLET TX OUT_DIR
// Checks that the wallet page shows the units an eth_call to computeUnits returns, in both
// address forms, that the form toggle works, that the explorer's page of TX (a batch that
// credited WALLET) shows the decoded recordBatch with WALLET among the credited and its Transfer
// events, and that the contract's address page shows totalUnits as eth_call reads it. Saves
// screenshots of the dashboard, the wallet page and both explorer pages in OUT_DIR. Prints one
// JSON line; exits non-zero on any failure. First of all it clicks the dashboard's "Request a
// compute task" and waits for that job to be recorded, with a link to its transaction. Then the
// network pages: /nodes against /v1/nodes (and that it refreshes itself), /jobs filtered to
// recorded jobs with their transaction links, /batches with TX's gas as its receipt says; and
// the same pages read with JavaScript off.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [api, rpc, contract, wallet, tx, out] = process.argv.slice(2);
if (!out) {
  console.error("usage: wallet-pages.mjs API_URL RPC_URL CONTRACT WALLET TX OUT_DIR");
  process.exit(2);
}
mkdirSync(out, { recursive: true });

// computeUnits(address): selector 0x43ebff79, the address left-padded to 32 bytes;
// totalUnits(): 0x6d86acc4.
async function computeUnits(addr) {
  return ethCall("0x43ebff79" + addr.toLowerCase().replace(/^0x/, "").padStart(64, "0"));
}
async function ethCall(data) {
  const r = await fetch(rpc, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_call", params: [{ to: contract, data }, "latest"] }),
  });
  const j = await r.json();
  if (j.error) throw new Error("eth_call: " + JSON.stringify(j.error));
  return BigInt(j.result).toString();
}

function fail(msg) {
  console.error(msg);
  process.exit(1);
}

const browser = await chromium.launch({
  executablePath: process.env.POCMESH_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });

  // The dashboard's button: a demo job appears and is followed to "recorded", with its tx.
  await page.goto(api + "/", { waitUntil: "load" });
  await page.waitForSelector("#online");
  await page.click("#demo");
  await page.waitForFunction(() => /: recorded/.test(document.getElementById("demoState").textContent),
                             null, { timeout: 90000 });
  const demoTx = await page.getAttribute("#demoTx", "href");
  if (!demoTx) fail("the recorded demo job shows no transaction link");
  // The charts: 24 hourly bars each, drawn here without any external script.
  await page.waitForFunction(() => document.querySelectorAll("#unitsChart rect").length === 24, null, { timeout: 20000 });
  if ((await page.$$("#jobsChart rect")).length !== 24) fail("the jobs chart has no 24 hourly bars");
  if ((await page.$$("#statesChart rect")).length < 1) fail("the jobs-by-state chart is empty");
  await page.screenshot({ path: out + "/dashboard.png", fullPage: true });

  // Read after the demo job landed: the chain's figure the wallet page must show.
  const expected = await computeUnits(wallet);

  const xdc = "xdc" + wallet.slice(2);
  const seen = {};
  for (const form of [wallet, xdc]) {
    const resp = await page.goto(api + "/wallet/" + form, { waitUntil: "load" });
    if (!resp.ok()) fail(`/wallet/${form} answered ${resp.status()}`);
    seen[form] = (await page.textContent("#onChain")).trim();
    if (seen[form] !== expected) fail(`/wallet/${form} shows ${seen[form]} units; computeUnits says ${expected}`);
  }
  // Each recorded job's receipt is checked by the contract's verifyReceipt.
  await page.waitForSelector("span.verified", { timeout: 30000 });
  // The toggle switches every address on the page to the xdc form and back.
  const header = "header code.addr";
  if ((await page.textContent(header)).trim().toLowerCase() !== wallet.toLowerCase()) fail("the page starts in the 0x form");
  await page.click("#form");
  const shown = (await page.textContent(header)).trim();
  if (shown.toLowerCase() !== xdc.toLowerCase()) fail(`after the toggle the header shows ${shown}`);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: out + "/wallet.png", fullPage: true });
  await page.setViewportSize({ width: 1200, height: 900 });

  // The explorer's transaction page: the decoded recordBatch, the wallet among those credited,
  // the Transfer events.
  const txResp = await page.goto(api + "/explorer/tx/" + tx, { waitUntil: "load" });
  if (!txResp.ok()) fail(`/explorer/tx/${tx} answered ${txResp.status()}`);
  const call = (await page.textContent("#call")).trim();
  if (call !== "recordBatch") fail(`the transaction page shows call ${call}`);
  const credited = (await page.textContent("#credited")).toLowerCase();
  if (!credited.includes(wallet.toLowerCase())) fail(`${wallet} is not among the credited: ${credited}`);
  const events = await page.textContent("#events");
  if (!events.includes("Transfer") || !events.includes("BatchRecorded")) fail(`events: ${events}`);
  if ((await page.textContent("#status")).trim() !== "success") fail("the batch transaction did not succeed");
  await page.screenshot({ path: out + "/explorer-tx.png", fullPage: true });

  // The contract's address page: totalUnits as the chain answers it.
  const total = await ethCall("0x6d86acc4");
  await page.goto(api + "/explorer/address/" + contract, { waitUntil: "load" });
  const shownTotal = (await page.textContent("#total")).trim();
  if (shownTotal !== total) fail(`the contract page shows ${shownTotal}; totalUnits says ${total}`);
  await page.screenshot({ path: out + "/explorer-address.png", fullPage: true });

  // The network pages. Nodes: every node the API lists, online ones counted.
  const nodes = await (await fetch(api + "/v1/nodes")).json();
  await page.goto(api + "/nodes", { waitUntil: "load" });
  const onlineShown = (await page.textContent("#online")).trim();
  const onlineApi = String(nodes.filter((n) => n.online).length);
  if (onlineShown !== onlineApi) fail(`/nodes shows ${onlineShown} online; /v1/nodes says ${onlineApi}`);
  if ((await page.$$("#nodes tr")).length !== nodes.length) fail("/nodes does not list every node");
  // It refreshes itself: the <main> marked here is replaced by a fresh one within a few seconds.
  await page.evaluate(() => document.querySelector("main").setAttribute("data-old", "1"));
  await page.waitForFunction(() => !document.querySelector("main").hasAttribute("data-old"), null, { timeout: 15000 });
  await page.screenshot({ path: out + "/nodes.png", fullPage: true });

  // Jobs: the recorded filter shows only recorded jobs, each with its transaction link.
  await page.goto(api + "/jobs", { waitUntil: "load" });
  await page.click("a[href='/jobs?state=recorded']");
  await page.waitForURL(/state=recorded/);
  const states = await page.$$eval("#jobs tr", (rows) => rows.map((r) => r.cells[2].textContent.trim()));
  if (states.length === 0 || states.some((st) => st !== "recorded")) fail(`recorded filter shows ${states}`);
  const linked = await page.$$eval("#jobs tr", (rows) => rows.filter((r) => r.cells[6].querySelector("a")).length);
  if (linked !== states.length) fail(`${states.length - linked} recorded jobs without a transaction link`);
  await page.screenshot({ path: out + "/jobs.png", fullPage: true });

  // Batches: the gas shown for TX's batch is the gas its receipt says it used.
  const receipt = await fetch(rpc, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_getTransactionReceipt", params: [tx] }),
  }).then((r) => r.json());
  const gas = BigInt(receipt.result.gasUsed).toString();
  await page.goto(api + "/batches", { waitUntil: "load" });
  const gasShown = await page.$$eval("#batches tr", (rows, tx) => {
    const row = rows.find((r) => r.cells[6].querySelector(`code[title="${tx}"]`));
    return row ? row.cells[8].textContent.trim() : null;
  }, tx.toLowerCase());
  if (gasShown !== gas) fail(`/batches shows gas ${gasShown} for ${tx}; its receipt says ${gas}`);
  await page.screenshot({ path: out + "/batches.png", fullPage: true });

  // Without JavaScript: the server-rendered pages carry the same figures; the dashboard has its
  // network figures filled in by the server and links to them.
  const plain = await browser.newContext({ javaScriptEnabled: false });
  const noJs = await plain.newPage();
  await noJs.goto(api + "/nodes", { waitUntil: "load" });
  if ((await noJs.textContent("#online")).trim() !== onlineApi) fail("/nodes without JavaScript");
  await noJs.goto(api + "/wallet/" + wallet, { waitUntil: "load" });
  if ((await noJs.textContent("#onChain")).trim() !== expected) fail("/wallet without JavaScript");
  await noJs.goto(api + "/", { waitUntil: "load" });
  if ((await noJs.textContent("#online")).trim() !== onlineApi) fail("the dashboard's figures without JavaScript");
  // (Chromium with scripts switched off still parses <noscript> as text, so the check is the
  // header's links to the server-rendered pages.)
  if (!(await noJs.isVisible("header nav a[href='/batches']"))) fail("the dashboard without JavaScript links nowhere");
  await plain.close();

  console.log(JSON.stringify({ wallet, expected, seen, total, demoTx, gas, screenshots: ["dashboard", "wallet", "explorer-tx", "explorer-address", "nodes", "jobs", "batches"].map((n) => `${out}/${n}.png`) }));
} finally {
  await browser.close();
}
