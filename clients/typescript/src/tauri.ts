// The two Tauri routes. Both need the app's Tauri packages, imported lazily
// so this module loads (and type-checks) without a Tauri runtime.
//
// - The plugin (`crates/tauri-plugin-dbbridge`): the bridge runs inside the
//   app's process; requests go through one command, and everything the
//   bridge sends (answers and events) comes back on a `tauri::ipc::Channel`,
//   which Tauri's docs recommend over its event system for throughput.
// - The sidecar: the `dbbridge` binary shipped through `externalBin` and
//   spawned with `@tauri-apps/plugin-shell`'s `Command.sidecar`.
import { DbBridge } from "./bridge.js";
import type { ClientOptions } from "./client.js";
import { LineSplitter, type Transport } from "./transport.js";

/** The plugin's command names (`plugin:dbbridge|...`). */
export const PLUGIN_COMMANDS = {
  connect: "plugin:dbbridge|connect",
  send: "plugin:dbbridge|send",
  disconnect: "plugin:dbbridge|disconnect",
} as const;

/** The in-process plugin: one connection to the bridge's router per client. */
export class TauriPluginTransport implements Transport {
  private onMessageHandler: (message: string | object) => void = () => undefined;
  private onCloseHandler: (reason: string) => void = () => undefined;
  private closed = false;

  private constructor(
    private readonly invoke: (cmd: string, args?: Record<string, unknown>) => Promise<unknown>,
    private readonly connection: number,
    setReceiver: (receiver: (message: string | object) => void) => void,
  ) {
    setReceiver((message) => this.onMessageHandler(message));
  }

  static async open(): Promise<TauriPluginTransport> {
    const { Channel, invoke } = await import("@tauri-apps/api/core");
    let receiver: (message: string | object) => void = () => undefined;
    // The plugin sends each message as the JSON the bridge encoded; Tauri
    // hands it over parsed.
    const channel = new Channel<object>();
    channel.onmessage = (message) => receiver(message);
    const connection = (await invoke(PLUGIN_COMMANDS.connect, { onMessage: channel })) as number;
    return new TauriPluginTransport(invoke, connection, (r) => {
      receiver = r;
    });
  }

  send(message: string): void {
    if (this.closed) throw new Error("the plugin connection is closed");
    this.invoke(PLUGIN_COMMANDS.send, { connection: this.connection, message }).catch((error: unknown) => {
      this.shut(`the plugin refused a message: ${String(error)}`);
    });
  }

  onMessage(handler: (message: string | object) => void): void {
    this.onMessageHandler = handler;
  }

  onClose(handler: (reason: string) => void): void {
    this.onCloseHandler = handler;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.invoke(PLUGIN_COMMANDS.disconnect, { connection: this.connection }).catch(() => undefined);
    this.shut("closed by the client");
  }

  private shut(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.onCloseHandler(reason);
  }
}

/** Connects through the in-process Tauri plugin. */
export async function connectTauriPlugin(options?: ClientOptions): Promise<DbBridge> {
  return new DbBridge(await TauriPluginTransport.open(), options);
}

export interface SidecarOptions extends ClientOptions {
  /** The `externalBin` entry, e.g. `"binaries/dbbridge"`. */
  program?: string;
  /** Arguments before `serve`. */
  args?: string[];
}

/** The bridge as a Tauri sidecar over its stdio (`@tauri-apps/plugin-shell`). */
export class TauriSidecarTransport implements Transport {
  private onMessageHandler: (message: string) => void = () => undefined;
  private onCloseHandler: (reason: string) => void = () => undefined;
  private closed = false;

  private constructor(private readonly child: { write(data: string): Promise<void>; kill(): Promise<void> }) {}

  static async open(options: SidecarOptions = {}): Promise<TauriSidecarTransport> {
    const { Command } = await import("@tauri-apps/plugin-shell");
    const command = Command.sidecar(options.program ?? "binaries/dbbridge", [...(options.args ?? []), "serve"]);
    let transport: TauriSidecarTransport | undefined;
    // plugin-shell emits stdout line by line; the splitter copes either way.
    const lines = new LineSplitter((line) => transport?.onMessageHandler(line));
    command.stdout.on("data", (line) => lines.push(line.endsWith("\n") ? line : `${line}\n`));
    command.on("close", ({ code, signal }) => transport?.shut(`the sidecar exited (code ${code}, signal ${signal})`));
    command.on("error", (error) => transport?.shut(`the sidecar failed: ${error}`));
    transport = new TauriSidecarTransport(await command.spawn());
    return transport;
  }

  send(message: string): void {
    if (this.closed) throw new Error("the sidecar is gone");
    this.child.write(`${message}\n`).catch((error: unknown) => this.shut(`writing to the sidecar: ${String(error)}`));
  }

  onMessage(handler: (message: string) => void): void {
    this.onMessageHandler = handler;
  }

  onClose(handler: (reason: string) => void): void {
    this.onCloseHandler = handler;
  }

  /** plugin-shell cannot close a child's stdin alone: ask the bridge to stop, then kill. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.child.write(`${JSON.stringify({ jsonrpc: "2.0", id: 0, method: "bridge.shutdown" })}\n`).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 500));
    if (!this.closed) await this.child.kill().catch(() => undefined);
    this.shut("closed by the client");
  }

  private shut(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.onCloseHandler(reason);
  }
}

/** Spawns the sidecar and returns a client over its stdio. */
export async function connectTauriSidecar(options?: SidecarOptions): Promise<DbBridge> {
  return new DbBridge(await TauriSidecarTransport.open(options), options);
}
