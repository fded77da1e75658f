// Preload (sandboxed, CommonJS): exposes only send/onMessage/onClosed; no Node reaches the page.
const { contextBridge, ipcRenderer } = require("electron");

contextBridge.exposeInMainWorld("dbbridge", {
  send: (message) => ipcRenderer.send("dbbridge:send", String(message)),
  onMessage: (handler) => ipcRenderer.on("dbbridge:message", (_event, message) => handler(String(message))),
  onClosed: (handler) => ipcRenderer.on("dbbridge:closed", (_event, reason) => handler(String(reason))),
});
