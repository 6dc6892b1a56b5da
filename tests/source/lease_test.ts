import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { heartbeatMs, lease } from "../../lib/source/lease.ts";
import { silentLogger } from "../../lib/log.ts";
import { fakeClock, memorySource, sqsError } from "../support/fakes.ts";

const bodies = (n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ user_id: `u${i}` }));

Deno.test("heartbeatMs() is a third of the visibility timeout, at least 250 ms", () => {
  assertEquals(heartbeatMs(30), 10_000);
  assertEquals(heartbeatMs(0), 250);
});

Deno.test("lease() extends the batch's visibility every third of the timeout until released", async () => {
  const clock = fakeClock();
  const source = memorySource(bodies(3), { clock, visibilityTimeout: 30 });
  const batch = await clock.run(source.receive());
  const held = lease(source, batch, { log: silentLogger, clock });
  await clock.advance(35_000);
  assertEquals(source.extensions.map((e) => e.at), [10_000, 20_000, 30_000]);
  assertEquals(source.extensions[0].ids, batch.map((m) => m.id));
  // Still invisible after 35 s: nobody else can receive it.
  assertEquals(await clock.run(source.counts()), { visible: 0, inFlight: 3, delayed: 0 });
  await held.release();
  await clock.advance(60_000);
  assertEquals(source.extensions.length, 3, "no extension after release");
  assertEquals(await clock.run(source.counts()), { visible: 3, inFlight: 0, delayed: 0 });
});

Deno.test("lease().ack() deletes the messages done and extends only the rest", async () => {
  const clock = fakeClock();
  const source = memorySource(bodies(4), { clock, visibilityTimeout: 30 });
  const batch = await clock.run(source.receive());
  const held = lease(source, batch, { log: silentLogger, clock });
  await clock.run(held.ack(batch.slice(0, 2)));
  assertEquals(source.deletes.map((d) => d.ids), [batch.slice(0, 2).map((m) => m.id)]);
  assertEquals(held.held.map((m) => m.id), batch.slice(2).map((m) => m.id));
  await clock.advance(10_000);
  assertEquals(source.extensions.map((e) => e.ids), [batch.slice(2).map((m) => m.id)]);
  await clock.run(held.ack(batch.slice(2)));
  await clock.advance(30_000);
  assertEquals(source.extensions.length, 1, "nothing left to extend");
  await held.release();
  assertEquals(source.remaining, 0);
});

Deno.test("lease() never runs an extension and a delete at the same time", async () => {
  const clock = fakeClock();
  const source = memorySource(bodies(10), { clock, visibilityTimeout: 1 });
  const batch = await clock.run(source.receive());
  const held = lease(source, batch, { log: silentLogger, clock });
  // Acks at the same fake instants as heartbeats.
  for (let i = 0; i < 10; i++) {
    await clock.advance(heartbeatMs(1));
    await clock.run(held.ack([batch[i]]));
  }
  await held.release();
  assert(source.extensions.length > 0);
  assertEquals(source.deletes.length, 10);
  assertEquals(source.maxOverlap, 1);
});

Deno.test("lease().ack() retries a transient delete failure and throws a fatal one", async () => {
  const clock = fakeClock();
  const source = memorySource(bodies(2), { clock });
  const batch = await clock.run(source.receive());
  const realDelete = source.delete.bind(source);
  let calls = 0;
  source.delete = (ms) => ++calls <= 2 ? Promise.reject(sqsError("ServiceUnavailable", 503)) : realDelete(ms);
  const retries: unknown[] = [];
  const held = lease(source, batch, { log: silentLogger, clock, onRetry: (e) => retries.push(e) });
  await clock.run(held.ack([batch[0]]));
  assertEquals(calls, 3);
  assertEquals(retries.length, 2);
  source.delete = () => Promise.reject(sqsError("AccessDenied", 403));
  await assertRejects(() => clock.run(held.ack([batch[1]])));
  await held.release();
  assertEquals(source.remaining, 1);
});

Deno.test("lease() logs a failed heartbeat and keeps beating", async () => {
  const clock = fakeClock();
  const source = memorySource(bodies(1), { clock, visibilityTimeout: 30 });
  const batch = await clock.run(source.receive());
  const realExtend = source.extendVisibility.bind(source);
  let calls = 0;
  source.extendVisibility = (ms) =>
    ++calls === 1 ? Promise.reject(sqsError("InternalError", 500)) : realExtend(ms);
  const warnings: string[] = [];
  const log = { ...silentLogger, warn: (msg: string) => void warnings.push(msg) };
  const held = lease(source, batch, { log, clock });
  await clock.advance(20_000);
  await held.release();
  assertEquals(calls, 2);
  assertEquals(warnings, ["visibility heartbeat failed"]);
  assertEquals(source.extensions.map((e) => e.at), [20_000]);
});
