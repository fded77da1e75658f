import type { ErrorCode, JsonValue, RpcError } from "./protocol.js";

/** Codes the client itself raises: the bridge never sends these. */
export type ClientErrorCode =
  /** The bridge process exited or the socket closed with the call pending. */
  | "DISCONNECTED"
  /** No answer within the call's timeout (the bridge may still be working on it). */
  | "TIMEOUT"
  /** The caller's AbortSignal fired before the answer came. */
  | "ABORTED"
  /** The bridge sent something that is not the contract. */
  | "PROTOCOL_ERROR";

/** A failed envelope, a failed job or query, or a client-side failure. */
export class BridgeError extends Error {
  readonly code: ErrorCode | ClientErrorCode;
  readonly details: JsonValue | undefined;

  constructor(code: ErrorCode | ClientErrorCode, message: string, details?: JsonValue) {
    super(message);
    this.name = "BridgeError";
    this.code = code;
    this.details = details;
  }

  static from(error: RpcError): BridgeError {
    return new BridgeError(error.code, error.message, error.details);
  }
}
