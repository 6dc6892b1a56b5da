/**
 * Progress of a run, built on its events: on a terminal, one line redrawn in place (done, queue depth,
 * rate, ETA) at most a few times a second; otherwise (a pipe, a container's log) a `progress` log line
 * every few seconds, because `\r` redraws only make noise in a log collector.
 *
 * @module
 */
import { type Clock, systemClock } from "./clock.ts";
import type { Logger } from "./log.ts";
import type { PipelineEvent } from "./types.ts";

export interface ProgressOptions {
  /** Raw stderr writes (no newline added): the terminal line. */
  write: (text: string) => void;
  /** Whether stderr is a terminal (`Deno.stderr.isTerminal()`). */
  terminal: boolean;
  /** Where the periodic `progress` line goes when not on a terminal. */
  log: Logger;
  /** Time and the timers of redraws and log lines (default: the real clock). */
  clock?: Clock;
  /** Least time between two redraws of the terminal line (default 250 ms). */
  redrawEveryMs?: number;
  /** Interval of the `progress` log line off a terminal (default 5000 ms; 0: none). */
  logEveryMs?: number;
}

/** What the progress line says, for tests and for the log line. */
export interface ProgressState {
  received: number;
  done: number;
  inserted: number;
  duplicates: number;
  rejected: number;
  inFlight: number;
  /** Messages still waiting (estimated since the queue last reported its counts); undefined until it has. */
  queueDepth: number | undefined;
  /** Messages done per second over the last ~10 s. */
  rate: number;
  /** Seconds until the queue is drained at this rate; undefined when unknown. */
  etaSeconds: number | undefined;
}

export interface Progress {
  onEvent(e: PipelineEvent): void;
  state(): ProgressState;
  /** The terminal line as it would be drawn now. */
  line(): string;
  /**
   * Wraps a log line writer so that a log line never lands in the middle of the terminal line: the line is
   * cleared, the log line written, and the progress line drawn again below it.
   */
  wrapLogWrite(write: (line: string) => void): (line: string) => void;
  /** Starts the timers (redraw when idle, or the periodic log line). */
  start(): void;
  /** Stops the timers; on a terminal, draws the line a last time and ends it with a newline. */
  stop(): void;
}

const RATE_WINDOW_MS = 10_000;
const CLEAR = "\r\x1b[2K";

const count = (n: number) => Math.round(n).toLocaleString("en-US");

/** `h:mm:ss` or `m:ss` (see createProgress()). */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/**
 * A progress reporter fed by pipeline events.
 *
 * @example
 * ```ts
 * import {
 *   createProgress,
 *   formatDuration,
 *   type Progress,
 *   type ProgressOptions,
 *   type ProgressState,
 * } from "./progress.ts";
 * import { createLogger } from "./log.ts";
 *
 * const options: ProgressOptions = { write: () => {}, terminal: false, log: createLogger() };
 * const progress: Progress = createProgress(options);
 * progress.onEvent({ type: "queue_counts", counts: { visible: 90, inFlight: 10, delayed: 0 } });
 * progress.onEvent({ type: "deleted", messages: 10, latenciesMs: [] });
 * const state: ProgressState = progress.state(); // done 10, queueDepth 90
 * console.log(state.done, formatDuration(3725)); // 10 "1:02:05"
 * ```
 */
export function createProgress(opts: ProgressOptions): Progress {
  const clock = opts.clock ?? systemClock;
  const now = () => clock.now();
  const redrawEveryMs = opts.redrawEveryMs ?? 250;
  const logEveryMs = opts.logEveryMs ?? 5000;
  const t = { received: 0, done: 0, inserted: 0, duplicates: 0, rejected: 0, inFlight: 0 };
  /** The queue's last report, and how many were done when it came. */
  let counted: { waiting: number; doneThen: number } | undefined;
  const samples: { at: number; done: number }[] = [{ at: now(), done: 0 }];
  let drawnAt = -Infinity;
  let shown = false;
  let timer: unknown;
  /** Runs `tick` every `ms` until stop(). */
  const every = (ms: number, tick: () => void) => {
    const again = () => {
      tick();
      timer = clock.setTimeout(again, ms);
    };
    timer = clock.setTimeout(again, ms);
  };

  function sample(at: number): void {
    samples.push({ at, done: t.done });
    while (samples.length > 2 && at - samples[1].at >= RATE_WINDOW_MS) samples.shift();
  }

  function state(): ProgressState {
    const at = now();
    const first = samples[0];
    const elapsed = (at - first.at) / 1000;
    const rate = elapsed > 0 ? (t.done - first.done) / elapsed : 0;
    const queueDepth = counted === undefined
      ? undefined
      : Math.max(0, counted.waiting - (t.done - counted.doneThen));
    const etaSeconds = queueDepth === undefined
      ? undefined
      : queueDepth === 0
      ? 0
      : rate > 0
      ? queueDepth / rate
      : undefined;
    return { ...t, queueDepth, rate, etaSeconds };
  }

  function line(): string {
    const s = state();
    const parts = [
      `${count(s.done)} done (${count(s.inserted)} inserted, ${count(s.rejected)} rejected, ${
        count(s.duplicates)
      } duplicates)`,
      `${count(s.inFlight)} in flight`,
      `queue ${s.queueDepth === undefined ? "?" : `~${count(s.queueDepth)}`}`,
      `${count(s.rate)}/s`,
      `ETA ${s.etaSeconds === undefined ? "?" : formatDuration(s.etaSeconds)}`,
    ];
    return `masq: ${parts.join(" | ")}`;
  }

  function draw(force = false): void {
    if (!opts.terminal) return;
    const at = now();
    if (!force && at - drawnAt < redrawEveryMs) return;
    drawnAt = at;
    sample(at);
    opts.write(CLEAR + line());
    shown = true;
  }

  return {
    onEvent(e) {
      switch (e.type) {
        case "received":
          t.received += e.messages;
          break;
        case "written":
          t.inserted += e.inserted;
          t.duplicates += e.duplicates;
          t.rejected += e.rejected;
          break;
        case "deleted":
          t.done += e.messages;
          break;
        case "in_flight":
          t.inFlight = e.messages;
          break;
        case "queue_counts":
          counted = { waiting: e.counts.visible + e.counts.inFlight + e.counts.delayed, doneThen: t.done };
          break;
        default:
          return;
      }
      draw();
    },
    state,
    line,
    wrapLogWrite(write) {
      if (!opts.terminal) return write;
      return (logLine) => {
        if (shown) opts.write(CLEAR);
        write(logLine);
        if (shown) opts.write(line());
      };
    },
    start() {
      if (opts.terminal) {
        every(1000, () => draw(true));
      } else if (logEveryMs > 0) {
        every(logEveryMs, () => {
          sample(now());
          const s = state();
          opts.log.info("progress", {
            received: s.received,
            done: s.done,
            inserted: s.inserted,
            duplicates: s.duplicates,
            rejected: s.rejected,
            in_flight: s.inFlight,
            ...(s.queueDepth !== undefined ? { queue: s.queueDepth } : {}),
            rate: Math.round(s.rate * 10) / 10,
          });
        });
      }
    },
    stop() {
      clock.clearTimeout(timer);
      timer = undefined;
      if (opts.terminal && shown) {
        draw(true);
        opts.write("\n");
        shown = false;
      }
    },
  };
}
