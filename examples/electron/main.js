// Main process: owns the bridge (a child over stdio) and relays to the window.
import { app, BrowserWindow, ipcMain } from "electron";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { relay } from "@dbbridge/client/electron";
import { StdioTransport } from "@dbbridge/client/node";

const here = fileURLToPath(new URL(".", import.meta.url));
// Packaged: the binary ships outside the asar, in resources/bin (extraResources).
const binary = app.isPackaged
  ? join(process.resourcesPath, "bin", process.platform === "win32" ? "dbbridge.exe" : "dbbridge")
  : join(here, "../../target/debug/dbbridge");

app.whenReady().then(() => {
  const win = new BrowserWindow({
    webPreferences: { preload: join(here, "preload.cjs"), contextIsolation: true, nodeIntegration: false, sandbox: true },
  });
  const bridge = new StdioTransport({ binary, args: ["--data-dir", join(app.getPath("userData"), "dbbridge")] });
  relay(bridge, ipcMain, win.webContents);
  app.on("before-quit", () => void bridge.close());
  win.loadFile(join(here, "index.html"));
});
