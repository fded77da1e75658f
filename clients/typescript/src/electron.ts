// Electron: the main process owns the bridge (a child over stdio) and relays
// raw JSON-RPC text to one renderer over IPC. The renderer runs with
// contextIsolation on and no Node; the preload exposes only `send` and
// `onMessage` through contextBridge. This module imports nothing from
// Electron (its IPC objects are passed in), so the relay runs, and is
// tested, under plain Node.
import { DbBridge } from "./bridge.js";
import type { ClientOptions } from "./client.js";
import type { Transport } from "./transport.js";

/** The IPC channel names (renderer -> main, main -> renderer). */
export const CHANNELS = { send: "dbbridge:send", message: "dbbridge:message", closed: "dbbridge:closed" } as const;

/** What the relay needs of Electron's `ipcMain`. */
export interface IpcMainLike {
  on(channel: string, listener: (event: { sender: unknown }, message: unknown) => void): unknown;
  removeListener(channel: string, listener: (event: { sender: unknown }, message: unknown) => void): unknown;
}

/** What the relay needs of a window's `webContents`. */
export interface WebContentsLike {
  send(channel: string, ...args: unknown[]): void;
  isDestroyed(): boolean;
}

/**
 * Main process: relays between the bridge's transport and one window. Only
 * messages from that window's `webContents` are forwarded; anything else
 * (another window, a non-string) is dropped. Returns the function that
 * undoes the relay (the bridge keeps running).
 */
export function relay(transport: Transport, ipcMain: IpcMainLike, webContents: WebContentsLike): () => void {
  const fromRenderer = (event: { sender: unknown }, message: unknown): void => {
    if (event.sender !== webContents || typeof message !== "string") return;
    try {
      transport.send(message);
    } catch {
      // The bridge is gone; the renderer has been told through `closed`.
    }
  };
  ipcMain.on(CHANNELS.send, fromRenderer);
  transport.onMessage((message) => {
    if (!webContents.isDestroyed()) webContents.send(CHANNELS.message, message);
  });
  transport.onClose((reason) => {
    if (!webContents.isDestroyed()) webContents.send(CHANNELS.closed, reason);
  });
  return () => {
    ipcMain.removeListener(CHANNELS.send, fromRenderer);
  };
}

/** What the preload needs of Electron's `ipcRenderer`. */
export interface IpcRendererLike {
  send(channel: string, ...args: unknown[]): void;
  on(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
}

/** The API the preload exposes with `contextBridge.exposeInMainWorld("dbbridge", ...)`. */
export interface ExposedBridge {
  send(message: string): void;
  onMessage(handler: (message: string) => void): void;
  onClosed(handler: (reason: string) => void): void;
}

/** Preload: the narrow API for the renderer (strings in, strings out). */
export function preloadApi(ipcRenderer: IpcRendererLike): ExposedBridge {
  return {
    send: (message) => ipcRenderer.send(CHANNELS.send, String(message)),
    onMessage: (handler) => {
      ipcRenderer.on(CHANNELS.message, (_event, message) => handler(String(message)));
    },
    onClosed: (handler) => {
      ipcRenderer.on(CHANNELS.closed, (_event, reason) => handler(String(reason)));
    },
  };
}

/** Renderer: a transport over the exposed API. */
export class RendererTransport implements Transport {
  private onMessageHandler: (message: string) => void = () => undefined;
  private onCloseHandler: (reason: string) => void = () => undefined;
  private closed = false;

  constructor(private readonly api: ExposedBridge) {
    api.onMessage((message) => this.onMessageHandler(message));
    api.onClosed((reason) => {
      this.closed = true;
      this.onCloseHandler(reason);
    });
  }

  send(message: string): void {
    if (this.closed) throw new Error("the bridge is gone");
    this.api.send(message);
  }

  onMessage(handler: (message: string) => void): void {
    this.onMessageHandler = handler;
  }

  onClose(handler: (reason: string) => void): void {
    this.onCloseHandler = handler;
  }

  /** The main process owns the bridge; the renderer only stops listening. */
  async close(): Promise<void> {
    this.closed = true;
  }
}

/** Renderer: the client over the preload's API. */
export function connectRenderer(api: ExposedBridge, options?: ClientOptions): DbBridge {
  return new DbBridge(new RendererTransport(api), options);
}
