import { type ChildProcess, spawn } from "node:child_process";

import { DbBridge } from "./bridge.js";
import type { ClientOptions } from "./client.js";
import { LineSplitter, type Transport } from "./transport.js";

export interface StdioOptions extends ClientOptions {
  /** The `dbbridge` binary. */
  binary: string;
  /** Arguments before `serve` (e.g. `["--data-dir", dir]`). */
  args?: string[];
  /** The environment (e.g. `DBBRIDGE_SECRET_KEY`); default the parent's. */
  env?: NodeJS.ProcessEnv;
  /** The bridge's stderr (its log lines): `"inherit"` or `"ignore"` (default). */
  stderr?: "inherit" | "ignore";
}

/** The bridge as a child process speaking JSON-RPC over its stdio. */
export class StdioTransport implements Transport {
  private onMessageHandler: (message: string) => void = () => undefined;
  private onCloseHandler: (reason: string) => void = () => undefined;
  private readonly exited: Promise<void>;
  readonly child: ChildProcess;

  constructor(options: StdioOptions) {
    this.child = spawn(options.binary, [...(options.args ?? []), "serve"], {
      stdio: ["pipe", "pipe", options.stderr ?? "ignore"],
      env: options.env ?? process.env,
    });
    const lines = new LineSplitter((line) => this.onMessageHandler(line));
    this.child.stdout?.setEncoding("utf8");
    this.child.stdout?.on("data", (chunk: string) => lines.push(chunk));
    // Writing to a bridge that has just died: the exit handler reports it.
    this.child.stdin?.on("error", () => undefined);
    this.exited = new Promise((resolve) => {
      let reported = false;
      const report = (reason: string): void => {
        if (reported) return;
        reported = true;
        this.onCloseHandler(reason);
        resolve();
      };
      this.child.on("error", (error) => report(`could not start ${options.binary}: ${error.message}`));
      this.child.on("exit", (code, signal) => report(signal ? `the bridge was killed by ${signal}` : `the bridge exited with code ${code}`));
    });
  }

  /** The bridge's pid. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  send(message: string): void {
    const stdin = this.child.stdin;
    if (!stdin || stdin.destroyed || !stdin.writable) throw new Error("the bridge's stdin is closed");
    stdin.write(message + "\n");
  }

  onMessage(handler: (message: string) => void): void {
    this.onMessageHandler = handler;
  }

  onClose(handler: (reason: string) => void): void {
    this.onCloseHandler = handler;
  }

  /** Closes stdin (the bridge shuts down on EOF) and waits for the exit; SIGKILL after 10 s. */
  async close(): Promise<void> {
    this.child.stdin?.end();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Spawns `binary serve` and returns a client over its stdio. */
export function connectStdio(options: StdioOptions): DbBridge<StdioTransport> {
  return new DbBridge(new StdioTransport(options), options);
}
