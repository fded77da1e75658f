/**
 * A transport carries JSON-RPC messages, one JSON text each, both ways.
 * The client owns framing above it; a transport only moves strings.
 */
export interface Transport {
  /** Sends one message. Throws when the transport is closed. */
  send(message: string): void;
  /**
   * Sets the one receiver of incoming messages: JSON text, or a message a
   * transport already has parsed (the Tauri plugin's Channel delivers
   * the bridge's JSON parsed, never encoded twice).
   */
  onMessage(handler: (message: string | object) => void): void;
  /** Sets the one receiver of the close, with a reason for humans. */
  onClose(handler: (reason: string) => void): void;
  /** Closes the transport (ends the bridge's stdin, or the socket). */
  close(): Promise<void>;
}

/**
 * Splits a byte stream into lines (stdio, a Tauri sidecar in raw mode):
 * feeds text chunks in, hands each complete line out without its newline.
 */
export class LineSplitter {
  private pending = "";

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: string): void {
    let text = this.pending + chunk;
    let newline = text.indexOf("\n");
    while (newline >= 0) {
      const line = text.slice(0, newline).replace(/\r$/, "");
      text = text.slice(newline + 1);
      if (line.length > 0) this.onLine(line);
      newline = text.indexOf("\n");
    }
    this.pending = text;
  }
}
