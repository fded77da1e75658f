import type { Client } from "./client.js";
import { BridgeError } from "./errors.js";
import { Feed } from "./feed.js";
import type { CellValue, ColumnInfo, QueryDoneEvent, QueryResultEvent, QueryRunParams } from "./protocol.js";

/** `query.run` options other than the session and the SQL. */
export type QueryOptions = Omit<QueryRunParams, "sessionId" | "sql">;

export interface RunQueryOptions extends Omit<QueryOptions, "window"> {
  /** Each batch as it arrives. */
  onBatch?: (batch: QueryResultEvent) => void;
  /** Aborting sends `query.cancel`; the promise then resolves with `status: "cancelled"`. */
  signal?: AbortSignal;
}

type QueryEvent = "query.result" | "query.paused" | "query.done";
const QUERY_EVENTS: readonly QueryEvent[] = ["query.result", "query.paused", "query.done"];

async function start(client: Client, sessionId: string, sql: string, options: QueryOptions): Promise<{ queryId: string; feed: Feed<QueryEvent> }> {
  const feed = new Feed(
    client,
    QUERY_EVENTS,
    (p) => p.sessionId === sessionId,
    (p) => p.queryId,
  );
  try {
    const { queryId } = await client.call("query.run", { ...options, sessionId, sql });
    feed.bind(queryId);
    return { queryId, feed };
  } catch (error) {
    feed.dispose();
    throw error;
  }
}

function finished(done: QueryDoneEvent): QueryDoneEvent {
  if (done.status === "failed" && done.error) throw BridgeError.from(done.error);
  return done;
}

/**
 * Runs a query and resolves to its summary (`query.done`). A failed query
 * throws its `BridgeError` (`QUERY_FAILED`, with `details.sqlstate`); a
 * cancelled or timed-out one resolves with that `status`.
 */
export async function runQuery(client: Client, sessionId: string, sql: string, options: RunQueryOptions = {}): Promise<QueryDoneEvent> {
  const { onBatch, signal, ...run } = options;
  if (signal?.aborted) throw new BridgeError("ABORTED", "the query was aborted before it started");
  const { feed } = await start(client, sessionId, sql, run);
  const cancel = (): void => {
    client.call("query.cancel", { sessionId }).catch(() => undefined);
  };
  signal?.addEventListener("abort", cancel, { once: true });
  try {
    for (;;) {
      const e = await feed.next();
      if (e.event === "query.result") onBatch?.(e.params);
      else if (e.event === "query.done") return finished(e.params);
    }
  } finally {
    signal?.removeEventListener("abort", cancel);
    feed.dispose();
  }
}

export interface BatchesOptions extends Omit<QueryOptions, "window"> {
  /**
   * Rows the bridge may send ahead of the consumer (default 2000). Credit is
   * granted with `query.fetch` as batches are taken, so a consumer that stops
   * pulling pauses this query alone; the shared pipe keeps flowing.
   */
  window?: number;
}

/**
 * A query's batches as an async iterator with real back-pressure. Leaving
 * the loop early (`break`, a throw) cancels the query. The iterator's return
 * value is the summary.
 */
export async function* queryBatches(
  client: Client,
  sessionId: string,
  sql: string,
  options: BatchesOptions = {},
): AsyncGenerator<QueryResultEvent, QueryDoneEvent, undefined> {
  const window = options.window ?? 2000;
  const { queryId, feed } = await start(client, sessionId, sql, { ...options, window });
  let taken = 0; // rows taken by the consumer and not yet granted back
  let done: QueryDoneEvent | undefined;
  try {
    for (;;) {
      const e = await feed.next();
      if (e.event === "query.done") {
        done = e.params;
        return finished(done);
      }
      if (e.event !== "query.result") continue;
      yield e.params;
      taken += e.params.rows.length;
      if (taken * 2 >= window) {
        const grant = taken;
        taken = 0;
        // The query may have ended meanwhile: its done event says how.
        await client.call("query.fetch", { sessionId, queryId, rows: grant }).catch(() => undefined);
      }
    }
  } finally {
    if (!done) await stop(client, sessionId, feed);
    feed.dispose();
  }
}

/** Cancels a query that is being abandoned and waits (briefly) for its end. */
async function stop(client: Client, sessionId: string, feed: Feed<QueryEvent>): Promise<void> {
  try {
    await client.call("query.cancel", { sessionId }, { timeoutMs: 5000 });
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const e = await Promise.race([feed.next(), new Promise<undefined>((r) => setTimeout(r, deadline - Date.now()))]);
      if (!e || e.event === "query.done") return;
    }
  } catch {
    // The bridge is gone or the session closed: nothing left to stop.
  }
}

/** One page of a result grid. */
export interface Page {
  resultIndex: number;
  columns: ColumnInfo[];
  rows: CellValue[][];
  /** Rows before this page in its result set. */
  offset: number;
  /** No page follows. */
  last: boolean;
}

/**
 * A result grid's pages, fetched on demand: the query runs with a window of
 * one page, and each `nextPage()` grants one page more with `query.fetch`.
 * Between pages the query sits paused, its read stopped, holding no rows.
 * A page never spans two result sets.
 */
export class Pager {
  private readonly chunks: { resultIndex: number; rows: CellValue[][] }[] = [];
  private readonly columns = new Map<number, ColumnInfo[]>();
  private readonly offsets = new Map<number, number>();
  private credit: number;
  private summary: QueryDoneEvent | undefined;

  private constructor(
    private readonly client: Client,
    readonly sessionId: string,
    readonly queryId: string,
    readonly pageSize: number,
    private readonly feed: Feed<QueryEvent>,
  ) {
    this.credit = pageSize;
  }

  static async open(client: Client, sessionId: string, sql: string, options: Omit<QueryOptions, "window"> & { pageSize?: number } = {}): Promise<Pager> {
    const { pageSize = 100, ...run } = options;
    const { queryId, feed } = await start(client, sessionId, sql, { ...run, window: pageSize });
    return new Pager(client, sessionId, queryId, pageSize, feed);
  }

  /** The query's summary once it has ended. */
  get done(): QueryDoneEvent | undefined {
    return this.summary;
  }

  /** The next page, or `null` when every row has been paged. */
  async nextPage(): Promise<Page | null> {
    while (this.buffered() < this.pageSize && !this.summary) {
      if (this.credit <= 0 && this.feed.pending === 0) {
        try {
          const { granted } = await this.client.call("query.fetch", { sessionId: this.sessionId, queryId: this.queryId, rows: this.pageSize });
          this.credit = granted;
        } catch (error) {
          // A query that ended meanwhile refuses the grant; its done event is next.
          if (!(error instanceof BridgeError) || error.code === "DISCONNECTED") throw error;
          this.credit = this.pageSize;
        }
      }
      const e = await this.feed.next();
      if (e.event === "query.result") {
        const b = e.params;
        if (b.columns) this.columns.set(b.resultIndex, b.columns);
        this.chunks.push({ resultIndex: b.resultIndex, rows: b.rows });
        this.credit -= b.rows.length;
      } else if (e.event === "query.paused") {
        this.credit = 0;
      } else if (e.event === "query.done") {
        this.summary = finished(e.params);
        this.feed.dispose();
      }
    }
    const first = this.chunks[0];
    if (!first) return null;
    const resultIndex = first.resultIndex;
    const rows: CellValue[][] = [];
    while (rows.length < this.pageSize && this.chunks[0]?.resultIndex === resultIndex) {
      const chunk = this.chunks[0];
      const take = chunk.rows.splice(0, this.pageSize - rows.length);
      rows.push(...take);
      if (chunk.rows.length === 0) this.chunks.shift();
    }
    const offset = this.offsets.get(resultIndex) ?? 0;
    this.offsets.set(resultIndex, offset + rows.length);
    return {
      resultIndex,
      columns: this.columns.get(resultIndex) ?? [],
      rows,
      offset,
      last: this.summary !== undefined && this.chunks.length === 0,
    };
  }

  /** Stops paging: cancels the query if it is still running. */
  async close(): Promise<void> {
    if (!this.summary) await stop(this.client, this.sessionId, this.feed);
    this.feed.dispose();
  }

  private buffered(): number {
    const first = this.chunks[0];
    if (!first) return 0;
    let n = 0;
    for (const c of this.chunks) if (c.resultIndex === first.resultIndex) n += c.rows.length;
    // A later result set already arrived: the current one is complete.
    return this.chunks.some((c) => c.resultIndex !== first.resultIndex) ? this.pageSize : n;
  }
}
