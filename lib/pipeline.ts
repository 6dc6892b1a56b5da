/**
 * lease -> parse -> mask -> write -> ack. `concurrency` receivers poll the source; each received batch is
 * held by a lease (its heartbeat keeps the messages invisible), turned into records, its rejections
 * dead-lettered, then handed to the coalescing writer, which writes the batches of all receivers
 * together; once its statement commits, the batch is acknowledged (deleted). A message is deleted only
 * after its row or its rejection is committed. Receivers stop receiving while the messages in flight
 * (received, not yet deleted) are at their bound, so memory stays flat however long the queue is.
 *
 * Each step is a small function over one `Run` (the run's shared state); errors are classified by the
 * module that made the call (`source.classify`, `sink.classify`): transient ones are retried with capped
 * backoff, data ones isolated and rejected, fatal ones stop the run.
 *
 * @module
 */
import type { Logger } from "./log.ts";
import { redactUrl } from "./secrets.ts";
import { BatchError, ConfigError, errorMessage, StoppedError } from "./errors.ts";
import { type Clock, systemClock } from "./clock.ts";
import { retry, type RetryOptions } from "./retry.ts";
import { lease } from "./source/lease.ts";
import { sqlState } from "./sink/postgres.ts";
import { addResults, createWriter, type Refusal, type Writer } from "./sink/writer.ts";
import { deadLetterFor } from "./transform/letter.ts";
import { scrubReason } from "./transform/redact.ts";
import type {
  Message,
  PipelineEvent,
  RejectionRecord,
  Sink,
  SinkRecord,
  Source,
  Summary,
  Transform,
  WriteResult,
} from "./types.ts";
import type { IngestVault } from "./vault.ts";

export type { Summary } from "./types.ts";

/** Rows per write statement, at most (see bench/BENCHMARKS.md). */
export const WRITE_ROWS = 250;
/**
 * How long rows wait for more before they are written anyway, ms: a statement costs masq and the server
 * much the same whatever its size, so a short wait (none once WRITE_ROWS are queued) makes statements
 * larger and fewer, for at most this long more between receive and delete (see bench/BENCHMARKS.md).
 */
export const WRITE_LINGER_MS = 10;
/**
 * Write statements under way at once, at most (fewer if the pool is smaller). Two: while one commits,
 * rows gather for the next; more only split the same rows into smaller statements (see
 * bench/BENCHMARKS.md).
 */
export const WRITE_STATEMENTS = 2;
/** SQS hands out at most ten messages per receive: the room a receiver reserves before it asks. */
const MAX_RECEIVE = 10;
/** How often the queue's counts are read for subscribers (one GetQueueAttributes call). */
const QUEUE_COUNTS_EVERY_MS = 10_000;

/** Messages in flight (received, not yet deleted), at most, for a number of receivers. */
export function inFlightBound(concurrency: number): number {
  return Math.max(2 * WRITE_ROWS, 2 * MAX_RECEIVE * concurrency);
}

export interface PipelineOptions {
  source: Source;
  sink: Sink;
  transform: Transform;
  log: Logger;
  /** Keep polling forever instead of exiting once the queue is drained. */
  follow: boolean;
  concurrency: number;
  /** The database pool's size (write statements under way at once: at most WRITE_STATEMENTS of them). */
  connections: number;
  maxBackoffMs: number;
  /** Encrypts the original body of a dead letter, when a vault key is configured. */
  vault?: IngestVault;
  /** Aborting it stops receiving; in-flight batches are finished, committed and deleted. */
  stop?: AbortSignal;
  onEvent?: (e: PipelineEvent) => void;
  clock?: Clock;
}

/** Bounds the messages in flight: a receiver takes room before it receives and gives back what it did not use. */
interface Gate {
  /** Resolves true once `n` fit, or false when `signal` aborts first. */
  take(n: number, signal: AbortSignal): Promise<boolean>;
  give(n: number): void;
}

function createGate(limit: number): Gate {
  let used = 0;
  let waiters: (() => void)[] = [];
  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  return {
    async take(n, signal) {
      while (used > 0 && used + n > limit) {
        if (signal.aborted) return false;
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          signal.addEventListener("abort", wake, { once: true });
        });
        signal.removeEventListener("abort", wake);
      }
      if (signal.aborted) return false;
      used += n;
      return true;
    },
    give(n) {
      used -= n;
      wake();
    },
  };
}

/** The shared state of one run. */
interface Run {
  opts: PipelineOptions;
  clock: Clock;
  emit: (e: PipelineEvent) => void;
  writer: Writer;
  gate: Gate;
  totals: { received: number; inserted: number; duplicates: number; rejected: number };
  /** Aborted when receiving ends: drained, stopped, or a fatal error. */
  halt: AbortController;
  /** Aborted on `stop` or a fatal error (not on a drain): failed writes are no longer retried. */
  giveUp: AbortController;
  /** Aborted on a fatal error only: cancels the receives under way. */
  abandon: AbortController;
  /** Receives under way (a stop waits for them). */
  receiving: number;
  fatal: unknown;
  batches: Set<Promise<void>>;
  /** Messages received and not yet deleted or released (the gate also counts room reserved for receives). */
  held: number;
  /** The source queue's URL as a dead letter names it (credentials dropped). */
  sourceQueue: string;
  /** Whether the delayed messages left at the end of a drain were logged. */
  delayedReported: boolean;
}

/** Retry options for one side: its own classify() decides what is transient, one rule per module. */
function retryOn(
  kind: "sqs" | "database",
  run: Run,
  what: string,
  fields?: Record<string, unknown>,
): RetryOptions {
  const side = kind === "sqs" ? run.opts.source : run.opts.sink;
  return {
    what,
    log: run.opts.log,
    retryable: (err) => side.classify(err) === "transient",
    capMs: run.opts.maxBackoffMs,
    clock: run.clock,
    onRetry: () => run.emit({ type: "retry", what, kind }),
    ...(fields ? { fields } : {}),
  };
}

function sqsRetry(run: Run, what: string, fields?: Record<string, unknown>): RetryOptions {
  return retryOn("sqs", run, what, fields);
}

function dbRetry(run: Run, what: string): RetryOptions {
  return retryOn("database", run, what);
}

function fail(run: Run, err: unknown): void {
  run.fatal ??= err;
  run.halt.abort();
  run.giveUp.abort();
  run.abandon.abort();
}

/**
 * One receive. A stop (or the end of a drain) does not cancel the receives under way: each is let finish
 * (a long poll returns within its WaitTimeSeconds) and what it brings is processed like any batch. A
 * receive cancelled on our side is not cancelled on the server's: SQS emulators (moto, LocalStack) keep the
 * long poll open and hand the next messages sent to the connection nobody reads, leaving them invisible
 * until their visibility timeout and counting a receive against maxReceiveCount. Only a fatal error
 * cancels them (the run exits 1; whatever they were handed comes back after its visibility timeout).
 */
async function receive(run: Run): Promise<Message[]> {
  const { halt, abandon } = run;
  if (halt.signal.aborted) return [];
  run.receiving++;
  try {
    const batch = await run.opts.source.receive(abandon.signal);
    run.emit({ type: "queue_ok" });
    return batch;
  } catch (err) {
    if (abandon.signal.aborted) return [];
    throw err;
  } finally {
    run.receiving--;
  }
}

/**
 * True when the queue holds nothing visible or in flight (in drain mode, the end). In-flight messages are
 * waited for (another consumer's, or a crashed run's, which come back once their visibility runs out);
 * delayed ones are not (a producer's DelaySeconds may be up to 15 minutes): they stay in the queue for a
 * later run, and the end of the drain says how many there were, once.
 */
async function drained(run: Run): Promise<boolean> {
  const c = await retry(() => run.opts.source.counts(), {
    ...sqsRetry(run, "queue counts"),
    signal: run.halt.signal,
  });
  run.emit({ type: "queue_counts", counts: c });
  if (c.visible + c.inFlight === 0) {
    if (c.delayed > 0 && !run.delayedReported) {
      run.delayedReported = true;
      run.opts.log.info("drained; delayed messages stay in the queue for a later run", {
        delayed: c.delayed,
      });
    }
    return true;
  }
  if (c.visible === 0) run.opts.log.debug("waiting for in-flight messages", { in_flight: c.inFlight });
  return false;
}

/** Sends a rejection to the dead-letter queue; one the queue can never take is recorded as such. */
async function deadLetter(run: Run, message: Message, rejection: RejectionRecord): Promise<RejectionRecord> {
  const { source, vault, log } = run.opts;
  const letter = await deadLetterFor(
    message,
    rejection.reason,
    rejection.bodyRedacted,
    run.sourceQueue,
    vault,
  );
  // The one policy for a failed dead-letter send: a transient failure (no answer, 5xx, throttling) is
  // retried with the same capped backoff as every SQS call, for as long as it lasts, while the lease
  // keeps the message invisible; a refusal for the message itself (too large, invalid) is recorded with
  // that fact and the message deleted, so nothing loops; anything else (access denied, no such queue)
  // stops the run with exit 1, the message left in the queue.
  const outcome = await retry(
    () => source.deadLetter(letter),
    sqsRetry(run, "dead-letter send", { message_id: message.id }),
  );
  if (outcome.status === "sent") {
    run.emit({ type: "dead_lettered", messages: 1 });
    return rejection;
  }
  log.warn("rejected message cannot be dead-lettered; recording and deleting it all the same", {
    message_id: message.id,
    reason: outcome.why,
  });
  return { ...rejection, reason: `${rejection.reason}; not dead-lettered: ${outcome.why}` };
}

/**
 * Dead-letters the batch's rejections before they are recorded (README "Bad input"); a redelivery of
 * one already recorded is not sent again (only a crash between the two can send one twice). Only
 * redeliveries and replays are looked up in the ledger: a message received for the first time cannot have
 * been recorded, and the lookup is a database round trip per batch holding a rejection; but a replay
 * (`redrive:<id>`) arrives for the first time once per copy a crashed redrive sent.
 */
async function deadLetterRejections(
  run: Run,
  records: SinkRecord[],
  byId: Map<string, Message>,
): Promise<SinkRecord[]> {
  const rejected = records.filter((r) => r.kind === "rejection");
  if (rejected.length === 0) return records;
  const redelivered = rejected
    .filter((r) => byId.get(r.messageId)!.receiveCount > 1 || r.messageId.startsWith("redrive:"))
    .map((r) => r.messageId);
  const recorded = redelivered.length === 0
    ? new Set<string>()
    : await retry(() => run.opts.sink.written(redelivered), {
      ...dbRetry(run, "ledger lookup"),
      signal: run.giveUp.signal,
    }).catch((err) => {
      throw run.giveUp.signal.aborted && run.opts.sink.classify(err) === "transient"
        ? new StoppedError()
        : err;
    });
  const letter = (r: SinkRecord) =>
    r.kind === "rejection" && !recorded.has(r.messageId) ? deadLetter(run, byId.get(r.messageId)!, r) : r;
  if (!run.opts.source.fifo) return await Promise.all(records.map(letter));
  // A FIFO queue's letters one after another, in message order: the dead-letter queue keeps the group's order.
  const out: SinkRecord[] = [];
  for (const r of records) out.push(await letter(r));
  return out;
}

/** Text with every character outside printable ASCII replaced by `?`: what any database encoding stores. */
export function asciiOnly(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, "?");
}

const MINIMAL_REASON = "rejected; the database refused its record";

/**
 * The reason stored for a rejection the database refused even without its body: ASCII, the SQLSTATE only,
 * nothing of the message's own (any part of which may be what the database cannot store).
 * So `minimalReason(Object.assign(new Error("x"), { code: "22P05" }))` is
 * `"rejected; the database refused its record (SQLSTATE 22P05)"`.
 */
export function minimalReason(error: unknown): string {
  const state = sqlState(error);
  return `${MINIMAL_REASON}${state ? ` (SQLSTATE ${state})` : ""}`;
}

/**
 * What to write instead of a record the database refused: a login becomes a rejection with the
 * database's reason (and is dead-lettered); a rejection is kept without its redacted body, its reason in
 * ASCII; one refused even so is stored with minimalReason() alone (an unstorable value is a rejection,
 * never a run that fails on the same message every time). Only a minimal record refused is fatal: nothing
 * is left to drop.
 */
async function replacementFor(
  run: Run,
  { record, reason, error }: Refusal,
  byId: Map<string, Message>,
): Promise<RejectionRecord> {
  const { log } = run.opts;
  if (record.kind === "rejection") {
    if (record.bodyRedacted !== null) {
      log.warn("database refused a rejection record; storing it without its body", {
        message_id: record.messageId,
      });
      return { ...record, bodyRedacted: null, reason: asciiOnly(`${record.reason}; ${scrubReason(reason)}`) };
    }
    if (record.reason.startsWith(MINIMAL_REASON)) throw error;
    log.warn("database refused a rejection record even without its body; storing its SQLSTATE only", {
      message_id: record.messageId,
    });
    return { ...record, reason: minimalReason(error) };
  }
  // A driver's message may quote the value it refused: scrubbed before it is logged.
  log.warn("row refused by the database; rejecting it", {
    message_id: record.messageId,
    reason: scrubReason(reason),
  });
  const message = byId.get(record.messageId)!;
  return await deadLetter(run, message, await run.opts.transform.rejection(message, reason));
}

/** Writes records through the coalescing writer, replacing each refused one until all are committed. */
async function write(run: Run, records: SinkRecord[], byId: Map<string, Message>): Promise<WriteResult> {
  const { result, refused } = await run.writer.submit(records);
  let total = result;
  for (const refusal of refused) {
    total = addResults(total, await write(run, [await replacementFor(run, refusal, byId)], byId));
  }
  return total;
}

/** One batch, start to end: lease, records, dead letters, write, ack. */
async function processBatch(run: Run, messages: Message[], receivedAt: number): Promise<void> {
  const { source, transform, log } = run.opts;
  const held = lease(source, messages, {
    log,
    clock: run.clock,
    maxBackoffMs: run.opts.maxBackoffMs,
    onRetry: () => run.emit({ type: "retry", what: "delete", kind: "sqs" }),
  });
  try {
    const byId = new Map(messages.map((m) => [m.id, m]));
    // Concurrently: with the sealed vault a record may wait for the key store (a new person's key).
    const records: SinkRecord[] = await Promise.all(messages.map((m) => transform.record(m)));
    const result = await write(run, await deadLetterRejections(run, records, byId), byId);
    run.totals.inserted += result.inserted;
    run.totals.rejected += result.rejected;
    run.totals.duplicates += result.duplicates;
    await held.ack(messages);
    const now = run.clock.now();
    run.emit({
      type: "deleted",
      messages: messages.length,
      latenciesMs: messages.map(() => now - receivedAt),
    });
  } catch (err) {
    if (err instanceof StoppedError) {
      // Nothing of it was committed, and SQS redelivers it once its visibility timeout ends.
      log.warn("stopping: a failed write is not retried; its messages stay in the queue for redelivery", {
        messages: messages.length,
        first_message_id: messages[0]?.id,
      });
      return;
    }
    // The operator's to fix (e.g. statement_timeout): exit 2, the messages left in the queue.
    if (err instanceof ConfigError) throw err;
    throw new BatchError(`batch failed: ${errorMessage(err)}`, messages.map((m) => m.id), err);
  } finally {
    await held.release();
    run.gate.give(messages.length);
    run.held -= messages.length;
    run.emit({ type: "in_flight", messages: run.held });
  }
}

/** One receiver: takes room, receives, hands the batch on, until the run halts. */
async function receiver(run: Run): Promise<void> {
  const { halt } = run;
  while (!halt.signal.aborted) {
    if (!await run.gate.take(MAX_RECEIVE, halt.signal)) return;
    let batch: Message[];
    try {
      batch = await retry(() => receive(run), { ...sqsRetry(run, "receive"), signal: halt.signal });
    } catch (err) {
      run.gate.give(MAX_RECEIVE);
      if (halt.signal.aborted) return;
      throw err;
    }
    run.gate.give(MAX_RECEIVE - batch.length);
    if (batch.length === 0) {
      if (!run.opts.follow && !halt.signal.aborted && await drained(run).catch(() => false)) halt.abort();
      continue;
    }
    run.totals.received += batch.length;
    run.emit({
      type: "received",
      messages: batch.length,
      oldestSentAt: Math.min(...batch.map((m) => m.sentTimestamp)),
    });
    run.held += batch.length;
    run.emit({ type: "in_flight", messages: run.held });
    const p: Promise<void> = processBatch(run, batch, run.clock.now())
      .catch((err) => fail(run, err))
      .finally(() => run.batches.delete(p));
    run.batches.add(p);
  }
}

/**
 * With a subscriber, the queue's counts every QUEUE_COUNTS_EVERY_MS as `queue_counts` events (the metrics'
 * queue depth and the progress line's ETA); a failed read is skipped, the receives report outages.
 */
function watchQueue(run: Run): () => void {
  if (run.opts.onEvent === undefined) return () => {};
  let timer: unknown;
  let stopped = false;
  const tick = async () => {
    try {
      run.emit({ type: "queue_counts", counts: await run.opts.source.counts() });
    } catch { /* the next tick tries again */ }
    if (!stopped) timer = run.clock.setTimeout(tick, QUEUE_COUNTS_EVERY_MS);
  };
  timer = run.clock.setTimeout(tick, 0);
  return () => {
    stopped = true;
    run.clock.clearTimeout(timer);
  };
}

/**
 * Drains (or, with `follow`, keeps consuming) the source into the sink and returns the run's summary.
 * Throws a BatchError on a fatal error, once the other batches in flight are finished (the failed
 * batch's messages stay in the queue for redelivery).
 *
 * @example
 * ```ts
 * import {
 *   inFlightBound,
 *   type PipelineOptions,
 *   runPipeline,
 *   type Summary,
 *   WRITE_LINGER_MS,
 *   WRITE_ROWS,
 *   WRITE_STATEMENTS,
 * } from "./pipeline.ts";
 * import { BatchError } from "./errors.ts";
 * import type { Sink, Source, Transform } from "./types.ts";
 * import { silentLogger } from "./log.ts";
 * declare const source: Source, sink: Sink, transform: Transform;
 * console.log(inFlightBound(8), WRITE_LINGER_MS, WRITE_ROWS, WRITE_STATEMENTS);
 * const options: PipelineOptions = {
 *   source, sink, transform, log: silentLogger, follow: false, concurrency: 8, connections: 8, maxBackoffMs: 10_000,
 * };
 * try {
 *   const summary: Summary = await runPipeline(options);
 *   console.log(JSON.stringify(summary));
 * } catch (err) {
 *   if (err instanceof BatchError) console.error(err.messageIds);
 * }
 * ```
 */
export async function runPipeline(opts: PipelineOptions): Promise<Summary> {
  const clock = opts.clock ?? systemClock;
  const emit = opts.onEvent ?? (() => {});
  const giveUp = new AbortController();
  const run: Run = {
    opts,
    clock,
    emit,
    giveUp,
    writer: createWriter(opts.sink, {
      stop: giveUp.signal,
      log: opts.log,
      maxRows: WRITE_ROWS,
      lingerMs: WRITE_LINGER_MS,
      maxStatements: Math.max(1, Math.min(WRITE_STATEMENTS, opts.connections)),
      maxBackoffMs: opts.maxBackoffMs,
      clock,
      onEvent: emit,
    }),
    gate: createGate(inFlightBound(opts.concurrency)),
    totals: { received: 0, inserted: 0, duplicates: 0, rejected: 0 },
    halt: new AbortController(),
    abandon: new AbortController(),
    receiving: 0,
    fatal: undefined,
    batches: new Set(),
    held: 0,
    sourceQueue: redactUrl(opts.source.queueUrl),
    delayedReported: false,
  };
  const started = clock.now();
  const onStop = () => {
    run.giveUp.abort();
    if (run.halt.signal.aborted) return;
    run.halt.abort();
    if (run.receiving > 0) {
      opts.log.info("letting the receives under way end (each within the long-poll wait, --wait-seconds)", {
        receives: run.receiving,
      });
    }
  };
  opts.stop?.addEventListener("abort", onStop, { once: true });
  if (opts.stop?.aborted) onStop();
  const stopWatching = watchQueue(run);
  try {
    await Promise.all(
      Array.from({ length: opts.concurrency }, () => receiver(run).catch((err) => fail(run, err))),
    );
    while (run.batches.size > 0) await Promise.all(run.batches);
  } finally {
    stopWatching();
    opts.stop?.removeEventListener("abort", onStop);
  }
  if (run.fatal !== undefined) throw run.fatal;
  const seconds = (clock.now() - started) / 1000;
  return {
    ...run.totals,
    seconds: Math.round(seconds * 1000) / 1000,
    rate: seconds > 0 ? Math.round((run.totals.received / seconds) * 10) / 10 : 0,
  };
}
