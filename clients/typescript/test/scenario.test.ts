// The design's final manual QA checklist as code: connect; query; backup;
// restore; export; cancel a long query; several simultaneous sessions on all
// three engines. Runs over stdio and over WebSocket against the real binary
// and real PostgreSQL, MariaDB and SQLite. Each step prints one line: that
// output is the scenario's record.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test, type TestContext } from "node:test";

import WebSocket from "ws";

import type { ConnectionSpec, DbBridge } from "../src/index.js";
import { connectWebSocket, type WebSocketConstructor } from "../src/websocket.js";
import { type Engine, freshDatabase, haveBinary, haveEngine, LONG_QUERY, seedSql, stdioBridge, tempDir, wsBridge } from "./env.js";

const ENGINES: Engine[] = ["sqlite", "postgres", "mysql"];
const ROWS = 20_000;

function log(transport: string, engine: string, step: string, detail: string): void {
  console.log(`[${transport}/${engine}] ${step.padEnd(9)} ${detail}`);
}

async function scenario(t: TestContext, transport: string, bridge: DbBridge): Promise<void> {
  for (const engine of ENGINES) {
    if (!haveEngine(t, engine)) return;
  }
  const health = await bridge.call("health.ping", {});
  log(transport, "-", "connect", `dbbridge ${health.version}, pid ${health.pid}`);
  const dir = tempDir(t, "scenario");
  for (const engine of ENGINES) {
    const source = await freshDatabase(bridge, t, engine);
    const { sessionId, serverVersion } = await bridge.call("session.open", { connection: source });
    log(transport, engine, "session", `open, server ${serverVersion}`);

    // Query.
    await bridge.runQuery(sessionId, seedSql(engine, ROWS));
    let rows = 0;
    const done = await bridge.runQuery(sessionId, "SELECT id, name, price FROM items ORDER BY id", { onBatch: (b) => (rows += b.rows.length) });
    assert.equal(done.status, "completed");
    assert.equal(rows, ROWS);
    log(transport, engine, "query", `${rows} rows in ${done.durationMs} ms`);

    // Backup, with progress.
    const progress: number[] = [];
    const backup = await bridge.backup({ connection: source, destination: join(dir, `${engine}.backup`) }, { onProgress: (p) => progress.push(p.bytesWritten) });
    assert.equal(backup.status, "completed");
    assert.ok(backup.sizeBytes > 0);
    assert.ok(progress.length >= 1, "at least one progress event");
    log(transport, engine, "backup", `${backup.sizeBytes} bytes, ${progress.length} progress events, sha256 ${backup.sha256?.slice(0, 12)}`);

    // Restore into a fresh target, and check its rows.
    let target: ConnectionSpec;
    if (engine === "sqlite") target = { kind: "sqlite", path: join(dir, "restored.db"), create: true };
    else if (engine === "postgres") target = await freshDatabase(bridge, t, engine);
    else target = { ...source, database: `${(source as { database: string }).database}_restored` } as ConnectionSpec;
    const restored = await bridge.restore({ backupId: backup.backupId, target });
    assert.equal(restored.status, "completed");
    const check = await bridge.call("session.open", { connection: engine === "sqlite" ? { kind: "sqlite", path: join(dir, "restored.db") } : target });
    let count: unknown;
    await bridge.runQuery(check.sessionId, "SELECT count(*), sum(id) FROM items", { onBatch: (b) => (count = b.rows[0]) });
    assert.deepEqual((count as unknown[]).map(String), [String(ROWS), String((ROWS * (ROWS + 1)) / 2)]);
    await bridge.call("session.close", { sessionId: check.sessionId });
    log(transport, engine, "restore", `${restored.durationMs} ms; the copy has ${ROWS} rows with the same id sum`);

    // Export to CSV, with progress.
    const csv = join(dir, `${engine}.csv`);
    const exported = await bridge.exportData({ sessionId, source: { sql: "SELECT id, name, price FROM items ORDER BY id" }, format: "csv", destination: csv });
    assert.equal(exported.status, "completed");
    assert.equal(exported.rowsWritten, ROWS);
    const lines = readFileSync(csv, "utf8").trimEnd().split(/\r?\n/);
    assert.equal(lines.length, ROWS + 1);
    assert.equal(lines[0], "id,name,price");
    assert.equal(lines[1]?.split(",")[1], "item 1");
    log(transport, engine, "export", `${exported.rowsWritten} rows, ${exported.sizeBytes} bytes to CSV`);

    // Cancel a long query.
    const abort = new AbortController();
    const started = Date.now();
    setTimeout(() => abort.abort(), 300);
    const cancelled = await bridge.runQuery(sessionId, LONG_QUERY[engine], { signal: abort.signal });
    assert.equal(cancelled.status, "cancelled");
    assert.ok(Date.now() - started < 5000);
    assert.equal((await bridge.runQuery(sessionId, "SELECT 1")).status, "completed");
    log(transport, engine, "cancel", `long query cancelled ${Date.now() - started - 300} ms after the abort; session usable`);
    await bridge.call("session.close", { sessionId });
  }

  // Several simultaneous sessions on all three engines, queries in parallel.
  const specs = await Promise.all(ENGINES.map((engine) => freshDatabase(bridge, t, engine)));
  const sessions = await Promise.all(specs.flatMap((spec) => [1, 2, 3].map(() => bridge.call("session.open", { connection: spec }))));
  assert.equal((await bridge.call("session.list", {})).length, sessions.length);
  const t0 = Date.now();
  const counts = await Promise.all(
    sessions.map(async ({ sessionId, kind }, i) => {
      let n = 0;
      const sql = kind === "postgres" ? "SELECT g FROM generate_series(1, 5000) g" : kind === "mysql" ? "SELECT seq FROM seq_1_to_5000" : "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 5000) SELECT n FROM c";
      const d = await bridge.runQuery(sessionId, sql, { batchSize: 100 + i, onBatch: (b) => (n += b.rows.length) });
      assert.equal(d.status, "completed");
      return n;
    }),
  );
  assert.deepEqual(counts, sessions.map(() => 5000));
  log(transport, "all", "parallel", `${sessions.length} sessions (3 per engine) ran 5000-row queries at once in ${Date.now() - t0} ms`);
  await Promise.all(sessions.map(({ sessionId }) => bridge.call("session.close", { sessionId })));
}

test("QA scenario over stdio", async (t) => {
  if (!haveBinary(t)) return;
  await scenario(t, "stdio", stdioBridge(t));
});

test("QA scenario over WebSocket", async (t) => {
  if (!haveBinary(t)) return;
  const { url, token } = await wsBridge(t);
  const bridge = await connectWebSocket({ url, token, WebSocket: WebSocket as unknown as WebSocketConstructor });
  t.after(() => bridge.close());
  await scenario(t, "ws", bridge);
});
