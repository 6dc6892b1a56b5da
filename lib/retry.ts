import type { Logger } from "./log.ts";
import { errorMessage } from "./errors.ts";
import { type Clock, systemClock } from "./clock.ts";

export interface RetryOptions {
  /** What is being retried, for the log: "write batch", "receive". */
  what: string;
  log: Logger;
  /** Whether an error is worth another try; anything else is rethrown at once. */
  retryable: (err: unknown) => boolean;
  baseMs?: number;
  capMs?: number;
  /** Give up after this many attempts (default: never, for outages that end). */
  maxAttempts?: number;
  /** Once aborted, the backoff wait ends early and no attempt after the next one is made. */
  signal?: AbortSignal;
  /** Extra fields for each log line, e.g. the message ids concerned. */
  fields?: Record<string, unknown>;
  /** Told of each retry (after the log line), for metrics. */
  onRetry?: (err: unknown, attempt: number) => void;
  /** Whose timers the backoff waits on (default: the real ones). */
  clock?: Clock;
}

/**
 * The delay before retry number `attempt` (1-based): "full jitter" exponential backoff, capped, so that
 * many workers retrying one outage do not hammer the recovering server in lock-step.
 *
 * `backoffDelay(1, 100, 10_000, () => 0.5)` is 50; `backoffDelay(20, 100, 10_000, () => 1)` is 10_000 (the cap).
 */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.max(1, Math.round(ceiling * random()));
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal, clock: Clock = systemClock): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = clock.setTimeout(done, ms);
    function done() {
      clock.clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Runs `fn` until it succeeds, retrying retryable errors with capped exponential backoff and jitter and
 * logging each retry (messages pass through the logger's redaction).
 *
 * @example
 * ```ts
 * import { backoffDelay, retry, type RetryOptions, sleep } from "./retry.ts";
 * import { systemClock } from "./clock.ts";
 * import { silentLogger } from "./log.ts";
 * const options: RetryOptions = {
 *   what: "ping",
 *   log: silentLogger,
 *   retryable: (err) => err instanceof Error && err.message === "busy",
 *   clock: systemClock,
 * };
 * let calls = 0;
 * const answer = await retry(async () => {
 *   if (++calls < 2) throw new Error("busy");
 *   return "pong";
 * }, options);
 * await sleep(backoffDelay(1, 100, 10_000, () => 0.5)); // 50 ms
 * console.log(answer, calls); // "pong" 2
 * ```
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const base = opts.baseMs ?? 200;
  const cap = opts.capMs ?? 10_000;
  for (let attempt = 1;; attempt++) {
    try {
      const result = await fn(attempt);
      if (attempt > 1) opts.log.info(`${opts.what}: recovered`, { attempts: attempt, ...opts.fields });
      return result;
    } catch (err) {
      const last = opts.maxAttempts !== undefined && attempt >= opts.maxAttempts;
      if (!opts.retryable(err) || last || opts.signal?.aborted) throw err;
      const delay = backoffDelay(attempt, base, cap);
      opts.log.warn(`${opts.what} failed, retrying`, {
        attempt,
        delay_ms: delay,
        error: errorMessage(err),
        ...opts.fields,
      });
      opts.onRetry?.(err, attempt);
      await sleep(delay, opts.signal, opts.clock);
    }
  }
}
