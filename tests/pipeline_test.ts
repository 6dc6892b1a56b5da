import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { inFlightBound, type PipelineOptions, runPipeline, WRITE_ROWS } from "../lib/pipeline.ts";
import type { Fields, Logger } from "../lib/log.ts";
import type { PipelineEvent, Transform } from "../lib/types.ts";
import { createVaultCipher } from "../lib/vault.ts";
import {
  type FakeClock,
  fakeClock,
  memorySink,
  type MemorySinkOptions,
  memorySource,
  type MemorySourceOptions,
  pgError,
  plainTransform,
  sqsError,
  writeOne,
} from "./support/fakes.ts";

function recorder() {
  const lines: Array<{ level: string; msg: string; fields: Fields }> = [];
  const at = (level: string) => (msg: string, fields: Fields = {}) => void lines.push({ level, msg, fields });
  const log: Logger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  return { lines, log };
}

const good = (i: number) => JSON.stringify({ user_id: `user-${i}` });
const goods = (n: number) => Array.from({ length: n }, (_, i) => good(i));

interface Setup {
  source?: Omit<MemorySourceOptions, "clock">;
  sink?: Omit<MemorySinkOptions, "clock">;
  pipeline?: Partial<PipelineOptions>;
  /** The reason of every rejection the transform makes, instead of its own. */
  transformReason?: string;
}

function withReason(reason: string): Transform {
  return {
    async record(m) {
      const r = await plainTransform.record(m);
      return r.kind === "rejection" ? { ...r, reason } : r;
    },
    rejection: (m) => plainTransform.rejection(m, reason),
  };
}

function setup(bodies: readonly string[], s: Setup = {}) {
  const clock: FakeClock = fakeClock();
  const source = memorySource(bodies, { clock, ...s.source });
  const sink = memorySink({ clock, ...s.sink });
  const { lines, log } = recorder();
  const events: PipelineEvent[] = [];
  const start = () =>
    runPipeline({
      source,
      sink,
      transform: s.transformReason === undefined ? plainTransform : withReason(s.transformReason),
      log,
      follow: false,
      concurrency: 4,
      connections: 2,
      maxBackoffMs: 1000,
      clock,
      onEvent: (e) => events.push(e),
      ...s.pipeline,
    });
  return { clock, source, sink, lines, events, start, drain: () => clock.run(start()) };
}

Deno.test("runPipeline() drains the queue: every message written once, deleted only after its commit", async () => {
  const t = setup([...goods(95), "not json", JSON.stringify({ ip: "1.2.3.4" })]);
  const summary = await t.drain();
  assertEquals(
    { ...summary, seconds: 0, rate: 0 },
    { received: 97, inserted: 95, rejected: 2, duplicates: 0, seconds: 0, rate: 0 },
  );
  assertEquals(t.sink.logins.size, 95);
  assertEquals(t.source.remaining, 0);
  const committedAt = new Map<string, number>();
  for (const c of t.sink.commits) for (const id of c.ids) committedAt.set(id, c.seq);
  for (const d of t.source.deletes) {
    for (const id of d.ids) assert(committedAt.get(id)! < d.seq, `${id} deleted before its commit`);
  }
  assertEquals(t.source.deadLetters.length, 2);
  const deleted = t.events.filter((e) => e.type === "deleted");
  assertEquals(deleted.reduce((n, e) => n + (e.type === "deleted" ? e.latenciesMs.length : 0), 0), 97);
});

Deno.test("runPipeline() coalesces the batches of all receivers into fewer statements", async () => {
  const t = setup(goods(2000), { sink: { statementMs: 5 } });
  await t.drain();
  assertEquals(t.sink.logins.size, 2000);
  const rows = t.sink.commits.map((c) => c.rows);
  assert(rows.length < 200 / 2, `${rows.length} statements for 200 batches`);
  assert(Math.max(...rows) <= WRITE_ROWS);
});

Deno.test("runPipeline() keeps extending a slow write's messages: none is delivered twice", async () => {
  // Each statement takes 100 s against a 30 s visibility timeout.
  const t = setup(goods(40), { source: { visibilityTimeout: 30 }, sink: { statementMs: 100_000 } });
  const summary = await t.drain();
  assertEquals([summary.received, summary.inserted, summary.duplicates], [40, 40, 0]);
  assert(t.source.extensions.length >= 4 * 3, `${t.source.extensions.length} extensions`);
});

Deno.test("runPipeline() bounds the messages in flight, and receivers wait while it is reached", async () => {
  const concurrency = 8;
  const bound = inFlightBound(concurrency);
  const t = setup(goods(bound * 4), { sink: { statementMs: 50 }, pipeline: { concurrency, connections: 1 } });
  const summary = await t.drain();
  assertEquals(summary.inserted, bound * 4);
  const peak = Math.max(...t.events.flatMap((e) => e.type === "in_flight" ? [e.messages] : []));
  assert(peak <= bound, `peak in flight ${peak} > ${bound}`);
  assert(peak >= bound - 10 * concurrency, `the bound was never approached (${peak})`);
});

Deno.test("runPipeline() isolates a row the database refuses and rejects it with the database's reason", async () => {
  const bodies = goods(10);
  bodies[5] = JSON.stringify({ user_id: "evil" });
  const t = setup(bodies, {
    sink: {
      refuse: (r) =>
        r.kind === "login" && r.userId === "evil"
          ? pgError('violates check constraint "no_evil"', "23514")
          : undefined,
    },
    pipeline: { concurrency: 1 },
  });
  const summary = await t.drain();
  assertEquals([summary.inserted, summary.rejected], [9, 1]);
  const [rej] = [...t.sink.rejections.values()];
  assertEquals(rej.messageId, "m000005");
  assertEquals(rej.reason, 'database refused the row: violates check constraint "no_evil" (SQLSTATE 23514)');
  assertEquals(t.source.deadLetters.map((d) => d.attributes.masq_reason), [rej.reason]);
  assertEquals(t.lines.filter((l) => l.msg === "row refused by the database; rejecting it").length, 1);
  assertEquals(t.source.remaining, 0);
});

Deno.test("runPipeline() stores a rejection the database refuses without its body, and stops on one refused even so", async () => {
  const nul = JSON.stringify({ note: "\u0000" });
  const t = setup([good(1), nul], {
    sink: {
      refuse: (r) =>
        r.kind === "rejection" && r.bodyRedacted?.includes("\\u0000")
          ? pgError("invalid byte", "22P05")
          : undefined,
    },
  });
  const summary = await t.drain();
  assertEquals([summary.inserted, summary.rejected], [1, 1]);
  const [rej] = [...t.sink.rejections.values()];
  assertEquals(rej.bodyRedacted, null);
  assertEquals(rej.reason, "user_id is missing; database refused the row: invalid byte (SQLSTATE 22P05)");
  assertEquals(t.source.remaining, 0);

  const worse = setup([good(1), nul], {
    sink: { refuse: (r) => r.kind === "rejection" ? pgError("invalid byte", "22P05") : undefined },
    pipeline: { concurrency: 1 },
  });
  await assertRejects(() => worse.drain(), Error, "batch failed");
  assertEquals(worse.sink.rejections.size, 0);
  // The batch is not deleted: its good row, already committed, is a duplicate when it comes back.
  assertEquals(worse.sink.logins.size, 1);
  assertEquals(worse.source.remaining, 2, "the message whose rejection cannot be stored stays in the queue");
});

Deno.test("runPipeline() retries a dead-letter send that fails transiently, then records and deletes the message", async () => {
  const t = setup(["not json", good(1)], {
    source: {
      deadLetterFault: (_l, attempt) => attempt <= 3 ? sqsError("ServiceUnavailable", 503) : undefined,
    },
  });
  const summary = await t.drain();
  assertEquals([summary.inserted, summary.rejected], [1, 1]);
  assertEquals(t.source.deadLetters.length, 1);
  assertEquals(t.events.filter((e) => e.type === "retry" && e.what === "dead-letter send").length, 3);
  assertEquals(t.source.remaining, 0);
});

Deno.test("runPipeline() stops the run on a dead-letter send refused for good, leaving the message in the queue", async () => {
  const t = setup(["not json", ...goods(30)], {
    source: { deadLetterFault: () => sqsError("AccessDenied", 403) },
    pipeline: { concurrency: 1 },
  });
  await assertRejects(() => t.drain(), Error, "AccessDenied");
  assertEquals(t.sink.rejections.size, 0, "not recorded");
  assert(!t.source.deletes.some((d) => d.ids.includes("m000000")), "not deleted");
});

Deno.test("runPipeline() records and deletes a rejection too large for the dead-letter queue even without its body, saying so", async () => {
  // With a vault key the letter carries the encrypted original, which alone is more than the queue takes.
  const big = JSON.stringify({ note: "x".repeat(262_100) });
  const vault = await createVaultCipher(new Uint8Array(32).fill(7), "v1");
  const t = setup([big, good(1)], { pipeline: { vault } });
  const summary = await t.drain();
  assertEquals([summary.inserted, summary.rejected], [1, 1]);
  const [rej] = [...t.sink.rejections.values()];
  assertEquals(rej.reason, "user_id is missing; not dead-lettered: too large for the dead-letter queue");
  assertEquals(t.source.deadLetters.length, 0);
  assertEquals(t.source.remaining, 0, "deleted: it cannot loop");
  assertEquals(t.lines.filter((l) => l.level === "warn" && /cannot be dead-lettered/.test(l.msg)).length, 1);
});

Deno.test("runPipeline() ends a drain once nothing is visible or in flight, leaving delayed messages and saying how many", async () => {
  const t = setup(goods(25));
  const counts = t.source.counts.bind(t.source);
  // A producer's DelaySeconds (up to 15 minutes) keeps three messages out of sight the whole run.
  t.source.counts = async () => ({ ...await counts(), delayed: 3 });
  const summary = await t.clock.run(t.start(), 120_000);
  assertEquals([summary.received, summary.inserted], [25, 25]);
  const said = t.lines.filter((l) => /delayed messages stay in the queue/.test(l.msg));
  assertEquals(said.map((l) => l.fields), [{ delayed: 3 }]);
});

Deno.test("runPipeline() still waits for messages in flight (a crashed run's) before a drain ends", async () => {
  const t = setup(goods(5), { source: { visibilityTimeout: 60 } });
  // A run that crashed received these five and never deleted them: back after 60 s.
  await t.clock.run(t.source.receive());
  const summary = await t.drain();
  assertEquals(summary.inserted, 5);
  assert(t.clock.now() >= 60_000, `ended at ${t.clock.now()} ms, before the messages came back`);
  assertEquals(t.source.remaining, 0);
});

Deno.test("runPipeline() stores a rejection refused with and without its body under an ASCII reason naming only the SQLSTATE", async () => {
  // A database that stores no long reason (as one whose encoding cannot hold the reason's characters).
  const t = setup([good(1), "not json", JSON.stringify({ note: "é" })], {
    sink: {
      refuse: (r) =>
        r.kind === "rejection" && (r.reason.length > 60 || /[^\x20-\x7e]/.test(r.bodyRedacted ?? ""))
          ? pgError("value too long for type character varying(60)", "22001")
          : undefined,
    },
    pipeline: { concurrency: 1 },
    transformReason: "user_id is missing: a reason longer than sixty characters, with \u2026 in it",
  });
  const summary = await t.drain();
  assertEquals([summary.inserted, summary.rejected, summary.received], [1, 2, 3]);
  const reasons = [...t.sink.rejections.values()].map((r) => [r.reason, r.bodyRedacted]);
  assertEquals(reasons, [
    ["rejected; the database refused its record (SQLSTATE 22001)", null],
    ["rejected; the database refused its record (SQLSTATE 22001)", null],
  ]);
  assertEquals(t.source.remaining, 0, "nothing loops");
});

Deno.test("runPipeline() names the source queue in dead letters without its credentials", async () => {
  const t = setup(["not json"]);
  (t.source as { queueUrl: string }).queueUrl = "https://user:s3cr3t@sqs.local/000000000000/login-queue";
  await t.drain();
  assertEquals(t.source.deadLetters.length, 1);
  assert(!t.source.deadLetters[0].attributes.masq_source_queue.includes("s3cr3t"));
  assertMatch(t.source.deadLetters[0].attributes.masq_source_queue, /sqs\.local\/000000000000\/login-queue$/);
});

Deno.test("runPipeline() does not dead-letter again a redelivered rejection that is already recorded", async () => {
  const t = setup(["not json"], { source: { visibilityTimeout: 30 } });
  await writeOne(t.sink, [{
    kind: "rejection",
    messageId: "m000000",
    reason: "body is not valid JSON",
    bodyRedacted: null,
  }]);
  // Its first delivery ended without a delete (a crash after the commit): this is the second.
  assertEquals((await t.clock.run(t.source.receive())).length, 1);
  await t.clock.advance(31_000);
  const summary = await t.drain();
  assertEquals([summary.rejected, summary.duplicates], [0, 1]);
  assertEquals(t.source.deadLetters.length, 0);
  assertEquals(t.source.remaining, 0);
});

Deno.test("runPipeline() does not dead-letter again a replay whose rejection is already recorded, though it arrives for the first time", async () => {
  const t = setup(["not json"]);
  const replay = "redrive:0b9c6f1e-1d2a-4c7e-9a51-2f8e5b7c3d10";
  // A second copy of one dead letter (a redrive crashed between its send and its delete): a new SQS
  // message, received once, keyed like the first copy, whose rejection is recorded.
  await writeOne(t.sink, [{
    kind: "rejection",
    messageId: replay,
    reason: "body is not valid JSON",
    bodyRedacted: null,
  }]);
  const receive = t.source.receive.bind(t.source);
  t.source.receive = async (signal) => (await receive(signal)).map((m) => ({ ...m, id: replay }));
  const summary = await t.drain();
  assertEquals([summary.rejected, summary.duplicates], [0, 1]);
  assertEquals(t.source.deadLetters.length, 0);
  assertEquals(t.source.remaining, 0);
});

Deno.test("runPipeline() dead-letters a first delivery's rejection without looking it up in the ledger", async () => {
  const t = setup(["not json", ...goods(9)]);
  const lookups: string[][] = [];
  const written = t.sink.written;
  t.sink.written = (ids) => (lookups.push([...ids]), written(ids));
  const summary = await t.drain();
  assertEquals([summary.rejected, summary.inserted], [1, 9]);
  assertEquals(t.source.deadLetters.length, 1);
  assertEquals(lookups, []);
});

Deno.test("runPipeline() on stop finishes, commits and deletes what is in flight, then receives nothing more", async () => {
  const stop = new AbortController();
  const t = setup(goods(5000), {
    sink: { statementMs: 20_000 },
    pipeline: { stop: stop.signal, follow: true },
  });
  const running = t.start();
  await t.clock.advance(1_000);
  const receivedBefore = t.source.receives.length;
  stop.abort();
  const summary = await t.clock.run(running);
  assert(summary.received > 0 && summary.received < 5000, String(summary.received));
  assertEquals(summary.inserted, summary.received);
  assertEquals(t.source.remaining, 5000 - summary.received, "everything received was deleted");
  assertEquals(t.source.receives.length, receivedBefore, "no receive after the stop");
});

Deno.test("runPipeline() on stop lets every receive under way finish (a long poll within its wait), and processes what it brings", async () => {
  const stop = new AbortController();
  // An empty queue: the receives are long polls of 20 s. One message arrives during the wait, after the stop.
  const t = setup([], {
    source: { waitMs: 20_000 },
    pipeline: { stop: stop.signal, follow: true, concurrency: 3 },
  });
  const running = t.start();
  await t.clock.advance(500);
  stop.abort();
  await t.clock.advance(1_000);
  t.source.add(JSON.stringify({ user_id: "late" }));
  const summary = await t.clock.run(running);
  // Ended when the long polls did, plus the write's linger: they were let finish, not cancelled (a server
  // would hand messages to the dead connection).
  assert(t.clock.now() >= 20_000 && t.clock.now() < 20_100, `ended at ${t.clock.now()} ms`);
  assertEquals(summary.received, 1);
  assertEquals(t.source.remaining, 0, "nothing received is left undeleted");
});

Deno.test("runPipeline() emits the events metrics subscribe to", async () => {
  const t = setup([...goods(20), "not json"]);
  await t.drain();
  const types = new Set(t.events.map((e) => e.type));
  for (
    const type of [
      "received",
      "written",
      "deleted",
      "dead_lettered",
      "in_flight",
      "queue_counts",
      "database_ok",
      "queue_ok",
    ]
  ) {
    assert(types.has(type as PipelineEvent["type"]), `no ${type} event`);
  }
  const received = t.events.reduce((n, e) => n + (e.type === "received" ? e.messages : 0), 0);
  assertEquals(received, 21);
});

Deno.test("runPipeline() on stop during a database outage ends at once: no more retries, nothing deleted, the run not failed", async () => {
  const stop = new AbortController();
  const t = setup(goods(200), {
    sink: { fault: () => pgError("the database system is shutting down", "57P03") },
    pipeline: { stop: stop.signal, follow: true, maxBackoffMs: 60_000 },
  });
  const running = t.start();
  await t.clock.advance(30_000);
  const at = t.clock.now();
  stop.abort();
  const summary = await t.clock.run(running);
  assert(summary.received > 0, "batches were in flight");
  assertEquals(summary.inserted, 0);
  assertEquals(t.source.remaining, 200, "nothing deleted: every message stays in the queue");
  assert(t.clock.now() - at < 5_000, `ended ${t.clock.now() - at} fake ms after the stop`);
  assert(t.lines.some((l) => l.msg.startsWith("stopping: a failed write is not retried")), "said so");
});

for (const fifo of [true, false]) {
  Deno.test(
    `runPipeline() on a ${fifo ? "FIFO" : "standard"} queue dead-letters a batch's rejections ${
      fifo
        ? "one after another, in message order, a retried one before the next"
        : "together (a retried one may end after the next)"
    }`,
    async () => {
      // One batch of ten, all rejected; the first letter's first send fails (an outage) and is retried.
      const t = setup(Array.from({ length: 10 }, (_, i) => `not json ${i}`), {
        source: {
          fifo,
          deadLetterFault: (l, attempt) =>
            l.messageId.endsWith("000000") && attempt === 1 ? sqsError("ServiceUnavailable", 503) : undefined,
        },
        pipeline: { concurrency: 1 },
      });
      const summary = await t.drain();
      assertEquals(summary.rejected, 10);
      const order = t.source.deadLetters.map((l) => l.messageId);
      const inOrder = order.every((id, i) => i === 0 || id > order[i - 1]);
      assertEquals(inOrder, fifo, `letters sent in the order ${order.join(",")}`);
    },
  );
}
