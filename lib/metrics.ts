/**
 * Metrics and health for operators: Prometheus counters, gauges and histograms fed only by the run's named
 * events (PipelineEvent), and the /healthz and /readyz answers, served over HTTP by `serveMetrics()` when
 * `--metrics-port` is set.
 *
 * Health rules (on the injected clock's monotonic time, so they are tested without waiting):
 * - /healthz (liveness): the pipeline loop is alive, i.e. some event arrived within `stallMs` (or the run
 *   started less than `stallMs` ago). Receives report every long poll and retries every backoff, so a
 *   silent loop is wedged; restarting it is the cure. An outage is not a wedge: retries keep it talking.
 * - /readyz (readiness): both the database and the queue are usable. A dependency is unready when it has
 *   failed (a retry of its kind) since it last answered and that answer is older than `readyWithinMs`, or
 *   it has not answered yet. An idle database is not a dead one: masq only talks to it when it writes, so
 *   silence alone does not make it unready. `runMasq` checks the database before the first receive, so
 *   the first event of the run counts as the database's first answer.
 *
 * Queue age: SQS has no "age of the oldest message" attribute (that is a CloudWatch metric). masq reports
 * the age of the oldest message of the latest receive (its SentTimestamp; needs `oldestSentAt` on the
 * received event), reset to 0 when the queue reports nothing visible.
 *
 * @module
 */
import client from "prom-client";
import { type Clock, systemClock } from "./clock.ts";
import type { PipelineEvent } from "./types.ts";

export interface MetricsOptions {
  /** Monotonic time for the health rules, wall-clock time for SentTimestamp ages (no timers are set). */
  clock?: Pick<Clock, "now" | "wallNow">;
  /** A dependency failing longer than this since its last answer makes /readyz 503 (default 60 s). */
  readyWithinMs?: number;
  /** No event for this long makes /healthz 503 (default 5 min). */
  stallMs?: number;
}

/** One health answer: HTTP status and a short JSON body. */
export interface HealthAnswer {
  status: 200 | 503;
  body: Record<string, unknown>;
}

export interface Metrics {
  /** Feeds one pipeline event into the counters and the health state. */
  onEvent(e: PipelineEvent): void;
  /** The Prometheus text exposition of every metric. */
  scrape(): Promise<string>;
  readonly contentType: string;
  health(): HealthAnswer;
  ready(): HealthAnswer;
}

/** Every metric name masq exports (the Grafana dashboard and its test use these). */
export const METRIC_NAMES = [
  "masq_messages_received_total",
  "masq_rows_inserted_total",
  "masq_duplicates_total",
  "masq_rejected_total",
  "masq_messages_deleted_total",
  "masq_dead_lettered_total",
  "masq_retries_total",
  "masq_write_batch_rows",
  "masq_write_duration_seconds",
  "masq_message_latency_seconds",
  "masq_in_flight_messages",
  "masq_queue_messages",
  "masq_queue_oldest_message_age_seconds",
  "masq_last_event_age_seconds",
  "masq_dependency_up",
  "process_resident_memory_bytes",
  "process_heap_used_bytes",
  "process_start_time_seconds",
] as const;

/** A dependency's recent history, for readiness. */
interface DependencyState {
  lastOk: number | undefined;
  /** A retry of its kind came after its last answer. */
  failing: boolean;
}

function usable(d: DependencyState, now: number, withinMs: number): boolean {
  if (d.lastOk === undefined) return false;
  if (now - d.lastOk <= withinMs) return true;
  return !d.failing;
}

/**
 * A fresh registry with masq's metrics, and the health state, driven by `onEvent`.
 *
 * @example
 * ```ts
 * import {
 *   createMetrics,
 *   type HealthAnswer,
 *   METRIC_NAMES,
 *   type Metrics,
 *   type MetricsOptions,
 *   type MetricsServer,
 *   serveMetrics,
 * } from "./metrics.ts";
 *
 * import { systemClock } from "./clock.ts";
 * const options: MetricsOptions = { clock: systemClock, readyWithinMs: 60_000 };
 * const metrics: Metrics = createMetrics(options);
 * metrics.onEvent({ type: "queue_ok" });
 * metrics.onEvent({ type: "received", messages: 10 });
 * const ready: HealthAnswer = metrics.ready(); // { status: 200, body: { ready: true, ... } }
 * const server: MetricsServer = serveMetrics(metrics, { port: 0, hostname: "127.0.0.1" });
 * const text = await fetch(`http://127.0.0.1:${server.port}/metrics`).then((r) => r.text());
 * console.log(ready.status, text.includes("masq_messages_received_total 10"), METRIC_NAMES.length);
 * await server.close();
 * ```
 */
export function createMetrics(opts: MetricsOptions = {}): Metrics {
  const clock = opts.clock ?? systemClock;
  const readyWithinMs = opts.readyWithinMs ?? 60_000;
  const stallMs = opts.stallMs ?? 300_000;
  const started = clock.now();
  let lastEvent: number | undefined;
  let oldestSentAt: number | undefined;
  const database: DependencyState = { lastOk: undefined, failing: false };
  const queue: DependencyState = { lastOk: undefined, failing: false };
  const answered = (d: DependencyState, now: number) => {
    d.lastOk = now;
    d.failing = false;
  };

  const registry = new client.Registry();
  const registers = [registry];
  const counter = (name: string, help: string, labelNames: string[] = []) =>
    new client.Counter({ name, help, labelNames, registers });
  const received = counter("masq_messages_received_total", "Messages received from the queue.");
  const inserted = counter("masq_rows_inserted_total", "New rows in user_logins.");
  const duplicates = counter(
    "masq_duplicates_total",
    "Messages already written by an earlier delivery (redeliveries, skipped by the ledger).",
  );
  const rejected = counter("masq_rejected_total", "New rows in user_logins_rejected.");
  const deleted = counter("masq_messages_deleted_total", "Messages deleted from the queue after commit.");
  const deadLettered = counter("masq_dead_lettered_total", "Messages sent to the dead-letter queue.");
  const retries = counter("masq_retries_total", "Retried calls, by what was retried and where.", [
    "what",
    "kind",
  ]);
  const batchRows = new client.Histogram({
    name: "masq_write_batch_rows",
    help: "Rows per database write.",
    buckets: [1, 5, 10, 20, 40, 80, 160, 320],
    registers,
  });
  const writeSeconds = new client.Histogram({
    name: "masq_write_duration_seconds",
    help: "Duration of one database write (one transaction), retries included.",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  });
  const latency = new client.Histogram({
    name: "masq_message_latency_seconds",
    help: "From receiving a message to deleting it (transform, write, commit, delete).",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  });
  const inFlight = new client.Gauge({
    name: "masq_in_flight_messages",
    help: "Messages received and not yet deleted or released.",
    registers,
  });
  const queueMessages = new client.Gauge({
    name: "masq_queue_messages",
    help: "Approximate messages in the source queue, by state (from the queue's attributes).",
    labelNames: ["state"],
    registers,
  });
  new client.Gauge({
    name: "masq_queue_oldest_message_age_seconds",
    help:
      "Age (from its SentTimestamp) of the oldest message of the latest receive; 0 once nothing is visible.",
    registers,
    collect() {
      this.set(oldestSentAt === undefined ? 0 : Math.max(0, (clock.wallNow() - oldestSentAt) / 1000));
    },
  });
  new client.Gauge({
    name: "masq_last_event_age_seconds",
    help: "Seconds since the pipeline last reported anything (liveness).",
    registers,
    collect() {
      this.set((clock.now() - (lastEvent ?? started)) / 1000);
    },
  });
  new client.Gauge({
    name: "masq_dependency_up",
    help: "1 when the dependency is usable by the readiness rule, else 0.",
    labelNames: ["dependency"],
    registers,
    collect() {
      const now = clock.now();
      this.set({ dependency: "database" }, usable(database, now, readyWithinMs) ? 1 : 0);
      this.set({ dependency: "queue" }, usable(queue, now, readyWithinMs) ? 1 : 0);
    },
  });
  new client.Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes.",
    registers,
    collect() {
      this.set(Deno.memoryUsage().rss);
    },
  });
  new client.Gauge({
    name: "process_heap_used_bytes",
    help: "V8 heap in use, bytes.",
    registers,
    collect() {
      this.set(Deno.memoryUsage().heapUsed);
    },
  });
  new client.Gauge({ name: "process_start_time_seconds", help: "Start time, Unix seconds.", registers })
    .set(Math.floor(clock.wallNow() / 1000));

  function onEvent(e: PipelineEvent): void {
    const now = clock.now();
    // The first event of a run comes after runMasq has reached the database (see the module comment).
    if (lastEvent === undefined && database.lastOk === undefined) database.lastOk = now;
    lastEvent = now;
    switch (e.type) {
      case "received": {
        received.inc(e.messages);
        if (e.oldestSentAt !== undefined) oldestSentAt = e.oldestSentAt;
        break;
      }
      case "written":
        inserted.inc(e.inserted);
        duplicates.inc(e.duplicates);
        rejected.inc(e.rejected);
        batchRows.observe(e.rows);
        writeSeconds.observe(e.ms / 1000);
        break;
      case "deleted":
        deleted.inc(e.messages);
        for (const ms of e.latenciesMs) latency.observe(ms / 1000);
        break;
      case "dead_lettered":
        deadLettered.inc(e.messages);
        break;
      case "retry":
        retries.inc({ what: e.what, kind: e.kind });
        (e.kind === "database" ? database : queue).failing = true;
        break;
      case "in_flight":
        inFlight.set(e.messages);
        break;
      case "queue_counts":
        queueMessages.set({ state: "visible" }, e.counts.visible);
        queueMessages.set({ state: "in_flight" }, e.counts.inFlight);
        queueMessages.set({ state: "delayed" }, e.counts.delayed);
        if (e.counts.visible === 0) oldestSentAt = undefined;
        answered(queue, now);
        break;
      case "database_ok":
        answered(database, now);
        break;
      case "queue_ok":
        answered(queue, now);
        break;
    }
  }

  return {
    onEvent,
    scrape: () => registry.metrics(),
    contentType: registry.contentType,
    health() {
      const now = clock.now();
      const silentMs = now - (lastEvent ?? started);
      const alive = silentMs <= stallMs;
      return {
        status: alive ? 200 : 503,
        body: { alive, last_event_seconds_ago: Math.round(silentMs / 1000) },
      };
    },
    ready() {
      const now = clock.now();
      const db = usable(database, now, readyWithinMs);
      const q = usable(queue, now, readyWithinMs);
      return { status: db && q ? 200 : 503, body: { ready: db && q, database: db, queue: q } };
    },
  };
}

/** A running metrics endpoint. */
export interface MetricsServer {
  /** The port it listens on (the one asked for, or the one chosen for port 0). */
  port: number;
  /** Stops listening and waits for open requests to finish. */
  close(): Promise<void>;
}

/** Serves GET /metrics (Prometheus text), /healthz and /readyz on `hostname:port` (see createMetrics()). */
export function serveMetrics(
  metrics: Metrics,
  opts: { port: number; hostname?: string },
): MetricsServer {
  const json = (a: HealthAnswer) =>
    new Response(JSON.stringify(a.body) + "\n", {
      status: a.status,
      headers: { "content-type": "application/json" },
    });
  const server = Deno.serve({
    port: opts.port,
    hostname: opts.hostname ?? "0.0.0.0",
    onListen: () => {},
  }, async (req) => {
    const path = new URL(req.url).pathname;
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    if (path === "/metrics") {
      return new Response(await metrics.scrape(), { headers: { "content-type": metrics.contentType } });
    }
    if (path === "/healthz") return json(metrics.health());
    if (path === "/readyz") return json(metrics.ready());
    return new Response("not found; try /metrics, /healthz or /readyz\n", { status: 404 });
  });
  return {
    port: server.addr.port,
    close: () => server.shutdown(),
  };
}
