// The Electron relay (src/electron.ts) under plain Node against the real
// bridge. Electron's binary cannot be downloaded on these machines, so its
// IPC is stood in for by two EventEmitters that pass values the way
// ipcMain/ipcRenderer do (event.sender is the sending webContents); the
// relay, the preload API and the renderer's client are the real code.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { join } from "node:path";
import { test } from "node:test";

import { connectRenderer, preloadApi, relay } from "../src/electron.js";
import { type BridgeError } from "../src/index.js";
import { StdioTransport } from "../src/node.js";
import { BIN, haveBinary, tempDir } from "./env.js";

/** One window: its webContents (main side) and its ipcRenderer (preload side). */
function fakeWindow(ipcMain: EventEmitter) {
  const toRenderer = new EventEmitter();
  const webContents = {
    destroyed: false,
    send: (channel: string, ...args: unknown[]) => {
      // IPC is asynchronous and copies values (structured clone).
      const copy = structuredClone(args);
      setImmediate(() => toRenderer.emit(channel, {}, ...copy));
    },
    isDestroyed() {
      return this.destroyed;
    },
  };
  const ipcRenderer = {
    send: (channel: string, ...args: unknown[]) => {
      const copy = structuredClone(args);
      setImmediate(() => ipcMain.emit(channel, { sender: webContents }, ...copy));
    },
    on: (channel: string, listener: (event: unknown, ...args: unknown[]) => void) => toRenderer.on(channel, listener),
  };
  return { webContents, ipcRenderer };
}

test("the Electron relay carries calls, events and the bridge's death between main and renderer", async (t) => {
  if (!haveBinary(t)) return;
  const ipcMain = new EventEmitter();
  const transport = new StdioTransport({ binary: BIN, args: ["--data-dir", tempDir(t, "electron")] });
  t.after(() => transport.close());
  const win = fakeWindow(ipcMain);
  const undo = relay(transport, ipcMain, win.webContents);
  // What the preload exposes through contextBridge, and the renderer's client over it.
  const api = preloadApi(win.ipcRenderer);
  const db = connectRenderer(api);

  const { sessionId } = await db.call("session.open", { connection: { kind: "sqlite", path: join(tempDir(t, "db"), "e.db"), create: true } });
  let rows = 0;
  const done = await db.runQuery(sessionId, "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 3000) SELECT n FROM c", { batchSize: 500, onBatch: (b) => (rows += b.rows.length) });
  assert.equal(done.status, "completed");
  assert.equal(rows, 3000);

  // Another window (another webContents) cannot drive this relay.
  const intruder = fakeWindow(ipcMain);
  let intruderGotAnswer = false;
  intruder.ipcRenderer.on("dbbridge:message", () => (intruderGotAnswer = true));
  let before = 0;
  const off = db.on("query.done", () => before++);
  intruder.ipcRenderer.send("dbbridge:send", JSON.stringify({ jsonrpc: "2.0", id: 99, method: "query.run", params: { sessionId, sql: "SELECT 1" } }));
  await new Promise((r) => setTimeout(r, 300));
  off();
  assert.equal(before, 0, "a message from another webContents reached the bridge");
  assert.equal(intruderGotAnswer, false);

  // The bridge dies: the renderer's pending calls fail typed, and it is told.
  const closed = new Promise<string>((r) => db.onClose(r));
  const pending = db.runQuery(sessionId, "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c");
  await new Promise((r) => setTimeout(r, 200));
  transport.child.kill("SIGKILL");
  assert.match(await closed, /SIGKILL/);
  await assert.rejects(pending, (e: BridgeError) => e.code === "DISCONNECTED");
  undo();
  assert.equal(ipcMain.listenerCount("dbbridge:send"), 0);
});
