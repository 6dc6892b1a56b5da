/**
 * Dead letters gathered into batch sends: an SQS request costs the consumer about as much CPU as the
 * messages a receive brings (signing, HTTP, parsing), so one SendMessage per rejected message cost more
 * than the whole transform (see bench/BENCHMARKS.md). Letters sent while one is
 * waiting share a SendMessageBatch of up to ten: the first waits at most `lingerMs` for company, and a
 * full batch (ten letters, or SQS's size limit for one request) goes at once. Only batches that carry a
 * rejection wait; a flood of bad messages fills batches at once.
 *
 * Each caller gets its own letter's outcome, as if it had been sent alone: `sent`, `refused` (the queue
 * can never take this letter), or the error (a failed request, or an entry the queue failed to store),
 * which the caller retries as before.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { DeadLetter, DeadLetterOutcome } from "../types.ts";

/** What a batch send says of each entry, in the order given. An error is thrown to that letter's sender. */
export type EntryResult = DeadLetterOutcome | { status: "failed"; error: Error };

export interface LetterBatcherOptions {
  /** Sends up to ten letters in one request; throws when the request as a whole fails. */
  sendBatch(letters: readonly DeadLetter[]): Promise<EntryResult[]>;
  /** The size SQS counts for one letter, bytes. */
  bytes(letter: DeadLetter): number;
  /** The most one request may carry, bytes (SQS: the same as one message). */
  maxBatchBytes: number;
  /** How long the first letter of a batch waits for others, ms. */
  lingerMs: number;
  clock: Clock;
  /** Letters per request, at most (SQS: ten). */
  maxEntries?: number;
}

interface Pending {
  letter: DeadLetter;
  resolve(outcome: DeadLetterOutcome): void;
  reject(err: unknown): void;
}

/**
 * Returns `send(letter)`, which resolves with that letter's outcome once the batch holding it is sent.
 *
 * @example
 * ```ts
 * import { createLetterBatcher, type EntryResult, type LetterBatcherOptions } from "./letter_batcher.ts";
 * import { systemClock } from "../clock.ts";
 * const options: LetterBatcherOptions = {
 *   sendBatch: (letters) => Promise.resolve(letters.map((): EntryResult => ({ status: "sent" }))),
 *   bytes: (letter) => letter.body.length,
 *   maxBatchBytes: 262_144,
 *   lingerMs: 20,
 *   clock: systemClock,
 * };
 * const send = createLetterBatcher(options);
 * await send({ messageId: "m1", body: "{}", attributes: {} }); // { status: "sent" }
 * ```
 */
export function createLetterBatcher(
  opts: LetterBatcherOptions,
): (letter: DeadLetter) => Promise<DeadLetterOutcome> {
  const maxEntries = opts.maxEntries ?? 10;
  let pending: Pending[] = [];
  let pendingBytes = 0;
  let timer: unknown;

  function flush(): void {
    opts.clock.clearTimeout(timer);
    timer = undefined;
    const batch = pending;
    pending = [];
    pendingBytes = 0;
    if (batch.length > 0) void sendNow(batch);
  }

  async function sendNow(batch: Pending[]): Promise<void> {
    let results: EntryResult[];
    try {
      results = await opts.sendBatch(batch.map((p) => p.letter));
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => {
      const r = results[i];
      if (r === undefined) p.reject(new Error("the batch send gave no result for this letter"));
      else if (r.status === "failed") p.reject(r.error);
      else p.resolve(r);
    });
  }

  return (letter) =>
    new Promise<DeadLetterOutcome>((resolve, reject) => {
      const size = opts.bytes(letter);
      if (pending.length > 0 && pendingBytes + size > opts.maxBatchBytes) flush();
      pending.push({ letter, resolve, reject });
      pendingBytes += size;
      if (pending.length >= maxEntries) flush();
      else if (timer === undefined) timer = opts.clock.setTimeout(flush, opts.lingerMs);
    });
}
