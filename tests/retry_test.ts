import { assert, assertEquals, assertRejects } from "./support/assert.ts";
import { backoffDelay, retry, sleep } from "../lib/retry.ts";
import type { Fields, Logger } from "../lib/log.ts";

/** A logger that records (level, message, fields). */
function recorder() {
  const entries: Array<{ level: string; msg: string; fields: Fields }> = [];
  const at = (level: string) => (msg: string, fields: Fields = {}) =>
    void entries.push({ level, msg, fields });
  const log: Logger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  return { entries, log };
}

class Outage extends Error {}
class Bug extends Error {}
const isOutage = (err: unknown) => err instanceof Outage;

Deno.test("backoffDelay() doubles the ceiling per attempt and scales it by the random draw", () => {
  assertEquals(backoffDelay(1, 100, 10_000, () => 1), 100);
  assertEquals(backoffDelay(2, 100, 10_000, () => 1), 200);
  assertEquals(backoffDelay(3, 100, 10_000, () => 1), 400);
  assertEquals(backoffDelay(1, 100, 10_000, () => 0.5), 50);
  assertEquals(backoffDelay(4, 100, 10_000, () => 0.25), 200);
});

Deno.test("backoffDelay() is capped and never below 1 ms", () => {
  assertEquals(backoffDelay(20, 100, 10_000, () => 1), 10_000);
  assertEquals(backoffDelay(1_000, 100, 10_000, () => 1), 10_000);
  assertEquals(backoffDelay(1, 100, 10_000, () => 0), 1);
  assertEquals(backoffDelay(50, 100, 10_000, () => 0), 1);
  for (let attempt = 1; attempt <= 60; attempt++) {
    for (const r of [0, 0.001, 0.3, 0.999999]) {
      const d = backoffDelay(attempt, 200, 5_000, () => r);
      assert(
        Number.isInteger(d) && d >= 1 && d <= Math.min(5_000, 200 * 2 ** (attempt - 1)),
        `${attempt} ${r}: ${d}`,
      );
    }
  }
});

Deno.test("backoffDelay() uses Math.random by default and stays within bounds", () => {
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(3, 100, 10_000);
    assert(d >= 1 && d <= 400, String(d));
  }
});

Deno.test("retry() returns the first success without logging", async () => {
  const { entries, log } = recorder();
  assertEquals(await retry(() => Promise.resolve(42), { what: "op", log, retryable: isOutage }), 42);
  assertEquals(entries, []);
});

Deno.test("retry() retries retryable errors, logs each retry and the recovery", async () => {
  const { entries, log } = recorder();
  const attempts: number[] = [];
  const result = await retry(
    (attempt) => {
      attempts.push(attempt);
      return attempt < 4 ? Promise.reject(new Outage(`down ${attempt}`)) : Promise.resolve("up");
    },
    { what: "database write", log, retryable: isOutage, baseMs: 1, capMs: 2, fields: { messages: 10 } },
  );
  assertEquals(result, "up");
  assertEquals(attempts, [1, 2, 3, 4]);
  const warns = entries.filter((e) => e.level === "warn");
  assertEquals(warns.map((e) => e.msg), Array(3).fill("database write failed, retrying"));
  assertEquals(warns.map((e) => [e.fields.attempt, e.fields.error, e.fields.messages]), [
    [1, "down 1", 10],
    [2, "down 2", 10],
    [3, "down 3", 10],
  ]);
  for (const w of warns) assert(typeof w.fields.delay_ms === "number" && w.fields.delay_ms >= 1);
  assertEquals(entries.at(-1), {
    level: "info",
    msg: "database write: recovered",
    fields: { attempts: 4, messages: 10 },
  });
});

Deno.test("retry() rethrows a non-retryable error at once", async () => {
  const { entries, log } = recorder();
  let calls = 0;
  const err = await assertRejects(
    () =>
      retry(() => {
        calls++;
        return Promise.reject(new Bug("bug"));
      }, { what: "op", log, retryable: isOutage, baseMs: 1 }),
    Bug,
  );
  assertEquals(err.message, "bug");
  assertEquals(calls, 1);
  assertEquals(entries, []);
});

Deno.test("retry() stops retrying when a later error is not retryable", async () => {
  const { log } = recorder();
  let calls = 0;
  await assertRejects(
    () =>
      retry(() => {
        calls++;
        return Promise.reject(calls < 3 ? new Outage("down") : new Bug("bug"));
      }, { what: "op", log, retryable: isOutage, baseMs: 1, capMs: 1 }),
    Bug,
  );
  assertEquals(calls, 3);
});

Deno.test("retry() gives up after maxAttempts with the last error", async () => {
  const { entries, log } = recorder();
  let calls = 0;
  const err = await assertRejects(
    () =>
      retry(() => {
        calls++;
        return Promise.reject(new Outage(`down ${calls}`));
      }, { what: "op", log, retryable: isOutage, baseMs: 1, capMs: 1, maxAttempts: 3 }),
    Outage,
  );
  assertEquals(calls, 3);
  assertEquals(err.message, "down 3");
  assertEquals(entries.filter((e) => e.level === "warn").length, 2);
});

Deno.test("retry() does not retry once its signal is aborted", async () => {
  const { log } = recorder();
  const ac = new AbortController();
  ac.abort();
  let calls = 0;
  await assertRejects(
    () =>
      retry(() => {
        calls++;
        return Promise.reject(new Outage("down"));
      }, { what: "op", log, retryable: isOutage, baseMs: 1, signal: ac.signal }),
    Outage,
  );
  assertEquals(calls, 1);
});

/** Settles with `p`, or rejects after `ms` (a guard against a hang, not a timing assertion). */
async function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still waiting after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, guard]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("retry() stops an hour-long backoff wait when its signal aborts during it", async () => {
  const { entries, log } = recorder();
  const ac = new AbortController();
  let calls = 0;
  const run = retry(() => {
    calls++;
    if (calls === 1) setTimeout(() => ac.abort(), 10);
    return Promise.reject(new Outage(`down ${calls}`));
  }, { what: "op", log, retryable: isOutage, baseMs: 3_600_000, capMs: 3_600_000, signal: ac.signal });
  await within(assertRejects(() => run, Outage), 20_000);
  assert(calls <= 2, `called ${calls} times after the abort`);
  assertEquals(entries.filter((e) => e.level === "warn").length, 1, "one wait, cut short");
});

Deno.test("retry() does not wait when its signal aborts while it logs the retry", async () => {
  const ac = new AbortController();
  const { entries, log } = recorder();
  const aborting: Logger = { ...log, warn: (m, f) => (log.warn(m, f), ac.abort()) };
  let calls = 0;
  const run = retry(() => {
    calls++;
    return Promise.reject(new Outage("down"));
  }, { what: "op", log: aborting, retryable: isOutage, baseMs: 3_600_000, signal: ac.signal });
  await within(assertRejects(() => run, Outage), 20_000);
  assert(calls <= 2, `called ${calls} times after the abort`);
  assertEquals(entries.length, 1);
});

Deno.test("sleep() resolves after its delay: after a shorter timer and before a longer one", async () => {
  const order: string[] = [];
  const timer = (ms: number) =>
    new Promise<void>((r) => setTimeout(() => (order.push(`timer ${ms}`), r()), ms));
  await Promise.all([timer(10), sleep(40).then(() => void order.push("sleep 40")), timer(80)]);
  assertEquals(order, ["timer 10", "sleep 40", "timer 80"]);
});

Deno.test("sleep() resolves at once when its signal aborts during the wait or was aborted before", async () => {
  // An hour-long sleep must end within the guard; the test's timer sanitizer fails it if the hour-long
  // timer were left pending.
  const ac = new AbortController();
  const during = sleep(3_600_000, ac.signal);
  ac.abort();
  await within(during, 5_000);
  await within(sleep(3_600_000, ac.signal), 5_000);
});
