/**
 * One PostgreSQL connection for a lifecycle command, the transaction helper, the access log, and the test
 * hook that stops a command inside its transaction.
 *
 * @module
 */
import pg from "pg";
import type { Env } from "../config.ts";
import { pgTypes } from "../sink/postgres.ts";
import { connectClient, processEnv } from "../sink/connection.ts";

/**
 * Connects one client through lib/sink/connection.ts (libpq's sslmode and PGSSL* settings; a ConfigError
 * line naming the setting, password redacted, when it cannot).
 *
 * @example
 * ```ts
 * import { type AccessEntry, connectDatabase, inTransaction, logAccess, pausePoint } from "./db.ts";
 *
 * const client = await connectDatabase("postgres://postgres@127.0.0.1:5432/test", "recover");
 * const entry: AccessEntry = {
 *   action: "forget_token", osUser: "dpo", reason: "ticket 1", outcome: "removed", field: "ip", token: "ab".repeat(32),
 * };
 * await inTransaction(client, async () => {
 *   await logAccess(client, [entry]);
 *   await pausePoint((name) => Deno.env.get(name), "forget"); // returns at once unless MASQ_TEST_PAUSE=forget
 * });
 * await client.end();
 * ```
 */
export function connectDatabase(url: string, command: string, env: Env = processEnv): Promise<pg.Client> {
  return connectClient(url, env, {
    types: pgTypes,
    application_name: `masq ${command}`,
    connectionTimeoutMillis: 10_000,
  });
}

/** Runs `fn` in a transaction: COMMIT when it returns, ROLLBACK when it throws. */
export async function inTransaction<T>(client: pg.Client, fn: () => Promise<T>): Promise<T> {
  await client.query("BEGIN");
  try {
    const out = await fn();
    await client.query("COMMIT");
    return out;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  }
}

/**
 * One line of `pii_access_log` written by its command; time, database role and session role are stamped
 * by the database's trigger, whatever the statement says. Lines of reads (recover, rekey) are written only
 * by the database's own functions (lib/sink/schema.ts).
 */
export interface AccessEntry {
  action: "forget_token" | "forget_user" | "redrive";
  osUser: string;
  reason: string;
  outcome: string;
  field?: string | null;
  token?: string | null;
  userId?: string | null;
  messageId?: string | null;
}

/** Appends entries to pii_access_log (in the caller's transaction). */
export async function logAccess(client: pg.Client, entries: readonly AccessEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await client.query(
    `INSERT INTO pii_access_log (os_user, action, field, token, user_id, reason, outcome, message_id)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                          $8::text[])`,
    [
      entries.map((e) => e.osUser),
      entries.map((e) => e.action),
      entries.map((e) => e.field ?? null),
      entries.map((e) => e.token ?? null),
      entries.map((e) => e.userId ?? null),
      entries.map((e) => e.reason),
      entries.map((e) => e.outcome),
      entries.map((e) => e.messageId ?? null),
    ],
  );
}

/**
 * Test hook (for the crash tests of forget and rekey), harmless in production: with MASQ_TEST_PAUSE=<point> set, a command reaching that point
 * writes "masq: paused at <point>" to stderr and waits forever, so a test can SIGKILL it mid-transaction.
 * Points: `forget` (after the rows are deleted, before the vault and the commit), `convert` (vault-convert,
 * after the first batch committed) and `rekey` (after the
 * first batch committed, before the next).
 */
export async function pausePoint(env: Env, point: string): Promise<void> {
  if (env("MASQ_TEST_PAUSE") !== point) return;
  console.error(`masq: paused at ${point}`);
  // A timer keeps the event loop alive (a bare pending promise would end the process).
  await new Promise(() => setInterval(() => {}, 60_000));
}
