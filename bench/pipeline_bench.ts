/**
 * masq's own work per message, on one core, without any I/O: parse + validate (parseBody), mask (two
 * HMACs), build the record (toRecord), and encode it for the batch statement (toParameters), over
 * realistic messages (lib/synthetic.ts, ~1% bad). One iteration is one message, so the "iter/s" column
 * reads as messages per second. Target: >= 100,000 msg/s on one core for the baseline, "toRecord +
 * toParameters".
 *
 *   deno bench bench/pipeline_bench.ts
 */
import { realistic } from "../lib/synthetic.ts";
import { parseBody } from "../lib/transform/parse.ts";
import { createMasker } from "../lib/transform/mask.ts";
import { toRecord } from "../lib/transform/record.ts";
import { type SinkRecord, toParameters } from "../lib/sink/postgres.ts";
import type { Message } from "../lib/source/sqs.ts";

const N = 10_000;
const KEY = Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => b.toString(16).padStart(2, "0"))
  .join("");
const masker = await createMasker(KEY);
const messages: Message[] = Array.from({ length: N }, (_, i) => ({
  id: crypto.randomUUID(),
  receiptHandle: `rh-${i}`,
  body: realistic(i, { seed: 42 }).body,
  sentTimestamp: 1735689600000 + i,
  receiveCount: 1,
}));
const pii = messages.map((m) => parseBody(m.body)).flatMap((p) => (p.ok ? [p.fields] : []));

let i = 0;
const next = () => messages[i++ % N];

Deno.bench("parse + validate (parseBody)", { group: "per message" }, () => {
  parseBody(next().body);
});

Deno.bench("mask ip + device_id (two HMAC-SHA-256)", { group: "per message" }, async () => {
  const f = pii[i++ % pii.length];
  if (f.ip !== null) await masker.ip(f.ip);
  if (f.deviceId !== null) await masker.deviceId(f.deviceId);
});

Deno.bench("toRecord (parse + validate + mask)", { group: "per message" }, async () => {
  await toRecord(next(), masker);
});

// Encoding is per batch of ten (one receive): each iteration adds one message's record, every tenth
// encodes the batch, so the cost per iteration is the cost per message.
let batch: SinkRecord[] = [];
Deno.bench("toRecord + toParameters (parse + validate + mask + encode)", {
  group: "per message",
  baseline: true,
}, async () => {
  batch.push(await toRecord(next(), masker));
  if (batch.length === 10) {
    toParameters([batch]);
    batch = [];
  }
});
