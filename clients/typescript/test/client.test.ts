// The client over stdio against the real binary and a real SQLite file:
// typed calls and errors, events, the query helpers (streamed, iterated with
// back-pressure, paged), cancellation, and request lifetime.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";

import { BridgeError, type DbBridge, type QueryResultEvent } from "../src/index.js";
import { haveBinary, LONG_QUERY, seedSql, stdioBridge, tempDir } from "./env.js";

async function sqliteSession(bridge: DbBridge, path: string, rows = 0): Promise<string> {
  const { sessionId } = await bridge.call("session.open", { connection: { kind: "sqlite", path, create: true } });
  if (rows > 0) await bridge.runQuery(sessionId, seedSql("sqlite", rows));
  return sessionId;
}

test("typed calls unwrap the envelope; a failed one throws a BridgeError with code and details", async (t) => {
  if (!haveBinary(t)) return;
  const bridge = stdioBridge(t);
  const health = await bridge.call("health.ping", {});
  assert.equal(health.pid, bridge.transport.pid);
  const sessionId = await sqliteSession(bridge, join(tempDir(t, "db"), "a.db"));
  const failed = await bridge.runQuery(sessionId, "SELECT * FROM nope").then(
    () => assert.fail("a query of a missing table resolved"),
    (error: unknown) => error,
  );
  assert.ok(failed instanceof BridgeError);
  assert.equal(failed.code, "QUERY_FAILED");
  assert.match(failed.message, /nope/);
  assert.equal((failed.details as { sqlstate?: string }).sqlstate !== undefined, true, JSON.stringify(failed.details));
  await assert.rejects(bridge.call("session.close", { sessionId: "no-such-session" }), (e: BridgeError) => e.code === "SESSION_NOT_FOUND");
  await assert.rejects(bridge.call("query.run", { sessionId, sql: "" }), (e: BridgeError) => e.code === "INVALID_PARAMS");
});

test("runQuery streams batches in order and resolves to the summary; on() sees the same events", async (t) => {
  if (!haveBinary(t)) return;
  const bridge = stdioBridge(t);
  const sessionId = await sqliteSession(bridge, join(tempDir(t, "db"), "q.db"), 5000);
  const seen: number[] = [];
  const off = bridge.on("query.result", (e) => seen.push(e.batchIndex));
  const batches: QueryResultEvent[] = [];
  const done = await bridge.runQuery(sessionId, "SELECT id, name, price FROM items ORDER BY id", { batchSize: 700, onBatch: (b) => batches.push(b) });
  off();
  assert.equal(done.status, "completed");
  assert.equal(done.results[0]?.rowCount, 5000);
  const rows = batches.flatMap((b) => b.rows);
  assert.equal(rows.length, 5000);
  // SQLite integers are 64-bit: exact strings on the wire (PROTOCOL.md's value table).
  assert.deepEqual(rows[0], ["1", "item 1", "1.25"]);
  assert.deepEqual(rows[4999], ["5000", "item 5000", "6250"]);
  assert.deepEqual(batches[0]?.columns?.map((c) => c.name), ["id", "name", "price"]);
  assert.deepEqual(seen, batches.map((b) => b.batchIndex));
});

test("aborting runQuery's signal cancels the query on the bridge", async (t) => {
  if (!haveBinary(t)) return;
  const bridge = stdioBridge(t);
  const sessionId = await sqliteSession(bridge, join(tempDir(t, "db"), "c.db"));
  const abort = new AbortController();
  setTimeout(() => abort.abort(), 300);
  const started = Date.now();
  const done = await bridge.runQuery(sessionId, LONG_QUERY.sqlite, { signal: abort.signal });
  assert.equal(done.status, "cancelled");
  assert.ok(Date.now() - started < 5000, `cancel took ${Date.now() - started} ms`);
  // The session is free again.
  const again = await bridge.runQuery(sessionId, "SELECT 1");
  assert.equal(again.status, "completed");
});

test("the batch iterator has real back-pressure: a consumer that stops pulling pauses its own query only", async (t) => {
  if (!haveBinary(t)) return;
  const bridge = stdioBridge(t);
  const path = join(tempDir(t, "db"), "it.db");
  const slow = await sqliteSession(bridge, path, 20_000);
  const other = await sqliteSession(bridge, path);
  const paused: number[] = [];
  bridge.on("query.paused", (e) => paused.push(e.rowsSent));
  const it = bridge.batches(slow, "SELECT id FROM items ORDER BY id", { window: 1000, batchSize: 250 });
  let rows = 0;
  for await (const batch of it) {
    rows += batch.rows.length;
    if (rows >= 2000) break; // stop pulling... after a pause below
    if (rows === 500) {
      // Hold this batch: the bridge may send at most the window ahead.
      await new Promise((r) => setTimeout(r, 400));
      const [info] = (await bridge.call("session.list", {})).filter((s) => s.sessionId === slow);
      assert.ok(info, "the slow session is listed");
      assert.ok((info.rowsSent ?? 0) <= 1000 + 500, `rowsSent ${info.rowsSent} past the window`);
      // The other session and the control lane are not held up.
      const t0 = Date.now();
      const quick = await bridge.runQuery(other, "SELECT count(*) FROM items");
      assert.equal(quick.status, "completed");
      await bridge.call("health.ping", {});
      assert.ok(Date.now() - t0 < 2000, `a query on another session took ${Date.now() - t0} ms`);
    }
  }
  assert.ok(paused.length >= 1, "the query paused at its window while the consumer held it");
  // Leaving the loop cancelled the query: the session takes a new one.
  const after = await bridge.runQuery(slow, "SELECT 1");
  assert.equal(after.status, "completed");
  // A whole run through the iterator returns the summary.
  const all = bridge.batches(slow, "SELECT id FROM items", { window: 3000 });
  let total = 0;
  let next = await all.next();
  while (!next.done) {
    total += next.value.rows.length;
    next = await all.next();
  }
  assert.equal(total, 20_000);
  assert.equal(next.value.status, "completed");
});

test("the pager fetches page after page on demand and holds the query paused between", async (t) => {
  if (!haveBinary(t)) return;
  const bridge = stdioBridge(t);
  const sessionId = await sqliteSession(bridge, join(tempDir(t, "db"), "p.db"), 1050);
  const pager = await bridge.pager(sessionId, "SELECT id, name FROM items ORDER BY id", { pageSize: 100 });
  const first = await pager.nextPage();
  assert.ok(first);
  assert.equal(first.rows.length, 100);
  assert.equal(first.offset, 0);
  assert.deepEqual(first.columns.map((c) => c.name), ["id", "name"]);
  const [info] = (await bridge.call("session.list", {})).filter((s) => s.sessionId === sessionId);
  assert.equal(info?.queryState, "paused", JSON.stringify(info));
  assert.equal(info?.rowsSent, 100);
  const ids: number[] = first.rows.map((r) => Number(r[0]));
  for (;;) {
    const page = await pager.nextPage();
    if (!page) break;
    assert.equal(page.offset, ids.length);
    ids.push(...page.rows.map((r) => Number(r[0])));
  }
  assert.equal(ids.length, 1050);
  assert.deepEqual(ids.slice(0, 3), [1, 2, 3]);
  assert.equal(ids[1049], 1050);
  assert.equal(pager.done?.status, "completed");
  // Closing a pager half-way cancels its query.
  const half = await bridge.pager(sessionId, "SELECT id FROM items", { pageSize: 10 });
  await half.nextPage();
  await half.close();
  assert.equal((await bridge.runQuery(sessionId, "SELECT 1")).status, "completed");
});

test("pending calls are rejected with DISCONNECTED when the bridge dies; timeouts and aborts are typed", async (t) => {
  if (!haveBinary(t)) return;
  const bridge = stdioBridge(t, { DBBRIDGE_TEST_HOOKS: "1" });
  // debug.sleep is a test hook, outside the typed contract.
  const call = bridge.call.bind(bridge) as unknown as (m: string, p: unknown, o?: { timeoutMs?: number; signal?: AbortSignal }) => Promise<unknown>;
  await assert.rejects(call("debug.sleep", { ms: 2000 }, { timeoutMs: 100 }), (e: BridgeError) => e.code === "TIMEOUT");
  const abort = new AbortController();
  const aborted = call("debug.sleep", { ms: 2000 }, { signal: abort.signal });
  abort.abort();
  await assert.rejects(aborted, (e: BridgeError) => e.code === "ABORTED");
  const pending = [call("debug.sleep", { ms: 5000 }), call("debug.sleep", { ms: 5000 })];
  const closed = new Promise<string>((r) => bridge.onClose(r));
  bridge.transport.child.kill("SIGKILL");
  for (const p of pending) {
    await assert.rejects(p, (e: BridgeError) => e.code === "DISCONNECTED" && /SIGKILL/.test(e.message));
  }
  assert.match(await closed, /SIGKILL/);
  await assert.rejects(bridge.call("health.ping", {}), (e: BridgeError) => e.code === "DISCONNECTED");
});
