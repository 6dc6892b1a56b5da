import fc from "fast-check";
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { deadLetterAad, deadLetterFor, xmlSafe } from "../../lib/transform/letter.ts";
import { createMasker } from "../../lib/transform/mask.ts";
import { rejectionFor, toRecordSync } from "../../lib/transform/record.ts";
import { redactBody } from "../../lib/transform/redact.ts";
import { createVaultCipher, fromBase64 } from "../../lib/vault.ts";
import type { Message } from "../../lib/types.ts";

const QUEUE = "http://127.0.0.1:4566/000000000000/login-queue";
const BODY = '{"user_id":"u","IP":"199.172.111.135","device":[{"id":"593-47-5928"}]}';
const message: Message = {
  id: "m-1",
  receiptHandle: "r",
  body: BODY,
  sentTimestamp: 1700000000000,
  receiveCount: 1,
};
const mask = createMasker("0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0");

Deno.test("deadLetterFor() sends the redacted body and attributes, never the raw body, without a vault", async () => {
  const redacted = redactBody(JSON.parse(BODY), mask, message.sentTimestamp);
  const letter = await deadLetterFor(message, "user_id is missing", redacted, QUEUE, undefined);
  assertEquals(letter.body, redacted);
  assertEquals(letter.attributes, {
    masq_reason: "user_id is missing",
    masq_message_id: "m-1",
    masq_source_queue: QUEUE,
    masq_sent_timestamp: "1700000000000",
  });
  const all = JSON.stringify(letter);
  assert(!all.includes("199.172.111.135") && !all.includes("593-47-5928"), all);
});

Deno.test("deadLetterFor() says only that a body that was not JSON was not kept", async () => {
  const letter = await deadLetterFor(message, "body is not valid JSON", null, QUEUE, undefined);
  assertEquals(letter.body, '{"masq":"body was not JSON; not kept"}');
});

Deno.test("deadLetterFor() keeps the original only encrypted, bound to the message id, with a vault", async () => {
  const vault = await createVaultCipher(crypto.getRandomValues(new Uint8Array(32)), "v7");
  const letter = await deadLetterFor(
    message,
    "r",
    redactBody(JSON.parse(BODY), mask, message.sentTimestamp),
    QUEUE,
    vault,
  );
  assertEquals(letter.attributes.masq_key_id, "v7");
  assert(!letter.attributes.masq_original.includes("199.172"));
  const ct = fromBase64(letter.attributes.masq_original);
  assertEquals(await vault.decrypt(ct, deadLetterAad("m-1")), BODY);
  await assertRejects(() => vault.decrypt(ct, deadLetterAad("m-2")));
});

Deno.test("deadLetterFor() writes every letter's body in printable ASCII, which SQS always carries", async () => {
  // Bodies with what SQS refuses (U+FFFE, U+FFFF, lone surrogates, C0 controls as escapes) and what some
  // emulators refuse (characters beyond U+FFFF), raw and as JSON escapes.
  const body = fc.oneof(
    fc.string({ unit: "binary" }),
    fc.jsonValue({ stringUnit: "binary" }).map((v) => JSON.stringify(v)),
    fc.dictionary(fc.string({ unit: "binary" }), fc.string({ unit: "binary" })).map((o) => JSON.stringify(o)),
  );
  await fc.assert(
    fc.asyncProperty(body, async (text) => {
      const m = { ...message, body: text };
      const record = toRecordSync(m, mask);
      const rejection = record.kind === "rejection"
        ? record
        : rejectionFor(m, "refused by the database", mask);
      const letter = await deadLetterFor(m, rejection.reason, rejection.bodyRedacted, QUEUE, undefined);
      return /^[\x20-\x7e]*$/.test(letter.body);
    }),
    { numRuns: 500 },
  );
});

Deno.test("xmlSafe() replaces characters SQS attributes cannot carry", () => {
  assertEquals(xmlSafe("a\u0000b\u0008c\td"), "a\ufffdb\ufffdc\td");
  assertEquals(xmlSafe("\ud800x"), "\ufffdx");
});
