/**
 * The PostgreSQL sink: schema, and one idempotent statement per batch. A batch is written by a single
 * statement (data-modifying CTEs), so it is one transaction and one round trip: the idempotency record of
 * each message id (`user_logins_ledger`) commits together with its row or its rejection, or not at all.
 */
import pg from "pg";
import type { Logger } from "../log.ts";
import { requireSchema } from "./schema.ts";

/** One valid login, masked, ready to store. */
export interface LoginRecord {
  kind: "login";
  messageId: string;
  userId: string;
  deviceType: string | null;
  maskedIp: string | null;
  maskedDeviceId: string | null;
  locale: string | null;
  appVersion: number | null;
  /** UTC date, "YYYY-MM-DD". */
  createDate: string;
}

/** One rejected message, as recorded in `user_logins_rejected`. */
export interface RejectionRecord {
  kind: "rejection";
  messageId: string;
  reason: string;
  /** The body as JSON with PII replaced by tokens; null when the body was not a JSON object. */
  bodyRedacted: string | null;
}

export type SinkRecord = LoginRecord | RejectionRecord;

export interface WriteResult {
  /** New rows in user_logins. */
  inserted: number;
  /** New rows in user_logins_rejected. */
  rejected: number;
  /** Records whose message id was already written (by an earlier delivery). */
  duplicates: number;
}

export interface Sink {
  /** Checks (no DDL) that `masq migrate` made this masq's schema; a ConfigError naming migrate if not. */
  checkSchema(): Promise<void>;
  /** Which of these message ids the ledger already holds (committed earlier). */
  written(messageIds: readonly string[]): Promise<Set<string>>;
  /** Writes a batch atomically; message ids already in the ledger are skipped and counted. */
  write(records: readonly SinkRecord[]): Promise<WriteResult>;
  close(): Promise<void>;
}

export { SCHEMA_SQL } from "./schema.ts";

export const WRITE_SQL = `
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::integer[], $9::date[], $10::text[], $11::text[])
    AS t(message_id, outcome, user_id, device_type, masked_ip, masked_device_id, locale,
         app_version, create_date, reason, body_redacted)
), fresh AS (
  INSERT INTO user_logins_ledger (message_id, outcome)
  SELECT message_id, outcome FROM input ORDER BY message_id
  ON CONFLICT (message_id) DO NOTHING
  RETURNING message_id
), logins AS (
  INSERT INTO user_logins (user_id, device_type, masked_ip, masked_device_id, locale, app_version, create_date)
  SELECT i.user_id, i.device_type, i.masked_ip, i.masked_device_id, i.locale, i.app_version, i.create_date
  FROM input i JOIN fresh USING (message_id) WHERE i.outcome = 'inserted'
  RETURNING 1
), rejects AS (
  INSERT INTO user_logins_rejected (message_id, reason, body_redacted, rejected_at)
  SELECT i.message_id, i.reason, i.body_redacted, now()
  FROM input i JOIN fresh USING (message_id) WHERE i.outcome = 'rejected'
  ON CONFLICT (message_id) DO NOTHING
  RETURNING 1
)
SELECT (SELECT count(*) FROM fresh)::int AS fresh,
       (SELECT count(*) FROM logins)::int AS inserted,
       (SELECT count(*) FROM rejects)::int AS rejected`;

/** The column arrays of WRITE_SQL for a batch (ids sorted and deduplicated: fewer lock waits). */
export function toParameters(records: readonly SinkRecord[]): unknown[][] {
  const byId = new Map<string, SinkRecord>();
  for (const r of records) if (!byId.has(r.messageId)) byId.set(r.messageId, r);
  const sorted = [...byId.values()].sort((
    a,
    b,
  ) => (a.messageId < b.messageId ? -1 : a.messageId > b.messageId ? 1 : 0));
  const cols: unknown[][] = Array.from({ length: 11 }, () => []);
  for (const r of sorted) {
    const login = r.kind === "login" ? r : undefined;
    const rej = r.kind === "rejection" ? r : undefined;
    const row = [
      r.messageId,
      login ? "inserted" : "rejected",
      login?.userId ?? null,
      login?.deviceType ?? null,
      login?.maskedIp ?? null,
      login?.maskedDeviceId ?? null,
      login?.locale ?? null,
      login?.appVersion ?? null,
      login?.createDate ?? null,
      rej?.reason ?? null,
      rej?.bodyRedacted ?? null,
    ];
    row.forEach((v, i) => cols[i].push(v));
  }
  return cols;
}

const PG_DATE = 1082;
export const pgTypes = {
  // Dates stay "YYYY-MM-DD" text: a JS Date would shift them by the local time zone.
  getTypeParser: (oid: number, format?: "text" | "binary") =>
    oid === PG_DATE ? (v: string) => v : pg.types.getTypeParser(oid, format),
};

export interface PostgresSinkOptions {
  poolSize: number;
  log: Logger;
  /** Give up connecting after this long (start-up checks use it to fail fast). */
  connectTimeoutMs?: number;
}

/**
 * Opens a pool (node-postgres) and returns the sink.
 *
 * @example
 * ```ts
 * const sink = createPostgresSink("postgres://postgres@localhost/postgres", { poolSize: 4, log });
 * await sink.checkSchema();
 * await sink.write([{ kind: "rejection", messageId: "m1", reason: "user_id is missing", bodyRedacted: "{}" }]);
 * ```
 */
export function createPostgresSink(url: string, opts: PostgresSinkOptions): Sink & { pool: pg.Pool } {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.poolSize,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: "masq",
    types: pgTypes,
  });
  // An idle connection dropped by a restarting server must not crash the process; the next query
  // gets a fresh connection, and the failed write is retried by the pipeline.
  pool.on("error", (err: Error) => opts.log.warn("idle database connection lost", { error: err.message }));

  let prepare = false;
  return {
    pool,
    async checkSchema() {
      await requireSchema(pool);
      // A named statement is parsed and planned once per connection (about 40% less time per batch on
      // PostgreSQL 15), but PGlite's multiplexer shares one backend between clients, where the name would
      // clash: there each batch is an unnamed statement.
      const version = await pool.query("SELECT version() AS v");
      prepare = !String(version.rows[0]?.v).includes("PGlite");
    },
    async written(messageIds) {
      const res = await pool.query(
        "SELECT message_id FROM user_logins_ledger WHERE message_id = ANY($1::text[])",
        [
          messageIds,
        ],
      );
      return new Set(res.rows.map((r: { message_id: string }) => r.message_id));
    },
    async write(records) {
      if (records.length === 0) return { inserted: 0, rejected: 0, duplicates: 0 };
      const values = toParameters(records);
      const res = await pool.query(
        prepare ? { name: "masq_write_batch", text: WRITE_SQL, values } : { text: WRITE_SQL, values },
      );
      const row = res.rows[0] as { fresh: number; inserted: number; rejected: number };
      return { inserted: row.inserted, rejected: row.rejected, duplicates: records.length - row.fresh };
    },
    async close() {
      await pool.end();
    },
  };
}

/** SQLSTATE of a driver error, if any. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  // Classes are a digit then a character, or F0, HV, P0, XX; Node's "EPIPE" and friends are not SQLSTATEs.
  return typeof code === "string" && /^([0-9][0-9A-Z]|F0|HV|P0|XX)[0-9A-Z]{3}$/.test(code) ? code : undefined;
}

/**
 * True for errors in the data of a batch (classes 22 data exception, 23 integrity violation): retrying
 * the same rows cannot help, but splitting the batch isolates the row at fault.
 */
export function isDataError(err: unknown): boolean {
  const s = sqlState(err);
  return s !== undefined && (s.startsWith("22") || s.startsWith("23"));
}

/**
 * True for errors an outage produces and that a later attempt may not: lost or refused connections,
 * server shutdown, too many connections, serialization failures and deadlocks, timeouts.
 */
export function isTransientDbError(err: unknown): boolean {
  const s = sqlState(err);
  if (s !== undefined) {
    return s.startsWith("08") || s.startsWith("53") || s.startsWith("57P") || s === "40001" ||
      s === "40P01" || s === "55P03" || s === "57014";
  }
  // No SQLSTATE: a socket-level failure (ECONNREFUSED, ECONNRESET, timeouts, "Connection terminated").
  // A TypeError or RangeError is a bug, not an outage: retrying it would only hide it.
  return err instanceof Error && !(err instanceof TypeError) && !(err instanceof RangeError);
}
