import { assertEquals } from "../support/assert.ts";
import { createLetterBatcher, type EntryResult } from "../../lib/source/letter_batcher.ts";
import type { DeadLetter } from "../../lib/types.ts";
import { fakeClock } from "../support/fakes.ts";

const letter = (id: string, body = "{}"): DeadLetter => ({ messageId: id, body, attributes: {} });

/** A batcher over a recording sendBatch whose answer per letter the test chooses. */
function setup(answer: (l: DeadLetter) => EntryResult = () => ({ status: "sent" }), fail?: Error) {
  const clock = fakeClock();
  const requests: { at: number; ids: string[] }[] = [];
  const send = createLetterBatcher({
    sendBatch: (letters) => {
      requests.push({ at: clock.now(), ids: letters.map((l) => l.messageId) });
      return fail ? Promise.reject(fail) : Promise.resolve(letters.map(answer));
    },
    bytes: (l) => l.body.length,
    maxBatchBytes: 100,
    lingerMs: 20,
    clock,
  });
  return { clock, requests, send };
}

Deno.test("createLetterBatcher() sends letters given within the linger in one request, the first waiting lingerMs", async () => {
  const { clock, requests, send } = setup();
  const a = send(letter("a"));
  await clock.advance(5);
  const b = send(letter("b"));
  await clock.settle();
  assertEquals(requests, []);
  await clock.advance(15);
  assertEquals(await Promise.all([a, b]), [{ status: "sent" }, { status: "sent" }]);
  assertEquals(requests, [{ at: 20, ids: ["a", "b"] }]);
});

Deno.test("createLetterBatcher() sends ten letters at once and starts a new batch with the eleventh", async () => {
  const { clock, requests, send } = setup();
  const sent = Array.from({ length: 11 }, (_, i) => send(letter(`m${i}`)));
  await clock.settle();
  assertEquals(requests, [{ at: 0, ids: Array.from({ length: 10 }, (_, i) => `m${i}`) }]);
  await clock.advance(20);
  assertEquals(requests[1], { at: 20, ids: ["m10"] });
  assertEquals((await Promise.all(sent)).length, 11);
});

Deno.test("createLetterBatcher() never lets one request carry more than maxBatchBytes", async () => {
  const { clock, requests, send } = setup();
  const sent = [send(letter("a", "x".repeat(60))), send(letter("b", "y".repeat(60)))];
  await clock.settle();
  assertEquals(requests, [{ at: 0, ids: ["a"] }]);
  await clock.advance(20);
  assertEquals(requests[1], { at: 20, ids: ["b"] });
  await Promise.all(sent);
});

Deno.test("createLetterBatcher() gives each letter its own outcome: sent, refused, or its entry's error", async () => {
  const broken = new Error("InternalError");
  const { clock, send } = setup((l) =>
    l.messageId === "r"
      ? { status: "refused", why: "refused by the dead-letter queue (InvalidMessageContents)" }
      : l.messageId === "f"
      ? { status: "failed", error: broken }
      : { status: "sent" }
  );
  const [ok, refused] = [send(letter("s")), send(letter("r"))];
  const failed = send(letter("f")).catch((e) => e);
  await clock.advance(20);
  assertEquals(await ok, { status: "sent" });
  assertEquals(await refused, {
    status: "refused",
    why: "refused by the dead-letter queue (InvalidMessageContents)",
  });
  assertEquals(await failed, broken);
});

Deno.test("createLetterBatcher() rejects every letter of a request that failed as a whole", async () => {
  const { clock, send } = setup(undefined, new Error("connect ECONNREFUSED"));
  const sent = [send(letter("a")), send(letter("b"))].map((p) => p.then(() => undefined, (e: Error) => e));
  await clock.advance(20);
  for (const p of sent) assertEquals((await p)?.message, "connect ECONNREFUSED");
});

Deno.test("createLetterBatcher() fails the send of a letter the batch's answer does not name, so it is retried", async () => {
  const clock = fakeClock();
  const send = createLetterBatcher({
    // An answer that names only the first letter.
    sendBatch: () => Promise.resolve([{ status: "sent" as const }]),
    bytes: (l) => l.body.length,
    maxBatchBytes: 100,
    lingerMs: 20,
    clock,
  });
  const named = send(letter("a"));
  const unnamed = send(letter("b")).then(() => undefined, (e: Error) => e);
  await clock.advance(20);
  assertEquals(await named, { status: "sent" });
  assertEquals((await unnamed)?.message, "the batch send gave no result for this letter");
});
