import { createMetrics, METRIC_NAMES } from "../lib/metrics.ts";
import { assert, assertEquals } from "./support/assert.ts";
import { manualClock, RUN_EVENTS } from "./support/fakes.ts";
import { parsePrometheus } from "./support/prometheus.ts";

Deno.test("createMetrics() counts a synthetic run's events into the Prometheus exposition", async () => {
  const clock = manualClock();
  const metrics = createMetrics({ clock });
  for (const e of RUN_EVENTS) metrics.onEvent(e);
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
