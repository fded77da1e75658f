import { Client, type ClientOptions } from "./client.js";
import { backup, exportData, type JobOptions, restore } from "./jobs.js";
import type {
  BackupDoneEvent,
  BackupProgressEvent,
  BackupRestoreParams,
  BackupStartParams,
  ExportDoneEvent,
  ExportProgressEvent,
  ExportStartParams,
  QueryDoneEvent,
  QueryResultEvent,
  RestoreDoneEvent,
  RestoreProgressEvent,
} from "./protocol.js";
import { type BatchesOptions, Pager, type QueryOptions, queryBatches, type RunQueryOptions, runQuery } from "./query.js";
import type { Transport } from "./transport.js";

/**
 * The client with the helpers every front end writes: queries (streamed,
 * iterated with back-pressure, paged) and jobs with progress.
 */
export class DbBridge<T extends Transport = Transport> extends Client<T> {
  constructor(transport: T, options?: ClientOptions) {
    super(transport, options);
  }

  /** Runs a query to its end; see `runQuery`. */
  runQuery(sessionId: string, sql: string, options?: RunQueryOptions): Promise<QueryDoneEvent> {
    return runQuery(this, sessionId, sql, options);
  }

  /** A query's batches with back-pressure; see `queryBatches`. */
  batches(sessionId: string, sql: string, options?: BatchesOptions): AsyncGenerator<QueryResultEvent, QueryDoneEvent, undefined> {
    return queryBatches(this, sessionId, sql, options);
  }

  /** A result grid's pages, fetched on demand; see `Pager`. */
  pager(sessionId: string, sql: string, options?: Omit<QueryOptions, "window"> & { pageSize?: number }): Promise<Pager> {
    return Pager.open(this, sessionId, sql, options);
  }

  backup(params: BackupStartParams, options?: JobOptions<BackupProgressEvent>): Promise<BackupDoneEvent> {
    return backup(this, params, options);
  }

  restore(params: BackupRestoreParams, options?: Omit<JobOptions<RestoreProgressEvent>, "signal">): Promise<RestoreDoneEvent> {
    return restore(this, params, options);
  }

  exportData(params: ExportStartParams, options?: JobOptions<ExportProgressEvent>): Promise<ExportDoneEvent> {
    return exportData(this, params, options);
  }
}
