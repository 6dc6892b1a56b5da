/**
 * The coalescing writer: batches submitted by every receiver are queued and written together, one
 * statement of up to `maxRows` rows, as soon as that many are queued or once the oldest has waited
 * `lingerMs`. Each submitter gets its own batch's result once the statement commits. Fewer, larger
 * statements cost far less per row than one round trip per batch of ten.
 *
 * A row the database refuses (a data error) must not fail the rows written with it: the statement is
 * split in halves, by batch and then within the batch, until the refused rows stand alone; those come
 * back to their submitter as refusals, and everything else is written.
 *
 * A statement PostgreSQL cancels for running past `statement_timeout` (57014) is retried once as it is; if
 * it times out again it is split the same way, and later statements are kept to the size that passed
 * (doubled again after a run of successes). A single row that still times out is no statement that can get
 * smaller: the writer stops the run with a ConfigError naming statement_timeout (exit 2).
 *
 * Once `stop` aborts, a failed write is not tried again (and a backoff wait ends at once): its batches are
 * rejected with a StoppedError, nothing of them committed.
 *
 * The writer holds no more than the pipeline submits; the pipeline bounds what it has in flight.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { type Clock, systemClock } from "../clock.ts";
import { retry } from "../retry.ts";
import { ConfigError, errorMessage, StoppedError } from "../errors.ts";
import type { PipelineEvent, Sink, SinkRecord, WriteResult } from "../types.ts";
import { isStatementTimeout, sqlState } from "./postgres.ts";

/** Statement timeouts in a row, at one size, before the statement is split. */
export const TIMEOUTS_BEFORE_SPLIT = 2;
/** Successful statements in a row, after a timeout made statements smaller, before the size doubles again. */
export const SUCCESSES_BEFORE_GROWTH = 50;

export interface WriterOptions {
  log: Logger;
  /** Rows per statement, at most (a single larger batch is written alone). */
  maxRows: number;
  /** How long queued rows wait for more before they are written anyway, ms. */
  lingerMs: number;
  /** Statements under way at once (the pool's connections). */
  maxStatements: number;
  /** Cap of the backoff between attempts during an outage, ms. */
  maxBackoffMs?: number;
  clock?: Clock;
  onEvent?: (e: PipelineEvent) => void;
  /** Once aborted, no failed write is tried again (see the module's documentation). */
  stop?: AbortSignal;
}

/** A statement that timed out TIMEOUTS_BEFORE_SPLIT times in a row: split it (internal to the writer). */
class TooSlow extends Error {
  constructor(cause: unknown) {
    super(errorMessage(cause), { cause });
  }
}

/** A record the database refused, alone, and why (the database's words, never a value of ours). */
export interface Refusal {
  record: SinkRecord;
  reason: string;
  error: unknown;
}

/** What became of one submitted batch. */
export interface Written {
  result: WriteResult;
  refused: Refusal[];
}

export interface Writer {
  /**
   * Queues a batch and resolves once it is committed. Transient failures are retried; a failure that is
   * neither transient nor in the data rejects (and so does every batch of that statement).
   */
  submit(records: readonly SinkRecord[]): Promise<Written>;
  /** Rows queued and not yet in a statement. */
  readonly queuedRows: number;
}

interface Pending {
  records: readonly SinkRecord[];
  resolve: (w: Written) => void;
  reject: (err: unknown) => void;
}

const none = (): WriteResult => ({ inserted: 0, rejected: 0, duplicates: 0 });

/** The sum of two write results. */
export function addResults(a: WriteResult, b: WriteResult): WriteResult {
  return {
    inserted: a.inserted + b.inserted,
    rejected: a.rejected + b.rejected,
    duplicates: a.duplicates + b.duplicates,
  };
}

/** PostgreSQL's words for a character the database's encoding has no room for (SQLSTATE 22P05). */
const UNTRANSLATABLE =
  /character with byte sequence ((?:0x[0-9a-f]{2} ?)+) in encoding "UTF8" has no equivalent in encoding "([A-Za-z0-9_]{1,32})"/i;

/** The text columns of a record that may hold what a producer sent, by column name. */
function textColumns(record: SinkRecord): [string, string | null][] {
  return record.kind === "login"
    ? [["user_id", record.userId], ["device_type", record.deviceType], ["locale", record.locale]]
    : [["reason", record.reason], ["body_redacted", record.bodyRedacted]];
}

/**
 * The reason recorded for a row the database refused: its message and SQLSTATE, in ASCII (a character
 * beyond it becomes `?`: the reason must be storable in any database encoding). A character the
 * database's encoding cannot store is reported by the column holding it (found by the bytes PostgreSQL
 * names), never as the character itself.
 * So for `character with byte sequence 0xe4 0xbd 0xa0 in encoding "UTF8" has no equivalent in encoding
 * "LATIN1"` and a login whose user_id holds that character, it is `database refused the row: user_id holds
 * a character the database encoding (LATIN1) cannot store (SQLSTATE 22P05)`.
 */
export function refusalReason(err: unknown, record?: SinkRecord): string {
  // The driver's own message: errorMessage() would append the code a second time.
  const why = err instanceof Error ? err.message : String(err);
  const state = sqlState(err);
  const code = state ? ` (SQLSTATE ${state})` : "";
  const untranslatable = UNTRANSLATABLE.exec(why);
  if (untranslatable) {
    const bytes = Uint8Array.from(untranslatable[1].trim().split(/ +/), (b) => parseInt(b, 16));
    const char = new TextDecoder().decode(bytes);
    const column = record && textColumns(record).find(([, value]) => value?.includes(char))?.[0];
    return `database refused the row: ${column ?? "a value"} holds a character the database encoding (${
      untranslatable[2]
    }) cannot store${code}`;
  }
  return `database refused the row: ${why.replace(/[^\x20-\x7e]/g, "?")}${code}`;
}

/**
 * Creates a writer over a sink.
 *
 * @example
 * ```ts
 * import {
 *   addResults,
 *   createWriter,
 *   type Refusal,
 *   refusalReason,
 *   type Writer,
 *   type WriterOptions,
 *   type Written,
 * } from "./writer.ts";
 * import type { Sink } from "../types.ts";
 * import { silentLogger } from "../log.ts";
 * declare const sink: Sink;
 * const options: WriterOptions = { log: silentLogger, maxRows: 250, lingerMs: 2, maxStatements: 4 };
 * const writer: Writer = createWriter(sink, options);
 * const written: Written = await writer.submit([
 *   { kind: "rejection", messageId: "m1", reason: "user_id is missing", bodyRedacted: "{}" },
 * ]);
 * const refused: Refusal[] = written.refused; // each with refusalReason(error) as its reason
 * console.log(written.result.rejected, refused.length, refusalReason(new Error("x")));
 * console.log(addResults(written.result, { inserted: 1, rejected: 0, duplicates: 0 }).inserted);
 * ```
 */
export function createWriter(sink: Sink, opts: WriterOptions): Writer {
  const clock = opts.clock ?? systemClock;
  const emit = opts.onEvent ?? (() => {});
  const queue: Pending[] = [];
  let queuedRows = 0;
  let active = 0;
  // Set when the oldest queued rows have lingered long enough: write them as soon as a connection is free.
  let due = false;
  let timer: unknown;
  // Rows per statement now: maxRows, unless statement timeouts made it smaller.
  let limit = opts.maxRows;
  let successes = 0;

  function pump(): void {
    while (queue.length > 0 && active < opts.maxStatements && (due || queuedRows >= limit)) {
      const take: Pending[] = [];
      let rows = 0;
      while (queue.length > 0 && (take.length === 0 || rows + queue[0].records.length <= limit)) {
        const p = queue.shift()!;
        take.push(p);
        rows += p.records.length;
      }
      queuedRows -= rows;
      if (queue.length === 0) due = false;
      active++;
      void statement(take).finally(() => {
        active--;
        pump();
      });
    }
    if (queue.length === 0) {
      clock.clearTimeout(timer);
      timer = undefined;
    } else if (!due && timer === undefined) {
      timer = clock.setTimeout(() => {
        timer = undefined;
        due = true;
        pump();
      }, opts.lingerMs);
    }
  }

  async function statement(take: Pending[]): Promise<void> {
    try {
      const written = await isolating(take.map((p) => p.records));
      take.forEach((p, i) => p.resolve(written[i]));
    } catch (err) {
      for (const p of take) p.reject(err);
    }
  }

  async function write(batches: readonly (readonly SinkRecord[])[]): Promise<WriteResult[]> {
    const rows = batches.reduce((n, b) => n + b.length, 0);
    const started = clock.now();
    let timeouts = 0;
    const results = await retry((attempt) => {
      if (attempt > 1 && opts.stop?.aborted) throw new StoppedError();
      return sink.writeBatches(batches);
    }, {
      what: "database write",
      log: opts.log,
      retryable: (err) => {
        if (err instanceof StoppedError) return false;
        if (!isStatementTimeout(err)) timeouts = 0;
        else if (++timeouts >= TIMEOUTS_BEFORE_SPLIT) return false;
        return sink.classify(err) === "transient";
      },
      capMs: opts.maxBackoffMs,
      clock,
      ...(opts.stop ? { signal: opts.stop } : {}),
      fields: { messages: rows, first_message_id: batches.find((b) => b.length > 0)?.[0]?.messageId },
      onRetry: () => emit({ type: "retry", what: "database write", kind: "database" }),
    }).catch((err) => {
      if (isStatementTimeout(err) && timeouts >= TIMEOUTS_BEFORE_SPLIT) throw new TooSlow(err);
      // Stopping: a failure that a retry might have cured is left to the queue's redelivery.
      if (opts.stop?.aborted && sink.classify(err) === "transient") throw new StoppedError();
      throw err;
    });
    if (limit < opts.maxRows && ++successes >= SUCCESSES_BEFORE_GROWTH) {
      successes = 0;
      limit = Math.min(opts.maxRows, limit * 2);
      opts.log.info("database writes: statements may grow again", { rows_per_statement: limit });
    }
    const sum = results.reduce(addResults, none());
    emit({ type: "written", rows, ...sum, ms: clock.now() - started });
    emit({ type: "database_ok" });
    return results;
  }

  /** The rows of a statement that timed out again and again: smaller statements from now on. */
  function shrink(rows: number, err: TooSlow): void {
    const smaller = Math.max(1, Math.ceil(rows / 2));
    successes = 0;
    if (smaller < limit) {
      limit = smaller;
      opts.log.warn(
        "database write timed out again (statement_timeout); splitting it, and writing smaller statements",
        {
          rows,
          rows_per_statement: limit,
          error: err.message,
        },
      );
    }
  }

  /**
   * Writes the batches; on a data error splits them until each refused row stands alone, and on repeated
   * statement timeouts until they pass (a single row that cannot is a ConfigError).
   */
  async function isolating(batches: readonly (readonly SinkRecord[])[]): Promise<Written[]> {
    try {
      return (await write(batches)).map((result) => ({ result, refused: [] }));
    } catch (err) {
      const rows = batches.reduce((n, b) => n + b.length, 0);
      if (err instanceof TooSlow) {
        // Stopping: no smaller pieces either, each of which could take up to the timeout again.
        if (opts.stop?.aborted) throw new StoppedError();
        if (rows <= 1) throw tooSlowForOneRow(err);
        shrink(rows, err);
      } else if (sink.classify(err) !== "data") throw err;
      if (batches.length > 1) {
        const mid = Math.ceil(batches.length / 2);
        return [...await isolating(batches.slice(0, mid)), ...await isolating(batches.slice(mid))];
      }
      const [records] = batches;
      if (records.length === 1) {
        return [{
          result: none(),
          refused: [{ record: records[0], reason: refusalReason(err, records[0]), error: err }],
        }];
      }
      const mid = Math.ceil(records.length / 2);
      const [left] = await isolating([records.slice(0, mid)]);
      const [right] = await isolating([records.slice(mid)]);
      return [{
        result: addResults(left.result, right.result),
        refused: [...left.refused, ...right.refused],
      }];
    }
  }

  /** The error that ends the run when even one row cannot be written within statement_timeout. */
  function tooSlowForOneRow(err: TooSlow): ConfigError {
    return new ConfigError(
      "statement_timeout",
      `PostgreSQL cancelled a one-row write on each of ${TIMEOUTS_BEFORE_SPLIT} attempts for running past the ` +
        `statement_timeout of masq's database role (${err.message}); no smaller write exists. Raise it for ` +
        "that role (ALTER ROLE <login> SET statement_timeout = '5s', see docs/postgres.md) or find what " +
        "slows the server down (locks, load); the messages in flight stay in the queue",
    );
  }

  return {
    get queuedRows() {
      return queuedRows;
    },
    submit(records) {
      if (records.length === 0) return Promise.resolve({ result: none(), refused: [] });
      return new Promise<Written>((resolve, reject) => {
        queue.push({ records, resolve, reject });
        queuedRows += records.length;
        if (opts.lingerMs <= 0) due = true;
        pump();
      });
    },
  };
}
