import { DbBridge } from "./bridge.js";
import type { ClientOptions } from "./client.js";
import type { Transport } from "./transport.js";

/** The part of the WebSocket API the transport uses (the browser's, or `ws` in Node). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open" | "close" | "error" | "message", listener: (event: { data?: unknown; code?: number; reason?: string }) => void): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface WebSocketOptions extends ClientOptions {
  /** `ws://127.0.0.1:PORT` as `dbbridge serve --ws` printed it. */
  url: string;
  /** The token `dbbridge serve --ws` printed (sent as `?token=`). */
  token: string;
  /** The WebSocket class; default `globalThis.WebSocket` (browsers, Node 22+). */
  WebSocket?: WebSocketConstructor;
}

const OPEN = 1;

/** JSON-RPC over one WebSocket; one text frame per message. */
export class WebSocketTransport implements Transport {
  private onMessageHandler: (message: string) => void = () => undefined;
  private onCloseHandler: (reason: string) => void = () => undefined;
  private closed = false;
  private readonly closedPromise: Promise<void>;

  private constructor(private readonly socket: WebSocketLike) {
    this.closedPromise = new Promise((resolve) => {
      socket.addEventListener("close", (event) => {
        this.closed = true;
        this.onCloseHandler(`the socket closed (${event.code ?? "?"}${event.reason ? `: ${event.reason}` : ""})`);
        resolve();
      });
    });
    socket.addEventListener("message", (event) => {
      if (typeof event.data === "string") this.onMessageHandler(event.data);
    });
  }

  /** Opens the socket; rejects when the bridge refuses it (bad token, foreign Origin) or is not there. */
  static open(options: WebSocketOptions): Promise<WebSocketTransport> {
    const Ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Ctor) return Promise.reject(new Error("no WebSocket implementation: pass options.WebSocket"));
    const url = new URL(options.url);
    url.searchParams.set("token", options.token);
    const socket = new Ctor(url.toString());
    return new Promise((resolve, reject) => {
      let settled = false;
      socket.addEventListener("open", () => {
        settled = true;
        resolve(new WebSocketTransport(socket));
      });
      const refuse = (): void => {
        if (!settled) {
          settled = true;
          reject(new Error(`the bridge refused the WebSocket at ${options.url}`));
        }
      };
      socket.addEventListener("error", refuse);
      socket.addEventListener("close", refuse);
    });
  }

  send(message: string): void {
    if (this.closed || this.socket.readyState !== OPEN) throw new Error("the socket is closed");
    this.socket.send(message);
  }

  onMessage(handler: (message: string) => void): void {
    this.onMessageHandler = handler;
  }

  onClose(handler: (reason: string) => void): void {
    this.onCloseHandler = handler;
  }

  async close(): Promise<void> {
    if (!this.closed) this.socket.close(1000, "client closed");
    await this.closedPromise;
  }
}

/** Connects to `dbbridge serve --ws` with its token. */
export async function connectWebSocket(options: WebSocketOptions): Promise<DbBridge> {
  return new DbBridge(await WebSocketTransport.open(options), options);
}
