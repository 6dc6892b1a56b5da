import { createMetrics, METRIC_NAMES, serveMetrics } from "../lib/metrics.ts";
import type { PipelineEvent } from "../lib/types.ts";
import { assert, assertEquals } from "./support/assert.ts";
import { FAKE_EPOCH_MS, manualClock } from "./support/fakes.ts";
import { parsePrometheus } from "./support/prometheus.ts";

const RUN: PipelineEvent[] = [
  { type: "queue_ok" },
  { type: "received", messages: 10, oldestSentAt: FAKE_EPOCH_MS - 30_000 },
  { type: "in_flight", messages: 10 },
  { type: "received", messages: 7 },
  { type: "in_flight", messages: 17 },
  { type: "retry", what: "database write", kind: "database" },
  { type: "written", rows: 10, inserted: 8, duplicates: 1, rejected: 1, ms: 12 },
  { type: "database_ok" },
  { type: "dead_lettered", messages: 1 },
  { type: "deleted", messages: 10, latenciesMs: Array(10).fill(40) },
  { type: "written", rows: 7, inserted: 7, duplicates: 0, rejected: 0, ms: 3000 },
  { type: "deleted", messages: 7, latenciesMs: Array(7).fill(3100) },
  { type: "in_flight", messages: 0 },
  { type: "retry", what: "receive", kind: "sqs" },
  { type: "retry", what: "receive", kind: "sqs" },
  { type: "queue_counts", counts: { visible: 5, inFlight: 2, delayed: 1 } },
];

Deno.test("createMetrics() counts a synthetic run's events into the Prometheus exposition", async () => {
  const clock = manualClock();
  const metrics = createMetrics({ clock });
  for (const e of RUN) metrics.onEvent(e);
  const s = parsePrometheus(await metrics.scrape());
  assertEquals(s.get("masq_messages_received_total"), 17);
  assertEquals(s.get("masq_rows_inserted_total"), 15);
  assertEquals(s.get("masq_duplicates_total"), 1);
  assertEquals(s.get("masq_rejected_total"), 1);
  assertEquals(s.get("masq_messages_deleted_total"), 17);
  assertEquals(s.get("masq_dead_lettered_total"), 1);
  assertEquals(s.get('masq_retries_total{what="receive",kind="sqs"}'), 2);
  assertEquals(s.get('masq_retries_total{what="database write",kind="database"}'), 1);
  assertEquals(s.get("masq_write_batch_rows_count"), 2);
  assertEquals(s.get("masq_write_batch_rows_sum"), 17);
  assertEquals(s.get('masq_write_batch_rows_bucket{le="10"}'), 2);
  assertEquals(s.get('masq_write_batch_rows_bucket{le="5"}'), 0);
  assertEquals(s.get("masq_write_duration_seconds_sum"), 3.012);
  assertEquals(s.get('masq_write_duration_seconds_bucket{le="0.025"}'), 1);
  assertEquals(s.get('masq_write_duration_seconds_bucket{le="5"}'), 2);
  assertEquals(s.get('masq_message_latency_seconds_bucket{le="0.05"}'), 10);
  assertEquals(s.get("masq_message_latency_seconds_count"), 17);
  assertEquals(s.get("masq_in_flight_messages"), 0);
  assertEquals(s.get('masq_queue_messages{state="visible"}'), 5);
  assertEquals(s.get('masq_queue_messages{state="in_flight"}'), 2);
  assertEquals(s.get('masq_queue_messages{state="delayed"}'), 1);
  assertEquals(s.get("masq_queue_oldest_message_age_seconds"), 30);
  assertEquals(s.get('masq_dependency_up{dependency="database"}'), 1);
  assert((s.get("process_resident_memory_bytes") ?? 0) > 0, "resident memory");
  // Every name the dashboard may use is exported.
  for (const name of METRIC_NAMES) {
    assert(
      [...s.keys()].some((k) => k === name || k.startsWith(`${name}{`) || k.startsWith(`${name}_`)),
      name,
    );
  }
});

Deno.test("createMetrics() ages the oldest message with the clock and resets it once nothing is visible", async () => {
  const clock = manualClock();
  const metrics = createMetrics({ clock });
  metrics.onEvent({ type: "received", messages: 3, oldestSentAt: clock.wallNow() - 5_000 });
  clock.advance(10_000);
  assertEquals(parsePrometheus(await metrics.scrape()).get("masq_queue_oldest_message_age_seconds"), 15);
  metrics.onEvent({ type: "queue_counts", counts: { visible: 0, inFlight: 3, delayed: 0 } });
  assertEquals(parsePrometheus(await metrics.scrape()).get("masq_queue_oldest_message_age_seconds"), 0);
});

Deno.test("createMetrics() is not ready before the run's first event, and ready once the queue answers", () => {
  const clock = manualClock();
  const metrics = createMetrics({ clock });
  assertEquals(metrics.ready().status, 503);
  assertEquals(metrics.health().status, 200);
  metrics.onEvent({ type: "queue_ok" });
  assertEquals(metrics.ready(), { status: 200, body: { ready: true, database: true, queue: true } });
});

Deno.test("createMetrics() /readyz goes 503 when the database has failed and not answered for readyWithinMs", () => {
  const clock = manualClock();
  const metrics = createMetrics({ clock, readyWithinMs: 30_000 });
  metrics.onEvent({ type: "queue_ok" });
  metrics.onEvent({ type: "database_ok" });
  // Idle: an hour without writes is not an outage.
  for (let i = 0; i < 180; i++) {
    clock.advance(20_000);
    metrics.onEvent({ type: "queue_ok" });
  }
  assertEquals(metrics.ready().status, 200);
  // The database fails: still ready while the outage is younger than 30 s since its last answer...
  metrics.onEvent({ type: "database_ok" });
  clock.advance(10_000);
  metrics.onEvent({ type: "retry", what: "database write", kind: "database" });
  assertEquals(metrics.ready().status, 200);
  clock.advance(25_000);
  metrics.onEvent({ type: "retry", what: "database write", kind: "database" });
  metrics.onEvent({ type: "queue_ok" });
  assertEquals(metrics.ready(), { status: 503, body: { ready: false, database: false, queue: true } });
  // ...and ready again at its next answer.
  metrics.onEvent({ type: "database_ok" });
  assertEquals(metrics.ready().status, 200);
});

Deno.test("createMetrics() /readyz goes 503 when the queue keeps failing, /healthz when the loop falls silent", () => {
  const clock = manualClock();
  const metrics = createMetrics({ clock, readyWithinMs: 30_000, stallMs: 120_000 });
  metrics.onEvent({ type: "queue_ok" });
  for (let i = 0; i < 5; i++) {
    clock.advance(10_000);
    metrics.onEvent({ type: "retry", what: "receive", kind: "sqs" });
  }
  assertEquals(metrics.ready().body, { ready: false, database: true, queue: false });
  assertEquals(metrics.health().status, 200);
  clock.advance(120_001);
  assertEquals(metrics.health(), { status: 503, body: { alive: false, last_event_seconds_ago: 120 } });
});

Deno.test("serveMetrics() serves /metrics, /healthz and /readyz over HTTP and 404s anything else", async () => {
  const clock = manualClock();
  const metrics = createMetrics({ clock, readyWithinMs: 1000 });
  const server = serveMetrics(metrics, { port: 0, hostname: "127.0.0.1" });
  const base = `http://127.0.0.1:${server.port}`;
  try {
    for (const e of RUN) metrics.onEvent(e);
    const res = await fetch(`${base}/metrics`);
    assertEquals(res.status, 200);
    assert(res.headers.get("content-type")?.startsWith("text/plain; version=0.0.4"), "content type");
    const s = parsePrometheus(await res.text());
    assertEquals(s.get("masq_messages_received_total"), 17);

    const health = await fetch(`${base}/healthz`);
    assertEquals([health.status, await health.json()], [200, { alive: true, last_event_seconds_ago: 0 }]);
    const ready = await fetch(`${base}/readyz`);
    assertEquals([ready.status, (await ready.json()).ready], [200, true]);

    clock.advance(5_000);
    metrics.onEvent({ type: "retry", what: "receive", kind: "sqs" });
    const unready = await fetch(`${base}/readyz`);
    assertEquals([unready.status, await unready.json()], [503, {
      ready: false,
      database: true,
      queue: false,
    }]);

    const missing = await fetch(`${base}/nope`);
    assertEquals(missing.status, 404);
    await missing.body?.cancel();
    const post = await fetch(`${base}/metrics`, { method: "POST" });
    assertEquals(post.status, 405);
    await post.body?.cancel();
  } finally {
    await server.close();
  }
  // Closed: nothing listens any more.
  let refused = false;
  try {
    await fetch(`${base}/healthz`);
  } catch {
    refused = true;
  }
  assert(refused, "the server still answers after close()");
});
