import { assert, assertEquals } from "../support/assert.ts";
import { ablate, fixedTransform, parseAblations, withoutWrites } from "../../bench/ablation.ts";
import type { Message, Sink, SinkRecord, Transform } from "../../lib/types.ts";
import { writeOne } from "../support/fakes.ts";

const message = (id: string): Message => ({
  id,
  receiptHandle: `r-${id}`,
  body: "{not json",
  sentTimestamp: 0,
  receiveCount: 1,
});

/** A sink that fails any write: the stand-in must never reach it. */
function refusingSink(): Sink & { closed(): boolean } {
  const refuse = () => Promise.reject(new Error("the real sink was written to"));
  let closed = false;
  return {
    closed: () => closed,
    written: () => Promise.resolve(new Set<string>()),
    writeBatches: refuse,
    classify: () => "fatal",
    close() {
      closed = true;
      return Promise.resolve();
    },
  };
}

const login = fixedTransform.record(message("m1")) as SinkRecord;
const rejection: SinkRecord = { kind: "rejection", messageId: "m2", reason: "bad", bodyRedacted: null };

Deno.test("withoutWrites() answers each batch with its own counts and never writes", async () => {
  const real = refusingSink();
  const sink = withoutWrites(real);
  assertEquals(await sink.writeBatches([[login, rejection], [], [rejection]]), [
    { inserted: 1, rejected: 1, duplicates: 0 },
    { inserted: 0, rejected: 0, duplicates: 0 },
    { inserted: 0, rejected: 1, duplicates: 0 },
  ]);
  assertEquals(await writeOne(sink, [login]), { inserted: 1, rejected: 0, duplicates: 0 });
  await sink.close();
  assert(real.closed(), "the rest of the sink stays the real one");
});

Deno.test("fixedTransform() makes every message the same valid login under its own id, parsing nothing", async () => {
  const a = await fixedTransform.record(message("a"));
  const b = await fixedTransform.record(message("b"));
  assertEquals({ ...a, messageId: "b" }, b);
  assertEquals(a.kind, "login");
  assertEquals(a.messageId, "a");
  assertEquals((await fixedTransform.rejection(message("c"), "why")).messageId, "c");
});

Deno.test("ablate() replaces only the parts it is given", () => {
  const sink = refusingSink();
  const transform: Transform = { record: () => login, rejection: () => rejection as never };
  const none = ablate({ sink, transform }, []);
  assert(none.sink === sink);
  assert(none.transform === transform);
  const both = ablate({ sink, transform }, ["transform", "sink"]);
  assert(both.sink !== sink && both.sink.writeBatches !== sink.writeBatches);
  assert(both.transform === fixedTransform);
  assert(ablate({ sink, transform }, ["sink"]).transform === transform);
});

Deno.test("parseAblations() takes a list of known parts, each once, in order", () => {
  assertEquals(parseAblations("sink"), ["sink"]);
  assertEquals(parseAblations("transform, sink"), ["transform", "sink"]);
  assertEquals(parseAblations("sink,vault"), '"sink,vault": expected a list of sink, transform');
  assertEquals(parseAblations(""), '"": expected a list of sink, transform');
  assertEquals(parseAblations("sink,sink"), '"sink,sink" names a part twice');
});
