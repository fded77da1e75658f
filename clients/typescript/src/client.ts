import { BridgeError } from "./errors.js";
import type { Events, Methods, RpcError } from "./protocol.js";
import type { Transport } from "./transport.js";

export type MethodName = keyof Methods;
export type EventName = keyof Events;
export type ParamsOf<M extends MethodName> = Methods[M]["params"];
export type ResultOf<M extends MethodName> = Methods[M]["result"];

export interface CallOptions {
  /** Reject with `TIMEOUT` after this long; 0 waits for ever. Default: the client's. */
  timeoutMs?: number;
  /** Reject with `ABORTED` when this fires (the request itself is not withdrawn). */
  signal?: AbortSignal;
}

export interface ClientOptions {
  /** Default per-call timeout in ms (default 60 000; 0 = none). */
  timeoutMs?: number;
}

interface Pending {
  method: string;
  resolve: (data: unknown) => void;
  reject: (error: BridgeError) => void;
  cleanup: () => void;
}

type AnyHandler = (params: never) => void;

/**
 * The typed JSON-RPC client: `call` is typed from the `Methods` map and
 * unwraps the envelope; `on` is typed from `Events`. Every pending call is
 * rejected with `DISCONNECTED` when the transport closes.
 */
export class Client<T extends Transport = Transport> {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<string, Set<AnyHandler>>();
  private readonly closeHandlers = new Set<(reason: string) => void>();
  private closedReason: string | undefined;
  private readonly timeoutMs: number;

  constructor(
    /** The transport, for what only it knows (a child's pid, say). */
    readonly transport: T,
    options: ClientOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 60_000;
    transport.onMessage((text) => this.receive(text));
    transport.onClose((reason) => this.closed(reason));
  }

  /** Whether the transport has closed, and why. */
  get closedBecause(): string | undefined {
    return this.closedReason;
  }

  /** Calls a method; resolves to the envelope's `data`, or throws a `BridgeError`. */
  call<M extends MethodName>(method: M, params: ParamsOf<M>, options: CallOptions = {}): Promise<ResultOf<M>> {
    if (this.closedReason !== undefined) {
      return Promise.reject(new BridgeError("DISCONNECTED", `the bridge is gone (${this.closedReason})`));
    }
    if (options.signal?.aborted) {
      return Promise.reject(new BridgeError("ABORTED", `${method} was aborted before it was sent`));
    }
    const id = this.nextId++;
    return new Promise<ResultOf<M>>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.timeoutMs;
      const timer =
        timeoutMs > 0
          ? setTimeout(() => this.settle(id)?.reject(new BridgeError("TIMEOUT", `${method} got no answer in ${timeoutMs} ms`)), timeoutMs)
          : undefined;
      const onAbort = (): void => this.settle(id)?.reject(new BridgeError("ABORTED", `${method} was aborted`));
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.pending.set(id, {
        method,
        resolve: resolve as (data: unknown) => void,
        reject,
        cleanup: () => {
          if (timer !== undefined) clearTimeout(timer);
          options.signal?.removeEventListener("abort", onAbort);
        },
      });
      try {
        this.transport.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
      } catch (error) {
        this.settle(id)?.reject(new BridgeError("DISCONNECTED", `sending ${method}: ${String(error)}`));
      }
    });
  }

  /** Subscribes to an event; returns the unsubscribe function. */
  on<E extends EventName>(event: E, handler: (params: Events[E]) => void): () => void {
    let set = this.handlers.get(event);
    if (!set) {
      set = new Set();
      this.handlers.set(event, set);
    }
    set.add(handler as AnyHandler);
    return () => {
      set.delete(handler as AnyHandler);
    };
  }

  /** Called once when the transport closes (the bridge exited, the socket dropped). */
  onClose(handler: (reason: string) => void): () => void {
    if (this.closedReason !== undefined) {
      const reason = this.closedReason;
      queueMicrotask(() => handler(reason));
    }
    this.closeHandlers.add(handler);
    return () => {
      this.closeHandlers.delete(handler);
    };
  }

  /** Closes the transport; pending calls are rejected with `DISCONNECTED`. */
  async close(): Promise<void> {
    await this.transport.close();
    this.closed("closed by the client");
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (p) {
      this.pending.delete(id);
      p.cleanup();
    }
    return p;
  }

  private receive(incoming: string | object): void {
    let message: {
      id?: number | string | null;
      method?: string;
      params?: unknown;
      result?: { ok: boolean; data: unknown; error: RpcError | null };
      error?: { code: number; message: string };
    };
    if (typeof incoming === "string") {
      try {
        message = JSON.parse(incoming);
      } catch {
        return; // Not JSON: nothing to route it to.
      }
    } else {
      message = incoming;
    }
    if (typeof message.method === "string" && message.id === undefined) {
      for (const handler of this.handlers.get(message.method) ?? []) {
        try {
          (handler as (params: unknown) => void)(message.params);
        } catch (error) {
          // One failing handler must not starve the others or the stream.
          queueMicrotask(() => {
            throw error;
          });
        }
      }
      return;
    }
    if (typeof message.id !== "number") return;
    const p = this.settle(message.id);
    if (!p) return; // Timed out or aborted earlier.
    if (message.result) {
      if (message.result.ok) p.resolve(message.result.data);
      else if (message.result.error) p.reject(BridgeError.from(message.result.error));
      else p.reject(new BridgeError("PROTOCOL_ERROR", `${p.method}: a failed envelope without an error`));
    } else {
      p.reject(new BridgeError("PROTOCOL_ERROR", `${p.method}: ${message.error?.message ?? "no result"}`));
    }
  }

  private closed(reason: string): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    for (const id of [...this.pending.keys()]) {
      const p = this.settle(id);
      p?.reject(new BridgeError("DISCONNECTED", `${p.method}: the bridge is gone (${reason})`));
    }
    for (const handler of this.closeHandlers) handler(reason);
  }
}
