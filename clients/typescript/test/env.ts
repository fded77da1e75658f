// What the tests run against: the real dbbridge binary and real servers.
// `cargo xtask with-servers -- npm test` (the README's test command) names
// throwaway PostgreSQL and MariaDB servers in DBBRIDGE_TEST_POSTGRES_URL and
// DBBRIDGE_TEST_MYSQL_URL. With CI set, a missing server or binary fails the
// test; without CI it is skipped with a line saying so, never silently.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { TestContext } from "node:test";
import { fileURLToPath } from "node:url";

import type { ConnectionSpec, DbBridge } from "../src/index.js";
import { connectStdio, type StdioTransport } from "../src/node.js";

export const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const REPO_DIR = resolve(PACKAGE_DIR, "../..");
export const BIN = process.env.DBBRIDGE_BIN ?? join(REPO_DIR, "target/debug/dbbridge");

export type Engine = "sqlite" | "postgres" | "mysql";

/** A skip without CI, a failure with it. */
export function need(t: TestContext, what: string, present: boolean): boolean {
  if (present) return true;
  if (process.env.CI) throw new Error(`CI is set but ${what} is missing`);
  t.skip(`SKIPPED: ${what} is missing`);
  return false;
}

export function haveBinary(t: TestContext): boolean {
  return need(t, `the dbbridge binary (${BIN}; run cargo build)`, existsSync(BIN));
}

export function tempDir(t: TestContext, tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), `dbbridge-ts-${tag}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A bridge over stdio with its own data dir, closed when the test ends. */
export function stdioBridge(t: TestContext, extraEnv: Record<string, string> = {}): DbBridge<StdioTransport> {
  const dir = tempDir(t, "data");
  const bridge = connectStdio({
    binary: BIN,
    args: ["--data-dir", dir],
    env: { ...process.env, DBBRIDGE_SECRET_BACKEND: "file", DBBRIDGE_SECRET_KEY: "ts-test-key-0123456789abcdef", ...extraEnv },
    stderr: "ignore",
  });
  t.after(() => bridge.close());
  return bridge;
}

/** `dbbridge serve --ws 127.0.0.1:0`; resolves to its URL and token. */
export async function wsBridge(t: TestContext, allowOrigins: string[] = []): Promise<{ url: string; token: string; dataDir: string }> {
  const dataDir = tempDir(t, "ws");
  const args = ["--data-dir", dataDir, "serve", "--ws", "127.0.0.1:0"];
  for (const origin of allowOrigins) args.push("--allow-origin", origin);
  const child = spawn(BIN, args, {
    stdio: ["ignore", "pipe", "ignore"],
    env: { ...process.env, DBBRIDGE_SECRET_BACKEND: "file", DBBRIDGE_SECRET_KEY: "ts-test-key-0123456789abcdef" },
  });
  t.after(() => {
    child.kill("SIGTERM");
  });
  const first = await new Promise<string>((resolvePromise, reject) => {
    let text = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      text += chunk;
      const nl = text.indexOf("\n");
      if (nl >= 0) resolvePromise(text.slice(0, nl));
    });
    child.on("exit", (code) => reject(new Error(`dbbridge serve --ws exited with ${code}`)));
  });
  const { listening, token } = JSON.parse(first) as { listening: string; token: string };
  return { url: listening, token, dataDir };
}

interface ServerUrl {
  host: string;
  port: number;
  user: string;
  password: string;
}

function parse(url: string | undefined): ServerUrl | undefined {
  if (!url) return undefined;
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password) };
}

export const POSTGRES = parse(process.env.DBBRIDGE_TEST_POSTGRES_URL);
export const MYSQL = parse(process.env.DBBRIDGE_TEST_MYSQL_URL);

export function haveEngine(t: TestContext, engine: Engine): boolean {
  if (engine === "postgres") return need(t, "a PostgreSQL server (DBBRIDGE_TEST_POSTGRES_URL)", POSTGRES !== undefined);
  if (engine === "mysql") return need(t, "a MariaDB server (DBBRIDGE_TEST_MYSQL_URL)", MYSQL !== undefined);
  return true;
}

let nextDb = 1;

/**
 * A fresh database on the engine, made through the bridge itself: for
 * SQLite a new file, for the servers `CREATE DATABASE` on a session that is
 * closed again. Returns its connection spec.
 */
export async function freshDatabase(bridge: DbBridge, t: TestContext, engine: Engine): Promise<ConnectionSpec> {
  const name = `ts_${process.pid}_${nextDb++}`;
  if (engine === "sqlite") return { kind: "sqlite", path: join(tempDir(t, "sqlite"), `${name}.db`), create: true };
  const server = engine === "postgres" ? POSTGRES : MYSQL;
  if (!server) throw new Error(`no ${engine} server`);
  const base = { kind: engine, host: server.host, port: server.port, user: server.user, password: server.password, ...(engine === "postgres" ? { sslMode: "disable" as const } : {}) };
  const admin = await bridge.call("session.open", { connection: (engine === "postgres" ? { ...base, database: "postgres" } : base) as ConnectionSpec });
  await bridge.runQuery(admin.sessionId, `CREATE DATABASE ${name}`);
  await bridge.call("session.close", { sessionId: admin.sessionId });
  return { ...base, database: name } as ConnectionSpec;
}

/** A query that runs until cancelled, per engine. */
export const LONG_QUERY: Record<Engine, string> = {
  sqlite: "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c",
  postgres: "SELECT pg_sleep(60)",
  mysql: "SELECT SLEEP(60)",
};

/** Rows 1..n in a table `items(id, name, price)`, the engine's own way. */
export function seedSql(engine: Engine, rows: number): string {
  const create = "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, price DECIMAL(12,2))";
  const insert = {
    sqlite: `INSERT INTO items WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ${rows}) SELECT n, 'item ' || n, n * 1.25 FROM c`,
    postgres: `INSERT INTO items SELECT g, 'item ' || g, g * 1.25 FROM generate_series(1, ${rows}) g`,
    // MariaDB's Sequence engine (built in since 10.1).
    mysql: `INSERT INTO items SELECT seq, CONCAT('item ', seq), seq * 1.25 FROM seq_1_to_${rows}`,
  }[engine];
  return `${create};\n${insert}`;
}
