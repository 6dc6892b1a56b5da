/**
 * The measuring side of a benchmark child (ceiling_child.ts, masq_child.ts): the handshake with the parent
 * and what a consumer reports. Each consumer runs in a process of its own, so that its CPU time and peak
 * RSS are its own and nothing else's.
 *
 * Handshake: the parent writes the child's settings as one JSON line; the child gets ready (modules
 * loaded, clients built) and prints `{"ready":true}`; the parent writes `{"go":true}` to every child at
 * once; each child consumes until the queue is drained and prints its ConsumerReport as one JSON line.
 *
 * @module
 */
import process from "node:process";
import v8 from "node:v8";

/** What one consumer process measured, from "go" to its last delete. */
export interface ConsumerReport {
  /** Messages this process deleted (redeliveries included). */
  messages: number;
  /** Epoch ms of "go". */
  startedAt: number;
  /** Epoch ms of this process's last completed delete (when it deleted nothing: when it returned). */
  lastDeleteAt: number;
  /**
   * Process CPU time (user + system, every thread) from "go" to the report, µs. Taken once at the end, not
   * at every delete (reading it costs a system call): the drained-queue check after the last delete adds a
   * request or two, next to tens of thousands.
   */
  cpuUs: number;
  /**
   * Bytes the JavaScript heap allocated from "go" to the report (V8's running total, garbage included):
   * what makes the garbage collector run, so the part of the CPU time that grows with each message's
   * temporary objects. Absent where the runtime does not count it.
   */
  heapAllocatedBytes?: number;
  /** Peak resident set size of the process over its whole life (getrusage maxrss), KiB. */
  peakRssKiB: number;
  /** Time from receive to delete of each deleted message, ms (0.1 ms resolution). */
  latenciesMs: number[];
  /** How the end was taken: the last delete seen, or the return of the run (no delete events seen). */
  end: "last delete" | "run returned";
  /** Anything else the consumer wants in the record (masq's summary, say). */
  extra?: Record<string, unknown>;
}

/** Reads stdin line by line. */
export function stdinLines(): () => Promise<string | undefined> {
  const reader = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  return async () => {
    for (;;) {
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        return line;
      }
      const { value, done } = await reader.read();
      if (done) {
        const rest = buf;
        buf = "";
        return rest === "" ? undefined : rest;
      }
      buf += value;
    }
  };
}

/**
 * The child's side of the handshake: returns its settings; `ready()` announces readiness and resolves at
 * "go".
 */
export async function handshake<T>(): Promise<{ settings: T; ready: () => Promise<void> }> {
  const next = stdinLines();
  const first = await next();
  if (first === undefined) throw new Error("no settings on stdin");
  return {
    settings: JSON.parse(first) as T,
    async ready() {
      console.log(JSON.stringify({ ready: true }));
      const go = await next();
      if (go === undefined || !JSON.parse(go).go) throw new Error('expected {"go":true} on stdin');
    },
  };
}

const epochNow = () => performance.timeOrigin + performance.now();
/** V8's running total of heap bytes allocated; not in every runtime's (or @types/node's) heap statistics. */
export const allocatedNow = (): number | undefined => {
  const total = (v8.getHeapStatistics() as { total_allocated_bytes?: unknown }).total_allocated_bytes;
  return typeof total === "number" ? total : undefined;
};
const cpuNow = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

function heapAllocated(since: number | undefined): { heapAllocatedBytes?: number } {
  const now = allocatedNow();
  return now === undefined || since === undefined ? {} : { heapAllocatedBytes: now - since };
}

/** Counts deletions and takes the time of the last one. */
export interface Meter {
  /** Call once at "go". */
  start(): void;
  /** Call after each completed delete. */
  deleted(messages: number, latenciesMs: readonly number[]): void;
  /** `messages` stands in for the count when no delete was reported (a run without delete events). */
  report(extra?: Record<string, unknown>, messages?: number): ConsumerReport;
}

/**
 * A meter for one consumer process.
 *
 * @example
 * ```ts
 * import { createMeter } from "./measure.ts";
 * const meter = createMeter();
 * meter.start();
 * meter.deleted(10, Array(10).fill(3.2));
 * meter.report().messages; // 10
 * ```
 */
export function createMeter(): Meter {
  let startedAt = 0;
  let cpu0 = 0;
  let allocated0: number | undefined;
  let messages = 0;
  let lastDeleteAt = 0;
  const latencies: number[] = [];
  return {
    start() {
      startedAt = epochNow();
      cpu0 = cpuNow();
      allocated0 = allocatedNow();
    },
    deleted(n, ms) {
      messages += n;
      lastDeleteAt = epochNow();
      for (const x of ms) latencies.push(Math.round(x * 10) / 10);
    },
    report(extra, fallback = 0) {
      const seen = messages > 0;
      return {
        messages: seen ? messages : fallback,
        startedAt,
        lastDeleteAt: seen ? lastDeleteAt : epochNow(),
        cpuUs: cpuNow() - cpu0,
        ...heapAllocated(allocated0),
        peakRssKiB: process.resourceUsage().maxRSS,
        latenciesMs: latencies,
        end: seen ? "last delete" : "run returned",
        ...(extra ? { extra } : {}),
      };
    },
  };
}
