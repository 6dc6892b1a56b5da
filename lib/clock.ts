/**
 * The one clock of masq: monotonic time and timers (heartbeats, lingers, backoffs, the progress line), and
 * wall-clock time where an age is measured from an SQS SentTimestamp. Injected everywhere it is used, so
 * that tests run them on fake time without waiting.
 *
 * @module
 */

/** Time and timers. */
export interface Clock {
  /** Monotonic milliseconds (`performance.now()`): for durations and timers. */
  now(): number;
  /** Wall-clock epoch milliseconds (`Date.now()`): what SQS SentTimestamps are measured in. */
  wallNow(): number;
  /** Returns an opaque handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

/**
 * The real clock: `performance.now()`, `Date.now()` and the global timers.
 *
 * @example
 * ```ts
 * import { type Clock, systemClock } from "./clock.ts";
 * const clock: Clock = systemClock;
 * const started = clock.now();
 * const timer = clock.setTimeout(() => console.log(clock.now() - started, "ms later"), 10);
 * clock.clearTimeout(timer);
 * console.log(new Date(clock.wallNow()).toISOString());
 * ```
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout> | undefined),
};
