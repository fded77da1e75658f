import type { Client } from "./client.js";
import { BridgeError } from "./errors.js";
import { Feed } from "./feed.js";
import type {
  BackupDoneEvent,
  BackupProgressEvent,
  BackupRestoreParams,
  BackupStartParams,
  ExportDoneEvent,
  ExportProgressEvent,
  ExportStartParams,
  RestoreDoneEvent,
  RestoreProgressEvent,
  RpcError,
} from "./protocol.js";

export interface JobOptions<P> {
  /** Each progress event as it arrives. */
  onProgress?: (progress: P) => void;
  /** Aborting cancels the job; the promise then resolves with `status: "cancelled"`. */
  signal?: AbortSignal;
}

type Done = { status: string; error?: RpcError };

/** The one shape of every job: start, follow progress, cancel on abort, end on done. */
async function follow<P, D extends Done, E extends "backup.progress" | "backup.done" | "backup.restore.progress" | "backup.restore.done" | "export.progress" | "export.done">(
  client: Client,
  events: readonly [E, E],
  idOf: (params: never) => string,
  begin: () => Promise<string>,
  cancel: ((id: string) => Promise<unknown>) | undefined,
  options: JobOptions<P>,
): Promise<D> {
  if (options.signal?.aborted) throw new BridgeError("ABORTED", "the job was aborted before it started");
  const feed = new Feed(client, events, () => true, idOf as (p: unknown) => string);
  let id: string;
  try {
    id = await begin();
  } catch (error) {
    feed.dispose();
    throw error;
  }
  feed.bind(id);
  const onAbort = (): void => {
    cancel?.(id).catch(() => undefined);
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      const e = await feed.next();
      if (e.event === events[1]) {
        const done = e.params as unknown as D;
        if (done.status === "failed" && done.error) throw BridgeError.from(done.error);
        return done;
      }
      options.onProgress?.(e.params as unknown as P);
    }
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    feed.dispose();
  }
}

/** Backs a database up; resolves to `backup.done`, throws the job's error when it failed. */
export function backup(client: Client, params: BackupStartParams, options: JobOptions<BackupProgressEvent> = {}): Promise<BackupDoneEvent> {
  return follow(
    client,
    ["backup.progress", "backup.done"],
    (p: { backupId: string }) => p.backupId,
    async () => (await client.call("backup.start", params)).backupId,
    (backupId) => client.call("backup.cancel", { backupId }),
    options,
  );
}

/**
 * Restores a backup; resolves to `backup.restore.done`. A restore cannot be
 * cancelled once started (the contract has no `backup.restore.cancel`), so
 * it takes no signal.
 */
export function restore(client: Client, params: BackupRestoreParams, options: Omit<JobOptions<RestoreProgressEvent>, "signal"> = {}): Promise<RestoreDoneEvent> {
  return follow(
    client,
    ["backup.restore.progress", "backup.restore.done"],
    (p: { restoreId: string }) => p.restoreId,
    async () => (await client.call("backup.restore", params)).restoreId,
    undefined,
    options,
  );
}

/** Exports a table or a query's result to a file; resolves to `export.done`. */
export function exportData(client: Client, params: ExportStartParams, options: JobOptions<ExportProgressEvent> = {}): Promise<ExportDoneEvent> {
  return follow(
    client,
    ["export.progress", "export.done"],
    (p: { exportId: string }) => p.exportId,
    async () => (await client.call("export.start", params)).exportId,
    (exportId) => client.call("export.cancel", { exportId }),
    options,
  );
}
