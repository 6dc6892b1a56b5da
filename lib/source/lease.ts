/**
 * A lease over one received batch: while it is held, a heartbeat keeps the messages invisible (every
 * third of the visibility timeout, so one lost extension still leaves time for the next); `ack` deletes
 * what is done. Extensions and deletes of one lease run one after another on a promise chain, never at
 * the same time: SQS would refuse an extension racing the delete of the same receipt handle.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { type Clock, systemClock } from "../clock.ts";
import { retry } from "../retry.ts";
import type { Message, Source } from "../types.ts";

export interface LeaseOptions {
  log: Logger;
  clock?: Clock;
  /** Cap of the backoff between delete attempts, ms. */
  maxBackoffMs?: number;
  /** Told of each delete retry. */
  onRetry?: (err: unknown) => void;
}

export interface Lease {
  /** The messages still held (received, not yet acknowledged). */
  readonly held: readonly Message[];
  /**
   * Deletes `messages` (after their rows commit), retrying transient failures; they are no longer
   * extended. Throws only for an error the source classifies as not transient.
   */
  ack(messages: readonly Message[]): Promise<void>;
  /** Stops the heartbeat (what is not acknowledged becomes visible again when its timeout runs out). */
  release(): Promise<void>;
}

/** The heartbeat interval for a visibility timeout in seconds: a third of it, at least 250 ms. */
export function heartbeatMs(visibilityTimeoutS: number): number {
  return Math.max(250, (visibilityTimeoutS * 1000) / 3);
}

/**
 * Takes a lease on a received batch and starts its heartbeat.
 *
 * @example
 * ```ts
 * import { heartbeatMs, type Lease, lease, type LeaseOptions } from "./lease.ts";
 * import type { Source } from "../types.ts";
 * import { silentLogger } from "../log.ts";
 * declare const source: Source;
 * const batch = await source.receive();
 * const options: LeaseOptions = { log: silentLogger };
 * const held: Lease = lease(source, batch, options); // extends every heartbeatMs(source.visibilityTimeout) ms
 * console.log(heartbeatMs(source.visibilityTimeout));
 * try {
 *   // ... write the rows ...
 *   await held.ack(batch);
 * } finally {
 *   await held.release();
 * }
 * ```
 */
export function lease(source: Source, messages: readonly Message[], opts: LeaseOptions): Lease {
  const clock = opts.clock ?? systemClock;
  let held = messages;
  let tail: Promise<unknown> = Promise.resolve();
  let timer: unknown;
  let released = false;

  /** Runs `step` after every step queued before it; the chain itself never rejects. */
  function serial<T>(step: () => Promise<T>): Promise<T> {
    const p = tail.then(step);
    tail = p.catch(() => {});
    return p;
  }

  function beat() {
    timer = undefined;
    if (released || held.length === 0) return;
    const extending = held;
    void serial(async () => {
      if (released) return;
      const still = extending.filter((m) => held.includes(m));
      if (still.length === 0) return;
      try {
        await source.extendVisibility(still);
      } catch (err) {
        // The next beat tries again; a message whose visibility ran out may be delivered twice meanwhile,
        // which the ledger makes harmless.
        opts.log.warn("visibility heartbeat failed", {
          error: errorMessage(err),
          messages: extending.length,
        });
      }
    }).finally(schedule);
  }

  function schedule() {
    if (!released && timer === undefined) {
      timer = clock.setTimeout(beat, heartbeatMs(source.visibilityTimeout));
    }
  }

  schedule();
  return {
    get held() {
      return held;
    },
    async ack(done) {
      if (done.length === 0) return;
      const ids = new Set(done);
      held = held.filter((m) => !ids.has(m));
      // Each attempt waits its turn on the chain, so heartbeats of the rest go on between attempts.
      await retry(() => serial(() => source.delete(done)), {
        what: "delete",
        log: opts.log,
        retryable: (err) => source.classify(err) === "transient",
        capMs: opts.maxBackoffMs,
        clock,
        fields: { messages: done.length },
        ...(opts.onRetry ? { onRetry: opts.onRetry } : {}),
      });
    },
    async release() {
      released = true;
      clock.clearTimeout(timer);
      timer = undefined;
      await tail;
    },
  };
}
