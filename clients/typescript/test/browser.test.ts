// A real browser: headless Chromium (Debian's, driven by playwright-core)
// loads a page that uses the client's WebSocket transport against the real
// bridge. From an allowed Origin with the token the page connects, opens a
// SQLite session, streams a query, cancels a long one and shows a backup's
// progress; the test asserts what the page shows. A page from a foreign
// Origin, or one without the token, is refused by the bridge.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join, normalize } from "node:path";
import { test, type TestContext } from "node:test";

import { chromium, type Browser } from "playwright-core";

import { haveBinary, need, PACKAGE_DIR, tempDir, wsBridge } from "./env.js";

const CHROMIUM = process.env.DBBRIDGE_CHROMIUM ?? "/usr/bin/chromium";
const PAGE = readFileSync(join(PACKAGE_DIR, "test/browser/page.html"));
const CLIENT_DIR = join(PACKAGE_DIR, "dist/src");

/** Serves the page at / and the compiled client under /client/. */
async function serve(t: TestContext): Promise<string> {
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (path === "/") {
      res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
      return;
    }
    const file = normalize(join(CLIENT_DIR, path.replace(/^\/client\//, "")));
    if (path.startsWith("/client/") && file.startsWith(CLIENT_DIR) && existsSync(file)) {
      res.writeHead(200, { "content-type": "text/javascript" }).end(readFileSync(file));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function browser(t: TestContext): Promise<Browser | undefined> {
  if (!need(t, `Chromium (${CHROMIUM}; scripts/install-deps.sh installs it)`, existsSync(CHROMIUM))) return undefined;
  const b = await chromium.launch({
    executablePath: CHROMIUM,
    // The flags keep Chromium off the network this machine does not have.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  t.after(() => b.close());
  return b;
}

test("a page from an allowed Origin streams, cancels and shows a backup's progress; foreign Origins and missing tokens are refused", async (t) => {
  if (!haveBinary(t)) return;
  const b = await browser(t);
  if (!b) return;
  const allowed = await serve(t);
  const foreign = await serve(t);
  const { url, token } = await wsBridge(t, [allowed]);
  const db = join(tempDir(t, "browser"), "page.db");
  const query = (tok: string) => `/?ws=${encodeURIComponent(url)}&token=${encodeURIComponent(tok)}&db=${encodeURIComponent(db)}`;

  const page = await b.newPage();
  await page.goto(allowed + query(token));
  await page.waitForFunction(() => document.getElementById("backup")?.textContent !== "" || document.getElementById("status")?.textContent?.startsWith("refused"), undefined, { timeout: 60_000 });
  const text = async (id: string) => (await page.textContent(`#${id}`)) ?? "";
  assert.equal(await text("status"), "connected");
  assert.equal(await text("rows"), "100000 completed");
  assert.equal(await text("cancel"), "cancelled");
  const progress = await text("progress");
  assert.match(progress, /^\d+ events, 100%, \d+ bytes$/, progress);
  assert.ok(Number(progress.split(" ")[0]) >= 2, `a backup of ~8 MB reports progress more than once: ${progress}`);
  assert.match(await text("backup"), /^completed \d+ bytes$/);
  console.log(`page from ${allowed}: rows "${await text("rows")}", cancel "${await text("cancel")}", progress "${progress}", backup "${await text("backup")}"`);

  // The same page from another Origin: the bridge refuses the socket.
  const stranger = await b.newPage();
  await stranger.goto(foreign + query(token));
  await stranger.waitForFunction(() => document.getElementById("status")?.textContent !== "starting", undefined, { timeout: 15_000 });
  assert.match((await stranger.textContent("#status")) ?? "", /^refused/);

  // The allowed Origin without the token: refused too.
  const tokenless = await b.newPage();
  await tokenless.goto(allowed + query(""));
  await tokenless.waitForFunction(() => document.getElementById("status")?.textContent !== "starting", undefined, { timeout: 15_000 });
  assert.match((await tokenless.textContent("#status")) ?? "", /^refused/);
});
