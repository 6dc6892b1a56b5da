/**
 * The PostgreSQL sink: schema, and one idempotent statement per batch. A batch is written by a single
 * statement (data-modifying CTEs), so it is one transaction and one round trip: the idempotency record of
 * each message id (`user_logins_ledger`) commits together with its row or its rejection, or not at all.
 */
import pg from "pg";
import type { Logger } from "../log.ts";
import { ConfigError, errorMessage } from "../errors.ts";
import type { ErrorClass, Sink, SinkRecord, VaultEntry, WriteResult } from "../types.ts";
import { excessPrivileges, requireSchema } from "./schema.ts";

export type { LoginRecord, RejectionRecord, SinkRecord, WriteResult } from "../types.ts";

/** The PostgreSQL sink; `checkSchema` verifies (no DDL) that `masq migrate` made this masq's schema. */
export interface PostgresSink extends Sink {
  /** Checks the schema version; a ConfigError naming `masq migrate` when it is missing or older. */
  checkSchema(): Promise<void>;
  readonly pool: pg.Pool;
}

/**
 * One statement for any number of batches: $1 holds each row's batch number, and the result has one row
 * per batch with its own counts. The rows are deduplicated and sorted by message id (fewer lock waits);
 * pii_vault gets each (field, token, subject key) once, never overwritten, and is not read back: ON CONFLICT
 * DO NOTHING without a conflict target needs no SELECT, and the writer has none on the vault.
 */
export const WRITE_SQL = `
WITH input AS (
  SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::text[], $9::integer[], $10::date[], $11::text[], $12::text[])
    AS t(batch, message_id, outcome, user_id, device_type, masked_ip, masked_device_id, locale,
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
), rejects AS (
  INSERT INTO user_logins_rejected (message_id, reason, body_redacted, rejected_at)
  SELECT i.message_id, i.reason, i.body_redacted, now()
  FROM input i JOIN fresh USING (message_id) WHERE i.outcome = 'rejected'
  ON CONFLICT (message_id) DO NOTHING
  RETURNING message_id
), vault AS (
  INSERT INTO pii_vault (field, token, ciphertext, key_id, subject_key_id)
  SELECT field, token, decode(ciphertext, 'hex'), key_id, subject_key_id
  FROM unnest($13::text[], $14::text[], $15::text[], $16::text[], $17::text[])
    AS v(field, token, ciphertext, key_id, subject_key_id)
  ON CONFLICT DO NOTHING
)
SELECT i.batch, count(f.message_id)::int AS fresh,
       count(f.message_id) FILTER (WHERE i.outcome = 'inserted')::int AS inserted,
       count(r.message_id)::int AS rejected
FROM input i LEFT JOIN fresh f USING (message_id) LEFT JOIN rejects r USING (message_id)
GROUP BY i.batch`;

function hex(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
  return out;
}

const byMessageId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * The parameters of WRITE_SQL for some batches: rows deduplicated by message id (the first batch to hold
 * an id keeps it) and sorted, and the vault entries deduplicated by (field, token).
 */
export function toParameters(batches: readonly (readonly SinkRecord[])[]): unknown[][] {
  const seen = new Set<string>();
  const rows: { id: string; batch: number; r: SinkRecord }[] = [];
  const vault = new Map<string, VaultEntry>();
  batches.forEach((records, batch) => {
    for (const r of records) {
      if (seen.has(r.messageId)) continue;
      seen.add(r.messageId);
      rows.push({ id: r.messageId, batch, r });
      if (r.kind === "login" && r.vault) {
        for (const v of r.vault) {
          const key = `${v.field}\0${v.token}\0${v.subjectKeyId ?? ""}`;
          if (!vault.has(key)) vault.set(key, v);
        }
      }
    }
  });
  rows.sort(byMessageId);
  const cols: unknown[][] = Array.from({ length: 17 }, () => []);
  for (const { batch, r } of rows) {
    cols[0].push(batch);
    cols[1].push(r.messageId);
    if (r.kind === "login") {
      cols[2].push("inserted");
      cols[3].push(r.userId);
      cols[4].push(r.deviceType);
      cols[5].push(r.maskedIp);
      cols[6].push(r.maskedDeviceId);
      cols[7].push(r.locale);
      cols[8].push(r.appVersion);
      cols[9].push(r.createDate);
      cols[10].push(null);
      cols[11].push(null);
    } else {
      cols[2].push("rejected");
      for (let c = 3; c <= 9; c++) cols[c].push(null);
      cols[10].push(r.reason);
      cols[11].push(r.bodyRedacted);
    }
  }
  const entries = [...vault.values()].sort((a, b) =>
    a.field < b.field
      ? -1
      : a.field > b.field
      ? 1
      : a.token < b.token
      ? -1
      : a.token > b.token
      ? 1
      : (a.subjectKeyId ?? "") < (b.subjectKeyId ?? "")
      ? -1
      : (a.subjectKeyId ?? "") > (b.subjectKeyId ?? "")
      ? 1
      : 0
  );
  for (const v of entries) {
    cols[12].push(v.field);
    cols[13].push(v.token);
    cols[14].push(hex(v.ciphertext));
    cols[15].push(v.keyId);
    cols[16].push(v.subjectKeyId ?? "");
  }
  return cols;
}

const NEEDS_ESCAPE = /["\\]/;

/**
 * A PostgreSQL array literal of text (or numbers, dates) for a `$n::type[]` parameter, built as one flat
 * string. node-postgres encodes a JavaScript array itself, but element by element, with two regular
 * expressions per element and a string of thousands of concatenated pieces, a cost per row that showed
 * in the profiles (see bench/BENCHMARKS.md). Every element is
 * quoted, so `"NULL"` the string and `NULL` stay apart; only `"` and `\` are escaped.
 * So `textArray(["a", null, 'say "hi"'])` is `{"a",NULL,"say \"hi\""}`.
 */
export function textArray(values: readonly unknown[]): string {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      parts[i] = "NULL";
      continue;
    }
    const s = String(v);
    parts[i] = NEEDS_ESCAPE.test(s) ? `"${s.replace(/["\\]/g, "\\$&")}"` : `"${s}"`;
  }
  return `{${parts.join(",")}}`;
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
  /**
   * Named prepared statements for the batch writes (parsed and planned once per server connection, which
   * saved the server a tenth to a quarter of its CPU per row: bench/BENCHMARKS.md): `on`, `off`, or `auto`
   * (default): named until the server says a name is missing or taken (SQLSTATE 26000 or 42P05, what a
   * pooler in transaction mode causes by handing a client's statements to another server connection),
   * then unnamed for the rest of the run, the refused statement sent again at once (it never ran).
   * PGlite's multiplexer shares one backend between clients: there auto means off.
   */
  namedStatements?: "auto" | "on" | "off";
}

/**
 * The name of the batch statement: its text's hash in it, so that a masq of another version, whose
 * statement a pooler may have left on a server connection under the same name, cannot run the wrong one.
 */
export const WRITE_STATEMENT_NAME = `masq_write_${fnv1a(WRITE_SQL)}`;

function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/** Whether an error is the server not knowing, or already knowing, a prepared statement's name. */
export function isPreparedStatementClash(err: unknown): boolean {
  const s = sqlState(err);
  return s === "26000" || s === "42P05";
}

/**
 * Opens a pool (node-postgres) and returns the sink. `connection` is what lib/sink/connection.ts's
 * poolConfig() made of DATABASE_URL (TLS resolved, as masq run does), or a bare URL handed to pg as is.
 *
 * @example
 * ```ts
 * import {
 *   classify,
 *   createPostgresSink,
 *   type LoginRecord,
 *   type PostgresSink,
 *   type PostgresSinkOptions,
 *   pgTypes,
 *   type RejectionRecord,
 *   type SinkRecord,
 *   sqlState,
 *   textArray,
 *   toParameters,
 *   WRITE_SQL,
 *   type WriteResult,
 * } from "./postgres.ts";
 * import { silentLogger } from "../log.ts";
 * const options: PostgresSinkOptions = { poolSize: 4, log: silentLogger };
 * const sink: PostgresSink = createPostgresSink("postgres://postgres@localhost/postgres", options);
 * await sink.checkSchema(); // the schema `masq migrate` made
 * const rejection: RejectionRecord = { kind: "rejection", messageId: "m1", reason: "user_id is missing", bodyRedacted: "{}" };
 * const login: LoginRecord = {
 *   kind: "login", messageId: "m2", userId: "u", deviceType: null, maskedIp: null, maskedDeviceId: null,
 *   locale: null, appVersion: 2003000, createDate: "2024-05-17",
 * };
 * const records: SinkRecord[] = [rejection, login];
 * try {
 *   const [result]: WriteResult[] = await sink.writeBatches([records]); // one WRITE_SQL statement
 *   console.log(result, toParameters([records]).map(textArray), WRITE_SQL.length, pgTypes);
 * } catch (err) {
 *   console.error(classify(err), sqlState(err));
 * }
 * await sink.close();
 * ```
 */
export function createPostgresSink(
  connection: string | pg.PoolConfig,
  opts: PostgresSinkOptions,
): PostgresSink {
  const pool = new pg.Pool({
    ...(typeof connection === "string" ? { connectionString: connection } : connection),
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

  const mode = opts.namedStatements ?? "auto";
  let named = mode !== "off";
  async function writeBatches(batches: readonly (readonly SinkRecord[])[]): Promise<WriteResult[]> {
    const results: WriteResult[] = batches.map((b) => ({ inserted: 0, rejected: 0, duplicates: b.length }));
    if (batches.every((b) => b.length === 0)) return results;
    const values = toParameters(batches).map(textArray);
    let res;
    // Whether this statement went out named (another one, under way at the same time, may switch modes).
    const sentNamed = named;
    try {
      res = await pool.query(
        sentNamed ? { name: WRITE_STATEMENT_NAME, text: WRITE_SQL, values } : { text: WRITE_SQL, values },
      );
    } catch (err) {
      if (!sentNamed || !isPreparedStatementClash(err)) throw err;
      if (mode === "on") {
        throw new ConfigError(
          "--db-named-statements / MASQ_DB_NAMED_STATEMENTS",
          `is on, but the server refused a named prepared statement (${
            errorMessage(err)
          }), as a pooler in transaction mode does; use auto or off there (docs/postgres.md)`,
        );
      }
      const first = named;
      named = false;
      if (first) {
        opts.log.info(
          "the server refused a named prepared statement (a pooler in transaction mode?); writing with unnamed statements from now on",
          { error: errorMessage(err), setting: "MASQ_DB_NAMED_STATEMENTS" },
        );
      }
      res = await pool.query({ text: WRITE_SQL, values });
    }
    for (const row of res.rows as { batch: number; fresh: number; inserted: number; rejected: number }[]) {
      const r = results[row.batch];
      r.inserted = row.inserted;
      r.rejected = row.rejected;
      r.duplicates -= row.fresh;
    }
    return results;
  }
  return {
    pool,
    async checkSchema() {
      const { rolePrefix } = await requireSchema(pool);
      const excess = await excessPrivileges(pool);
      if (mode === "auto") {
        const version = await pool.query("SELECT version() AS v");
        if (String(version.rows[0]?.v).includes("PGlite")) named = false;
      }
      if (excess.length > 0) {
        opts.log.warn(
          `connected as a role that may ${excess.join(" and ")}; run as a member of ${rolePrefix}writer only`,
          {
            role: (await pool.query("SELECT current_user AS u")).rows[0]?.u,
          },
        );
      }
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
    classify,
    writeBatches,
    async close() {
      await pool.end();
    },
  };
}

/**
 * Advice to append to a connection error that masq can explain, from a pooler such as PgBouncer: it refuses
 * the URL's `options` parameter (`options=-c search_path=...`) whatever its pool mode, and a full pool ends
 * a client's wait with `query_wait_timeout` (or refuses it past `max_client_conn`). Empty for anything else.
 */
export function connectionAdvice(err: unknown): string {
  const message = errorMessage(err);
  if (/unsupported startup parameter: options/.test(message)) {
    return " (a pooler such as PgBouncer passes no options=-c ...: choose the schema with the login's search_path instead, " +
      "ALTER ROLE <login> IN DATABASE <db> SET search_path = <schema>, which migrate --writer-login sets; docs/postgres.md)";
  }
  if (/query_wait_timeout|no more connections allowed/.test(message)) {
    return " (the pooler has no server connection free for this login: in session mode each masq process holds up to " +
      "--db-pool-size of them; size the pool as docs/postgres.md says, or lower --db-pool-size / MASQ_DB_POOL_SIZE)";
  }
  return "";
}

/** SQLSTATE of a driver error, if any. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  // Classes are a digit then a character, or F0, HV, P0, XX; Node's "EPIPE" and friends are not SQLSTATEs.
  return typeof code === "string" && /^([0-9][0-9A-Z]|F0|HV|P0|XX)[0-9A-Z]{3}$/.test(code) ? code : undefined;
}

/**
 * Whether a driver error is PostgreSQL cancelling a statement (SQLSTATE 57014, query_canceled): what
 * `statement_timeout` does, and also a cancel request (pg_cancel_backend), which the server's words alone
 * tell apart, and those depend on its lc_messages. Transient for classify(); the writer also makes such a
 * statement smaller when it happens again and again.
 */
export function isStatementTimeout(err: unknown): boolean {
  return sqlState(err) === "57014";
}

/**
 * The one rule for database errors. `data`: SQLSTATE class 22 (data exception) or 23 (integrity
 * violation): retrying the same rows cannot help, but splitting the batch isolates the row at fault.
 * `transient`: what an outage produces and a later attempt may not (lost or refused connections,
 * server shutdown, too many connections, serialization failures, deadlocks, lock and statement
 * timeouts), and any socket-level Error without a SQLSTATE. `fatal`: every other SQLSTATE (a missing
 * table, a permission), a TypeError or RangeError (a bug, never an outage), a ConfigError (the operator's to fix) and anything not an Error.
 * So SQLSTATE 22001 (value too long) is `data` and an ECONNREFUSED socket error `transient`.
 */
export function classify(err: unknown): ErrorClass {
  if (
    !(err instanceof Error) || err instanceof TypeError || err instanceof RangeError ||
    err instanceof ConfigError
  ) return "fatal";
  const s = sqlState(err);
  if (s === undefined) return "transient";
  if (s.startsWith("22") || s.startsWith("23")) return "data";
  if (
    s.startsWith("08") || s.startsWith("53") || s.startsWith("57P") || s === "40001" || s === "40P01" ||
    s === "55P03" || s === "57014"
  ) return "transient";
  return "fatal";
}
