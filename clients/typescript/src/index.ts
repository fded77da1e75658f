// @dbbridge/client: a typed client for dbbridge. Transports live in their own
// entry points so a browser bundle never pulls in Node or Tauri:
//   @dbbridge/client/node       the bridge as a Node child process (stdio)
//   @dbbridge/client/websocket  WebSocket with the token
//   @dbbridge/client/tauri      the Tauri plugin, or the bridge as a sidecar
//   @dbbridge/client/electron   the main-process relay and the renderer side
export { DbBridge } from "./bridge.js";
export { Client, type CallOptions, type ClientOptions, type EventName, type MethodName, type ParamsOf, type ResultOf } from "./client.js";
export { BridgeError, type ClientErrorCode } from "./errors.js";
export { backup, exportData, type JobOptions, restore } from "./jobs.js";
export { type BatchesOptions, type Page, Pager, type QueryOptions, queryBatches, type RunQueryOptions, runQuery } from "./query.js";
export { LineSplitter, type Transport } from "./transport.js";
export type * from "./protocol.js";
