/**
 * receive -> parse -> mask -> write -> delete. Each of `concurrency` receivers runs that chain with up to
 * `batchesPerReceiver` (2) batches in flight, polling for the next while the last is written; once its batches
 * wait (a slow or absent database) it receives nothing new, and a heartbeat keeps their messages invisible.
 * A message is deleted only after its row or its rejection is committed.
 */
import type { Logger } from "./log.ts";
import { errorMessage } from "./errors.ts";
import { retry, sleep } from "./retry.ts";
import type { Message, Source } from "./source/sqs.ts";
import { isAbort, isTransientSqsError } from "./source/sqs.ts";
import type { Sink, SinkRecord, WriteResult } from "./sink/postgres.ts";
import { isDataError, isTransientDbError, sqlState } from "./sink/postgres.ts";
import type { Masker } from "./transform/mask.ts";
import { rejectionFor, toRecord } from "./transform/record.ts";

/** The JSON summary printed as the last line of stdout. */
export interface Summary {
  received: number;
  inserted: number;
  duplicates: number;
  rejected: number;
  seconds: number;
  rate: number;
}

export interface PipelineOptions {
  source: Source;
  sink: Sink;
  masker: Masker;
  log: Logger;
  /** Keep polling forever instead of exiting once the queue is drained. */
  follow: boolean;
  concurrency: number;
  maxBackoffMs: number;
  /** Aborting it stops receiving; in-flight batches are finished, committed and deleted. */
  stop?: AbortSignal;
  /** Interval of progress lines on the log, ms (0: none). */
  progressEveryMs?: number;
  /** Batches each receiver may have in flight (received, not yet deleted). Default 2. */
  batchesPerReceiver?: number;
  /**
   * On `stop`, a receive that began less than this long ago (ms) is let finish until it is this old, then
   * cancelled; an older one is cancelled at once. A fresh receive may be being answered right now (a busy
   * queue answers at once): cancelling it would leave the messages SQS already handed out invisible and
   * unprocessed until their visibility timeout. An older one is a long poll waiting on an idle queue.
   * Default 2000.
   */
  receiveGraceMs?: number;
}

/** Error carrying the SQS message ids it concerns. */
export class BatchError extends Error {
  readonly messageIds: readonly string[];
  constructor(message: string, messageIds: readonly string[], cause: unknown) {
    super(message, { cause });
    this.name = "BatchError";
    this.messageIds = messageIds;
  }
}

function add(a: WriteResult, b: WriteResult): WriteResult {
  return {
    inserted: a.inserted + b.inserted,
    rejected: a.rejected + b.rejected,
    duplicates: a.duplicates + b.duplicates,
  };
}

/**
 * Drains (or, with `follow`, keeps consuming) the source into the sink and returns the run's summary.
 * Throws a BatchError on a fatal error (the batch's messages stay in the queue for redelivery).
 *
 * @example
 * ```ts
 * const summary = await runPipeline({ source, sink, masker, log, follow: false, concurrency: 8, maxBackoffMs: 10_000 });
 * console.log(JSON.stringify(summary));
 * ```
 */
export async function runPipeline(opts: PipelineOptions): Promise<Summary> {
  const { source, sink, masker, log } = opts;
  const started = performance.now();
  const totals = { received: 0, inserted: 0, duplicates: 0, rejected: 0 };
  const halt = new AbortController();
  // Receives under way, cancelled when the run halts: at once when it ends itself (drained, fatal error);
  // on `stop`, once `receiveGraceMs` old, so that messages SQS has already handed out are processed and
  // deleted, not left in flight.
  type Receiving = { ctl: AbortController; started: number; timer?: ReturnType<typeof setTimeout> };
  const receives = new Set<Receiving>();
  let stopping = false;
  const cancel = (r: Receiving) => {
    const left = stopping ? r.started + (opts.receiveGraceMs ?? 2000) - performance.now() : 0;
    if (left <= 0) r.ctl.abort();
    else r.timer ??= setTimeout(() => r.ctl.abort(), left);
  };
  halt.signal.addEventListener("abort", () => receives.forEach(cancel), { once: true });
  async function receive(): Promise<Message[]> {
    if (halt.signal.aborted) return []; // a retry after the halt: receive nothing new
    const r: Receiving = { ctl: new AbortController(), started: performance.now() };
    receives.add(r);
    try {
      return await source.receive(r.ctl.signal);
    } finally {
      clearTimeout(r.timer);
      receives.delete(r);
    }
  }
  let fatal: unknown;
  const onStop = () => {
    stopping = !halt.signal.aborted;
    halt.abort();
  };
  opts.stop?.addEventListener("abort", onStop, { once: true });
  if (opts.stop?.aborted) onStop();

  const sqsRetry = { log, retryable: isTransientSqsError, capMs: opts.maxBackoffMs };
  const dbRetry = { log, retryable: isTransientDbError, capMs: opts.maxBackoffMs };

  /** Writes records; on a data error splits the batch until the refused row is alone, then rejects it. */
  async function writeIsolating(records: SinkRecord[], byId: Map<string, Message>): Promise<WriteResult> {
    try {
      return await retry(() => sink.write(records), {
        ...dbRetry,
        what: "database write",
        fields: { messages: records.length, first_message_id: records[0]?.messageId },
      });
    } catch (err) {
      if (!isDataError(err)) throw err;
      if (records.length > 1) {
        const mid = Math.ceil(records.length / 2);
        const left = await writeIsolating(records.slice(0, mid), byId);
        return add(left, await writeIsolating(records.slice(mid), byId));
      }
      const [only] = records;
      const message = byId.get(only.messageId)!;
      // The driver's own message: errorMessage() would append the code a second time.
      const why = err instanceof Error ? err.message : String(err);
      const reason = `database refused the row: ${why} (SQLSTATE ${sqlState(err)})`;
      if (only.kind === "rejection") {
        if (only.bodyRedacted === null) throw err;
        log.warn("database refused a rejection record; storing it without its body", {
          message_id: only.messageId,
        });
        return writeIsolating([{ ...only, bodyRedacted: null, reason: `${only.reason}; ${reason}` }], byId);
      }
      log.warn("row refused by the database; rejecting it", { message_id: only.messageId, reason });
      await retry(() => source.forwardToDeadLetter(message, reason), {
        ...sqsRetry,
        what: "dead-letter send",
      });
      return writeIsolating([await rejectionFor(message, reason, masker)], byId);
    }
  }

  async function processBatch(messages: Message[]): Promise<void> {
    const heartbeatMs = Math.max(250, (source.visibilityTimeout * 1000) / 3);
    let beating = false;
    // No extension races a delete: SQS would refuse it for the messages just deleted.
    let deleting = false;
    const heartbeat = setInterval(async () => {
      if (beating || deleting) return;
      beating = true;
      try {
        await source.extendVisibility(messages);
      } catch (err) {
        log.warn("visibility heartbeat failed", { error: errorMessage(err), messages: messages.length });
      } finally {
        beating = false;
      }
    }, heartbeatMs);
    try {
      const byId = new Map(messages.map((m) => [m.id, m]));
      const records = await Promise.all(messages.map((m) => toRecord(m, masker)));
      // README "Bad input": a rejected message goes to the dead-letter queue before its rejection is recorded; a
      // redelivery of one already recorded is not forwarded twice (only a crash between the two can do that).
      const rejectIds = records.filter((r) => r.kind === "rejection").map((r) => r.messageId);
      const recorded = rejectIds.length === 0
        ? new Set<string>()
        : await retry(() => sink.written(rejectIds), {
          ...dbRetry,
          what: "ledger lookup",
        });
      const keep: SinkRecord[] = [];
      const done: Message[] = [];
      await Promise.all(records.map(async (r) => {
        const m = byId.get(r.messageId)!;
        if (r.kind === "rejection" && !recorded.has(r.messageId)) {
          try {
            await retry(() => source.forwardToDeadLetter(m, r.reason), {
              ...sqsRetry,
              what: "dead-letter send",
              fields: { message_id: m.id },
            });
          } catch (err) {
            // Not deleted, not recorded: SQS redelivers it (and its redrive policy, if any, applies).
            log.error("dead-letter send failed; leaving the message in the queue", {
              message_id: m.id,
              error: errorMessage(err),
            });
            return;
          }
        }
        keep.push(r);
        done.push(m);
      }));
      const result = await writeIsolating(keep, byId);
      totals.inserted += result.inserted;
      totals.rejected += result.rejected;
      totals.duplicates += result.duplicates;
      await retry(async () => {
        while (beating) await sleep(10);
        deleting = true;
        try {
          await source.delete(done);
        } finally {
          deleting = false; // between retries the heartbeat goes on
        }
      }, {
        ...sqsRetry,
        what: "delete",
        fields: { messages: done.length },
      });
    } catch (err) {
      throw new BatchError(`batch failed: ${errorMessage(err)}`, messages.map((m) => m.id), err);
    } finally {
      clearInterval(heartbeat);
      while (beating) await sleep(10);
    }
  }

  async function drained(): Promise<boolean> {
    const c = await retry(() => source.counts(), { ...sqsRetry, what: "queue counts", signal: halt.signal });
    if (c.visible + c.inFlight + c.delayed === 0) return true;
    if (c.visible === 0) {
      log.debug("waiting for in-flight messages", { in_flight: c.inFlight, delayed: c.delayed });
    }
    return false;
  }

  // Each receiver may have this many batches in flight: it polls for the next batch while the previous one
  // is written, so receive and write latencies overlap instead of adding up.
  const depth = Math.max(1, opts.batchesPerReceiver ?? 2);

  async function worker(): Promise<void> {
    const pending = new Set<Promise<void>>();
    try {
      await receiveLoop(pending);
    } finally {
      await Promise.all(pending);
    }
  }

  async function receiveLoop(pending: Set<Promise<void>>): Promise<void> {
    while (!halt.signal.aborted) {
      if (pending.size >= depth) await Promise.race(pending);
      if (halt.signal.aborted) return;
      let batch: Message[];
      try {
        batch = await retry(receive, {
          ...sqsRetry,
          what: "receive",
          signal: halt.signal,
        });
      } catch (err) {
        if (halt.signal.aborted || isAbort(err)) return;
        throw err;
      }
      if (batch.length === 0) {
        if (!opts.follow && !halt.signal.aborted && await drained().catch(() => false)) halt.abort();
        continue;
      }
      totals.received += batch.length;
      const p: Promise<void> = processBatch(batch)
        .catch((err) => {
          fatal ??= err;
          halt.abort();
        })
        .finally(() => pending.delete(p));
      pending.add(p);
    }
  }

  const progress = (opts.progressEveryMs ?? 5000) > 0
    ? setInterval(() => log.info("progress", { ...totals }), opts.progressEveryMs ?? 5000)
    : undefined;
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, async () => {
      try {
        await worker();
      } catch (err) {
        fatal ??= err;
        halt.abort();
      }
    }));
  } finally {
    if (progress !== undefined) clearInterval(progress);
    opts.stop?.removeEventListener("abort", onStop);
  }
  if (fatal !== undefined) throw fatal;
  const seconds = (performance.now() - started) / 1000;
  return {
    ...totals,
    seconds: Math.round(seconds * 1000) / 1000,
    rate: seconds > 0 ? Math.round((totals.received / seconds) * 10) / 10 : 0,
  };
}
