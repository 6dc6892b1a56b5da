/**
 * README "Operations": `masq run --follow --metrics-port N` serves /metrics, /healthz and /readyz while it
 * consumes; the counters match what it wrote; SIGTERM ends the run and closes the endpoint. And
 * serveMetrics() over a real port (createMetrics()'s own tests, which need none, are tests/metrics_test.ts).
 */
import { assert, assertEquals } from "../support/assert.ts";
import { parsePrometheus } from "../support/prometheus.ts";
import { manualClock, RUN_EVENTS } from "../support/fakes.ts";
import { createMetrics, serveMetrics } from "../../lib/metrics.ts";
import { ledgerCount, seedSynthetic, waitFor } from "../support/delivery.ts";
import { collect, freePort, killAndReap, runMasqCliWithin, spawnMasq } from "../support/processes.ts";
import { sqsClient } from "../support/sqs.ts";
import { startDatabase } from "../support/databases.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";

const MESSAGES = 2_000;
const BAD_EVERY = 100;

Deno.test("masq run --follow --metrics-port serves metrics that match the run, health, and closes on SIGTERM", async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const client = sqsClient(sqs);
  let child: Deno.ChildProcess | undefined;
  let done: ReturnType<typeof collect> | undefined;
  try {
    const queueUrl = sqs.createQueue("metrics-queue", { VisibilityTimeout: "30" });
    const seeded = await seedSynthetic(sqs, client, "metrics-queue", MESSAGES, BAD_EVERY);
    const port = freePort();
    const base = `http://127.0.0.1:${port}`;
    child = spawnMasq(["run", "--follow", "--metrics-port", String(port), "--wait-seconds", "1"], {
      queueUrl,
      databaseUrl: db.url,
    });
    done = collect(child);
    let exited = false;
    done.then(() => (exited = true), () => (exited = true));
    const get = async (path: string) => {
      try {
        const res = await fetch(`${base}${path}`);
        return { status: res.status, text: await res.text() };
      } catch {
        return undefined; // not listening (yet, or any more)
      }
    };

    // Live from the start; ready once the queue has answered.
    assert(
      await waitFor(async () => exited || (await get("/healthz"))?.status === 200, 30_000),
      "no /healthz",
    );
    assert(
      await waitFor(async () => exited || (await get("/readyz"))?.status === 200, 30_000),
      "never ready",
    );
    // Every message written (the ledger holds one row per message), then scraped.
    assert(await waitFor(async () => exited || (await ledgerCount(db)) >= MESSAGES, 90_000), "not drained");
    assert(!exited, "masq --follow exited on its own");
    let samples = new Map<string, number>();
    assert(
      await waitFor(async () => {
        const scraped = await get("/metrics");
        if (scraped?.status !== 200) return false;
        samples = parsePrometheus(scraped.text);
        return samples.get("masq_messages_deleted_total") === MESSAGES;
      }, 30_000),
      `deleted ${samples.get("masq_messages_deleted_total")} of ${MESSAGES}`,
    );
    const bad = seeded.badIds.size;
    assert(bad > 0, "some bad messages");
    assertEquals(samples.get("masq_messages_received_total"), MESSAGES);
    assertEquals(samples.get("masq_rows_inserted_total"), MESSAGES - bad);
    assertEquals(samples.get("masq_rejected_total"), bad);
    assertEquals(samples.get("masq_dead_lettered_total"), bad);
    assertEquals(samples.get("masq_duplicates_total"), 0);
    assert((samples.get("masq_write_duration_seconds_count") ?? 0) > 0, "write latencies");
    assertEquals(samples.get("masq_write_batch_rows_sum"), MESSAGES);
    assertEquals(samples.get("masq_in_flight_messages"), 0);
    // The queue's counts are read on a timer, the first at once: the gauge exists from the start.
    assert(samples.has('masq_queue_messages{state="visible"}'), "queue depth from the queue's attributes");
    assert((samples.get("masq_message_latency_seconds_count") ?? 0) === MESSAGES, "a latency per message");
    assertEquals((await get("/readyz"))?.status, 200);

    child.kill("SIGTERM");
    const res = await done;
    assertEquals(res.code, 0, res.stderr.slice(-2000));
    assertEquals(res.summary?.received, MESSAGES);
    assertEquals(await get("/healthz"), undefined, "still listening after exit");
  } finally {
    await killAndReap(child, done);
    await sqs.stop();
    await db.stop();
  }
});

Deno.test("masq run --metrics-port on a port already in use exits 2 naming the setting", async () => {
  const taken = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  try {
    const port = (taken.addr as Deno.NetAddr).port;
    const res = await runMasqCliWithin(30_000, ["run", "--metrics-port", String(port)], {
      queueUrl: "http://127.0.0.1:9/000000000000/none",
      databaseUrl: "postgres://postgres@127.0.0.1:9/none",
    });
    assertEquals(res.code, 2, res.stderr);
    assert(res.stderr.includes(`--metrics-port / MASQ_METRICS_PORT: cannot listen on ${port}`), res.stderr);
  } finally {
    taken.close();
  }
});

Deno.test("serveMetrics() serves /metrics, /healthz and /readyz over HTTP and 404s anything else", async () => {
  const clock = manualClock();
  const metrics = createMetrics({ clock, readyWithinMs: 1000 });
  const server = serveMetrics(metrics, { port: 0, hostname: "127.0.0.1" });
  const base = `http://127.0.0.1:${server.port}`;
  try {
    for (const e of RUN_EVENTS) metrics.onEvent(e);
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
