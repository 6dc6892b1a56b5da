import { assert, assertEquals } from "../support/assert.ts";
import { createWriter, refusalReason, SUCCESSES_BEFORE_GROWTH } from "../../lib/sink/writer.ts";
import { ConfigError, StoppedError } from "../../lib/errors.ts";
import { silentLogger } from "../../lib/log.ts";
import type { PipelineEvent, SinkRecord } from "../../lib/types.ts";
import { fakeClock, loginRecord, memorySink, pgError } from "../support/fakes.ts";

const login = loginRecord;

const batch = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => login(`${prefix}${i}`));
const checkViolation = () => pgError('new row violates check constraint "no_evil"', "23514");

Deno.test("createWriter() coalesces the batches queued within the linger into one statement, each getting its own result", async () => {
  const clock = fakeClock();
  const sink = memorySink({ clock });
  const writer = createWriter(sink, {
    log: silentLogger,
    maxRows: 100,
    lingerMs: 5,
    maxStatements: 2,
    clock,
  });
  const a = writer.submit(batch("a", 10));
  const b = writer.submit([...batch("b", 9), login("a0")]);
  const c = writer.submit(batch("c", 10));
  const [ra, rb, rc] = await clock.run(Promise.all([a, b, c]));
  assertEquals(sink.commits.length, 1);
  assertEquals(sink.commits[0].rows, 30);
  assertEquals(sink.commits[0].at, 5, "written once the linger ran out");
  assertEquals(ra, { result: { inserted: 10, rejected: 0, duplicates: 0 }, refused: [] });
  assertEquals(rb, { result: { inserted: 9, rejected: 0, duplicates: 1 }, refused: [] });
  assertEquals(rc.result.inserted, 10);
});

Deno.test("createWriter() writes as soon as maxRows are queued, never more than maxRows per statement of several batches", async () => {
  const clock = fakeClock();
  const sink = memorySink({ clock, statementMs: 3 });
  const writer = createWriter(sink, {
    log: silentLogger,
    maxRows: 25,
    lingerMs: 1000,
    maxStatements: 1,
    clock,
  });
  const all = Array.from({ length: 10 }, (_, i) => writer.submit(batch(`s${i}-`, 10)));
  await clock.run(Promise.all(all));
  assertEquals(sink.logins.size, 100);
  assert(sink.commits.every((c) => c.rows <= 25), JSON.stringify(sink.commits.map((c) => c.rows)));
  assertEquals(sink.commits.slice(0, 4).map((c) => c.rows), [20, 20, 20, 20]);
  assert(sink.commits[0].at < 1000, "the first statement did not wait for the linger");
  assertEquals(sink.maxConcurrent, 1);
});

Deno.test("createWriter() with no linger writes whenever a connection is free, and runs at most maxStatements at once", async () => {
  const clock = fakeClock();
  const sink = memorySink({ clock, statementMs: 10 });
  const writer = createWriter(sink, {
    log: silentLogger,
    maxRows: 250,
    lingerMs: 0,
    maxStatements: 2,
    clock,
  });
  const all = Array.from({ length: 12 }, (_, i) => writer.submit(batch(`n${i}-`, 10)));
  await clock.run(Promise.all(all));
  assertEquals(sink.maxConcurrent, 2);
  // The first two go at once, alone; the rest queue behind them and go together.
  assertEquals(sink.commits.map((c) => c.rows), [10, 10, 100]);
});

Deno.test("createWriter() isolates a refused row: the other rows and batches of its statement are committed", async () => {
  const clock = fakeClock();
  const sink = memorySink({
    clock,
    refuse: (r) => r.kind === "login" && r.userId === "evil" ? checkViolation() : undefined,
  });
  const writer = createWriter(sink, {
    log: silentLogger,
    maxRows: 100,
    lingerMs: 5,
    maxStatements: 1,
    clock,
  });
  const poisoned = [...batch("p", 5), login("evil1", "evil"), ...batch("q", 4)];
  const [a, b, c] = await clock.run(Promise.all([
    writer.submit(batch("a", 10)),
    writer.submit(poisoned),
    writer.submit(batch("c", 10)),
  ]));
  assertEquals(a.result.inserted, 10);
  assertEquals(c.result.inserted, 10);
  assertEquals(b.result, { inserted: 9, rejected: 0, duplicates: 0 });
  assertEquals(b.refused.map((r) => r.record.messageId), ["evil1"]);
  assertEquals(
    b.refused[0].reason,
    'database refused the row: new row violates check constraint "no_evil" (SQLSTATE 23514)',
  );
  assertEquals(sink.logins.size, 29);
  assert(!sink.logins.has("evil1"));
});

Deno.test("createWriter() retries a transient failure and tells of it", async () => {
  const clock = fakeClock();
  const sink = memorySink({
    clock,
    fault: (n) => n <= 2 ? pgError("terminating connection", "57P01") : undefined,
  });
  const events: PipelineEvent[] = [];
  const writer = createWriter(sink, {
    log: silentLogger,
    maxRows: 100,
    lingerMs: 0,
    maxStatements: 1,
    clock,
    onEvent: (e) => events.push(e),
  });
  const w = await clock.run(writer.submit(batch("t", 3)));
  assertEquals(w.result.inserted, 3);
  assertEquals(events.filter((e) => e.type === "retry").length, 2);
  assertEquals(events.filter((e) => e.type === "written").length, 1);
  assertEquals(events.at(-1), { type: "database_ok" });
});

Deno.test("createWriter() rejects every batch of a statement that fails fatally, commits none of them", async () => {
  const clock = fakeClock();
  const sink = memorySink({ clock, fault: () => pgError('relation "user_logins" does not exist', "42P01") });
  const writer = createWriter(sink, {
    log: silentLogger,
    maxRows: 100,
    lingerMs: 5,
    maxStatements: 1,
    clock,
  });
  const a = writer.submit(batch("a", 2));
  const b = writer.submit(batch("b", 2));
  const settled = await clock.run(Promise.allSettled([a, b]));
  assertEquals(settled.map((s) => s.status), ["rejected", "rejected"]);
  assertEquals(sink.commits.length, 0);
});

Deno.test("createWriter() of an empty batch resolves at once without a statement", async () => {
  const clock = fakeClock();
  const sink = memorySink({ clock });
  const writer = createWriter(sink, {
    log: silentLogger,
    maxRows: 100,
    lingerMs: 5,
    maxStatements: 1,
    clock,
  });
  const records: SinkRecord[] = [];
  assertEquals(await writer.submit(records), {
    result: { inserted: 0, rejected: 0, duplicates: 0 },
    refused: [],
  });
  assertEquals(sink.commits.length, 0);
});

Deno.test("refusalReason() names the database's message and SQLSTATE", () => {
  assertEquals(
    refusalReason(pgError("value too long for type character varying(128)", "22001")),
    "database refused the row: value too long for type character varying(128) (SQLSTATE 22001)",
  );
});

Deno.test("refusalReason() is ASCII, and names the column holding a character the database encoding cannot store", () => {
  const untranslatable = (bytes: string) =>
    pgError(
      `character with byte sequence ${bytes} in encoding "UTF8" has no equivalent in encoding "LATIN1"`,
      "22P05",
    );
  const cjk = { ...login("m1"), userId: "名前", deviceType: "é-phone" };
  assertEquals(
    refusalReason(untranslatable("0xe5 0x90 0x8d"), cjk),
    "database refused the row: user_id holds a character the database encoding (LATIN1) cannot store (SQLSTATE 22P05)",
  );
  const emoji = { ...login("m2"), locale: "en\u{1F600}" };
  assertEquals(
    refusalReason(untranslatable("0xf0 0x9f 0x98 0x80"), emoji),
    "database refused the row: locale holds a character the database encoding (LATIN1) cannot store (SQLSTATE 22P05)",
  );
  const rejection: SinkRecord = {
    kind: "rejection",
    messageId: "m3",
    reason: "user_id is missing",
    bodyRedacted: '{"note":"名"}',
  };
  assertEquals(
    refusalReason(untranslatable("0xe5 0x90 0x8d"), rejection),
    "database refused the row: body_redacted holds a character the database encoding (LATIN1) cannot store (SQLSTATE 22P05)",
  );
  // Not found in the record (or no record): no column named, and still never the character itself.
  assertEquals(
    refusalReason(untranslatable("0xe5 0x90 0x8d")),
    "database refused the row: a value holds a character the database encoding (LATIN1) cannot store (SQLSTATE 22P05)",
  );
  // Any other message, in any language, in ASCII.
  const german = refusalReason(pgError("Wert zu lang für Typ character varying(8) „x…“", "22001"));
  assertEquals(
    german,
    "database refused the row: Wert zu lang f?r Typ character varying(8) ?x?? (SQLSTATE 22001)",
  );
});

const statementTimeout = () => pgError("canceling statement due to statement timeout", "57014");

Deno.test("createWriter() splits a statement that times out again and again, and keeps later statements at the size that passed", async () => {
  const clock = fakeClock();
  // The "server" cancels every statement of more than 30 rows, as statement_timeout would.
  const sink = memorySink({ clock, fault: (_n, rows) => rows > 30 ? statementTimeout() : undefined });
  const writer = createWriter(sink, {
    log: silentLogger,
    maxRows: 100,
    lingerMs: 5,
    maxStatements: 1,
    clock,
  });
  const first = await clock.run(
    Promise.all(Array.from({ length: 10 }, (_, i) => writer.submit(batch(`t${i}-`, 10)))),
  );
  assertEquals(sink.logins.size, 100, "every row written");
  assertEquals(first.map((w) => w.result.inserted), Array(10).fill(10));
  assert(sink.commits.every((c) => c.rows <= 30), JSON.stringify(sink.commits.map((c) => c.rows)));
  // Later statements start at the size that passed (25 rows: 100 halved twice), not at 100 again.
  const before = sink.commits.length;
  await clock.run(Promise.all(Array.from({ length: 10 }, (_, i) => writer.submit(batch(`u${i}-`, 10)))));
  assertEquals(sink.logins.size, 200);
  assertEquals(sink.commits.slice(before).map((c) => c.rows), [20, 20, 20, 20, 20]);
});

Deno.test("createWriter() retries a statement timeout once at the same size before splitting", async () => {
  const clock = fakeClock();
  const sink = memorySink({ clock, fault: (n) => n === 1 ? statementTimeout() : undefined });
  const writer = createWriter(sink, {
    log: silentLogger,
    maxRows: 100,
    lingerMs: 5,
    maxStatements: 1,
    clock,
  });
  await clock.run(Promise.all(Array.from({ length: 5 }, (_, i) => writer.submit(batch(`o${i}-`, 10)))));
  assertEquals(sink.commits.map((c) => c.rows), [50], "one timeout is retried as it is");
});

Deno.test("createWriter() stops with a ConfigError naming statement_timeout when a single row still times out", async () => {
  const clock = fakeClock();
  const sink = memorySink({ clock, fault: () => statementTimeout() });
  const writer = createWriter(sink, {
    log: silentLogger,
    maxRows: 100,
    lingerMs: 5,
    maxStatements: 1,
    clock,
  });
  const err = await clock.run(writer.submit(batch("x", 10)).then(() => undefined, (e) => e));
  assert(err instanceof ConfigError, String(err));
  assertEquals(err.setting, "statement_timeout");
  assert(/one-row write .*ALTER ROLE <login> SET statement_timeout/.test(err.message), err.message);
  assertEquals(sink.logins.size, 0);
});

Deno.test("createWriter() makes no attempt after stop aborts: the batch fails with a StoppedError, and the backoff wait ends at once", async () => {
  const clock = fakeClock();
  const stop = new AbortController();
  let attempts = 0;
  const sink = memorySink({
    clock,
    fault: () => (++attempts, pgError("the database system is starting up", "57P03")),
  });
  const writer = createWriter(sink, {
    log: silentLogger,
    maxRows: 100,
    lingerMs: 0,
    maxStatements: 1,
    maxBackoffMs: 60_000,
    clock,
    stop: stop.signal,
  });
  const outcome = writer.submit(batch("s", 10)).then(() => undefined, (e) => e);
  await clock.advance(30_000);
  const before = attempts;
  assert(before >= 3, `${before} attempts during the outage`);
  const at = clock.now();
  stop.abort();
  const err = await clock.run(outcome);
  assert(err instanceof StoppedError, String(err));
  assertEquals(attempts, before, "no attempt after the stop");
  assertEquals(clock.now(), at, "the backoff wait ended at once");
  assertEquals(sink.logins.size, 0);
});

Deno.test("createWriter() lets statements grow back, doubling, once SUCCESSES_BEFORE_GROWTH of them in a row passed", async () => {
  const clock = fakeClock();
  let slow = true;
  const sink = memorySink({ clock, fault: (_n, rows) => slow && rows > 10 ? statementTimeout() : undefined });
  const writer = createWriter(sink, { log: silentLogger, maxRows: 40, lingerMs: 5, maxStatements: 1, clock });
  await clock.run(Promise.all(Array.from({ length: 4 }, (_, i) => writer.submit(batch(`g${i}-`, 10)))));
  slow = false;
  // At 10 rows a statement now; after SUCCESSES_BEFORE_GROWTH more at that size, 20.
  for (let i = 0; i < SUCCESSES_BEFORE_GROWTH; i++) await clock.run(writer.submit(batch(`h${i}-`, 10)));
  const before = sink.commits.length;
  await clock.run(Promise.all(Array.from({ length: 4 }, (_, i) => writer.submit(batch(`k${i}-`, 10)))));
  assertEquals(sink.commits.slice(before).map((c) => c.rows), [20, 20]);
});

Deno.test("createWriter() splits a timed-out statement no further once stop aborts: a StoppedError, nothing committed", async () => {
  const clock = fakeClock();
  const stop = new AbortController();
  let statements = 0;
  const sink = memorySink({
    clock,
    statementMs: 15,
    fault: () => (++statements === 2 && stop.abort(), statementTimeout()),
  });
  const writer = createWriter(sink, {
    log: silentLogger,
    maxRows: 100,
    lingerMs: 0,
    maxStatements: 1,
    clock,
    stop: stop.signal,
  });
  const err = await clock.run(writer.submit(batch("z", 10)).then(() => undefined, (e) => e));
  assert(err instanceof StoppedError, String(err));
  assertEquals(statements, 2, "the stop came during the second attempt: no halves were tried");
  assertEquals(sink.logins.size, 0);
});
