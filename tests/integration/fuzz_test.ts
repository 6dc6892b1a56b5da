/**
 * Hostile input, generated (tests/support/fuzz.ts), ~1,000 bodies through the real CLI between an embedded
 * SQS and PostgreSQL: every body must end up as parseBody() says, a row or a rejection (the 10,000-body
 * fuzz of parseBody() itself is in tests/transform/parse_test.ts).
 */
import fc from "fast-check";
import { SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { assert, assertEquals } from "../support/assert.ts";
import { parseBody } from "../../lib/transform/parse.ts";
import { asciiJson as asciiJsonText } from "../../lib/transform/redact.ts";
import { createMasker } from "../../lib/transform/mask.ts";
import { toRecord, utcDate } from "../../lib/transform/record.ts";
import type { SinkRecord } from "../../lib/sink/postgres.ts";
import { deadLetterFor } from "../../lib/transform/letter.ts";
import { BODY_LEFT_OUT, letterBytes, SQS_LARGEST_MESSAGE_BYTES } from "../../lib/source/sqs.ts";
import { synthetic } from "../../bench/synthetic.ts";
import { queueDepth, receiveAll, sqsClient } from "../support/sqs.ts";
import { runMasqCli, TEST_KEY } from "../support/processes.ts";
import { startDatabase } from "../support/databases.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";
import {
  check,
  deepBody,
  KIB256,
  knownKeysObject,
  nestedObject,
  rawBody,
  sizedBody,
  SQL,
  utf8Length,
  validLogin,
} from "../support/fuzz.ts";

// ---------------------------------------------------------------------------------------------------
// Through the real CLI
// ---------------------------------------------------------------------------------------------------

/** JSON text with every non-ASCII UTF-16 unit written as \uXXXX: what any SQS accepts. */
function asciiJson(value: unknown): string {
  return asciiJsonText(JSON.stringify(value));
}

// The characters SQS allows in a body (#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF);
// fauxqs checks UTF-16 units, so it also refuses astral characters that real SQS takes.
const SQS_REFUSES = /[^\t\n\r\x20-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/u;
// deno-lint-ignore no-control-regex
const FAUXQS_REFUSES = /[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD]/;

/** The pipeline's bodies: valid, hand-picked hostile, and generated hostile ones. */
function pipelineBodies(): string[] {
  const bodies: string[] = [];
  for (let i = 0; i < 250; i++) bodies.push(synthetic(i));
  for (const sql of SQL) {
    bodies.push(
      JSON.stringify({ user_id: sql, locale: sql.slice(0, 32), device_type: sql.slice(0, 32), ip: sql }),
    );
    bodies.push(
      JSON.stringify({ user_id: "u", device: { type: sql.slice(0, 32), id: sql }, app_version: sql }),
    );
  }
  bodies.push(
    asciiJson({ user_id: "nul\u0000inside" }),
    asciiJson({ user_id: "u", locale: "R\u0000U" }),
    asciiJson({ user_id: "nul-in-ip", ip: "10.0.0.1\u0000", device_id: "\u0000" }),
    asciiJson({ user_id: "lone\ud800" }),
    asciiJson({ user_id: "u", device_type: "\udc00ios" }),
    asciiJson({ user_id: "u", device_id: "\udbff" }),
    asciiJson({ user_id: "\u{1F600}".repeat(128), locale: "\u{1F600}".repeat(32) }),
    asciiJson({ user_id: "\u{1F600}".repeat(129) }),
    asciiJson({ user_id: "u", device_type: "\u{1F600}".repeat(33) }),
    JSON.stringify({ user_id: "é中\ue000\ufffd", locale: "ü" }),
    JSON.stringify({ user_id: "tab\tinside" }).replace("\\t", "\t"), // a raw tab inside a JSON string
    sizedBody("padding", "x", KIB256),
    sizedBody("user_id", "x", KIB256),
    sizedBody("ip", "é", KIB256),
    sizedBody("(raw)", "not json ", KIB256),
    `{"user_id":"u","x":${'{"a":'.repeat(31)}1${"}".repeat(31)}}`,
    `{"user_id":"u","x":${'{"a":'.repeat(32)}1${"}".repeat(32)}}`,
    `{"user_id":"u","ip":"10.0.0.9","x":${"[".repeat(50_000)}${"]".repeat(50_000)}}`,
    `{"ip":"10.0.0.9","x":${"[".repeat(500)}${"]".repeat(500)}}`,
    `{"ip":"10.0.0.9","x":${'{"a":'.repeat(500)}1${"}".repeat(500)}}`,
    "not json at all",
    '{"foo":"oops_wrong_ip","bar":"123"}',
    "[]",
    "null",
    '"just a string"',
    "42",
    '{"user_id":"u","device":{"type":"ios"},"device_type":"android"}',
    '{"user_id":"u","__proto__":{"ip":"1.2.3.4"},"constructor":{"prototype":1}}',
    '{"user_id":"ts","timestamp":1700000000}',
    '{"user_id":"ts-string","timestamp":"86399"}',
    '{"user_id":"ts-bad","timestamp":"soon"}',
    '{"user_id":"u","app_version":"2146.999.999"}',
    '{"user_id":"u","app_version":"2147"}',
    '{"user_id":"u","app_version":-1}',
    '{"user_id":"u","app_version":1.5}',
  );
  const generated = fc.sample(
    fc.oneof(
      { weight: 5, arbitrary: knownKeysObject.map((o) => ({ o })) },
      { weight: 2, arbitrary: nestedObject.map((o) => ({ o })) },
      { weight: 3, arbitrary: validLogin.map((o) => ({ o })) },
      { weight: 1, arbitrary: fc.jsonValue({ stringUnit: "binary" }).map((o) => ({ o })) },
      { weight: 2, arbitrary: rawBody.map((raw) => ({ raw })) },
      { weight: 1, arbitrary: deepBody.map((raw) => ({ raw })) },
    ),
    { numRuns: 2_000, seed: 0x6d617371 },
  );
  // About 1,000 bodies SQS takes, and a few it refuses (to check that it does).
  let refusable = 0;
  const seedable = () => bodies.filter((b) => !FAUXQS_REFUSES.test(b)).length;
  for (const [i, g] of generated.entries()) {
    if (seedable() >= 1_000) break;
    const body = "raw" in g ? g.raw : i % 3 === 0 ? JSON.stringify(g.o) : asciiJson(g.o); // raw Unicode at times
    if (body.length === 0) continue; // SQS requires a non-empty body
    if (FAUXQS_REFUSES.test(body) && ++refusable > 25) continue;
    bodies.push(body);
  }
  return bodies;
}

/** Sends each body with SendMessageBatch; returns the accepted bodies by message id and the refused ones. */
async function seed(client: SQSClient, queueUrl: string, bodies: string[]) {
  const accepted = new Map<string, string>();
  const refused: string[] = [];
  const batches: string[][] = [];
  let batchBytes = 0;
  for (const b of bodies) {
    const last = batches.at(-1);
    const bytes = utf8Length(b);
    if (!last || last.length === 10 || batchBytes + bytes > 200_000) {
      batches.push([b]);
      batchBytes = bytes;
    } else {
      last.push(b);
      batchBytes += bytes;
    }
  }
  for (const batch of batches) {
    const res = await client.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: batch.map((b, i) => ({ Id: `e${i}`, MessageBody: b })),
      }),
    );
    for (const ok of res.Successful ?? []) accepted.set(ok.MessageId!, batch[Number(ok.Id!.slice(1))]);
    for (const f of res.Failed ?? []) {
      assertEquals(f.Code, "InvalidMessageContents", f.Message);
      refused.push(batch[Number(f.Id!.slice(1))]);
    }
  }
  return { accepted, refused };
}

function countBy<T>(items: T[], key: (t: T) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (const i of items) m.set(key(i), (m.get(key(i)) ?? 0) + 1);
  return m;
}

Deno.test("masq run stores every hostile body as parseBody() decides: a literal row or a rejection", async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const client = sqsClient(sqs);
  try {
    const queueUrl = sqs.createQueue("fuzz-queue", { VisibilityTimeout: "60" });
    const bodies = pipelineBodies();
    const dayBefore = utcDate(Date.now());
    const { accepted, refused } = await seed(client, queueUrl, bodies);
    const dayAfter = utcDate(Date.now());

    // SQS refuses exactly the bodies with characters it cannot carry; those were checked above.
    for (const b of bodies) {
      assertEquals(FAUXQS_REFUSES.test(b), refused.includes(b), JSON.stringify(b).slice(0, 80));
      if (SQS_REFUSES.test(b)) assert(refused.includes(b));
      check(b);
    }
    const seeded = accepted.size;
    assertEquals(seeded, 1_000);
    assert(refused.length > 0, "some bodies were refused");

    // What each message must become.
    const masker = await createMasker(TEST_KEY);
    const expected = new Map<string, SinkRecord>();
    for (const [id, body] of accepted) {
      expected.set(
        id,
        await toRecord({ id, receiptHandle: "", body, sentTimestamp: Date.now(), receiveCount: 1 }, masker),
      );
    }
    const logins = [...expected.values()].filter((r) => r.kind === "login");
    const rejections = [...expected.values()].filter((r) => r.kind === "rejection");
    assert(
      logins.length >= 200 && rejections.length >= 200,
      `${logins.length} logins, ${rejections.length} rejections`,
    );

    const res = await runMasqCli(["run", "--concurrency", "4"], { queueUrl, databaseUrl: db.url });
    assertEquals(res.code, 0, res.stderr.slice(-2000));
    const s = res.summary;
    assert(s !== undefined, `no JSON summary on stdout: ${res.stdout.slice(-500)}`);
    assertEquals(s.received, seeded);
    assertEquals(s.inserted + s.rejected, seeded);
    assertEquals(s.duplicates, 0);
    assertEquals(s.inserted, logins.length);
    assertEquals(s.rejected, rejections.length);

    const n = async (sql: string, params?: unknown[]) => (await db.query<{ n: number }>(sql, params))[0].n;
    assertEquals(await n("SELECT count(*)::int AS n FROM user_logins"), s.inserted);
    assertEquals(await n("SELECT count(*)::int AS n FROM user_logins_rejected"), s.rejected);

    // Each message id: the outcome parseBody() gave it.
    const ledger = await db.query<{ message_id: string; outcome: string }>(
      "SELECT message_id, outcome FROM user_logins_ledger",
    );
    assertEquals(ledger.length, seeded);
    for (const row of ledger) {
      const want = expected.get(row.message_id);
      assert(want !== undefined, `unknown message id ${row.message_id}`);
      assertEquals(
        row.outcome,
        want.kind === "login" ? "inserted" : "rejected",
        accepted.get(row.message_id)!.slice(0, 200),
      );
    }

    // Each rejection: its reason and its redacted body.
    const rejectedRows = await db.query<{ message_id: string; reason: string; body_redacted: string | null }>(
      "SELECT message_id, reason, body_redacted FROM user_logins_rejected",
    );
    // A dead letter too large for the DLQ (which masq created at SQS's largest size) goes without its
    // redacted body.
    const letters = new Map<string, string>();
    for (const row of rejectedRows) {
      const want = expected.get(row.message_id)!;
      assert(want.kind === "rejection");
      const message = {
        id: row.message_id,
        receiptHandle: "",
        body: accepted.get(row.message_id)!,
        sentTimestamp: Date.now(),
        receiveCount: 1,
      };
      const built = await deadLetterFor(message, want.reason, want.bodyRedacted, queueUrl, undefined);
      const letter = built;
      const tooLarge = letterBytes(letter) > SQS_LARGEST_MESSAGE_BYTES;
      letters.set(row.message_id, tooLarge ? BODY_LEFT_OUT : letter.body);
      assertEquals(row.reason, want.reason);
      assertEquals(row.body_redacted, want.bodyRedacted);
    }

    // The logins: exactly the expected rows, values stored literally.
    const sameDay = dayBefore === dayAfter;
    const rowKey = (r: unknown[]) => JSON.stringify(sameDay ? r : r.slice(0, 6));
    const wantRows = countBy(logins, (l) => {
      if (l.kind !== "login") throw new Error("unreachable");
      const f = parseBody(accepted.get(l.messageId)!);
      const date = f.ok && f.fields.timestamp === null ? dayBefore : l.createDate;
      return rowKey([l.userId, l.deviceType, l.maskedIp, l.maskedDeviceId, l.locale, l.appVersion, date]);
    });
    const rows = await db.query<Record<string, unknown>>(
      "SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version, create_date FROM user_logins",
    );
    const gotRows = countBy(
      rows,
      (r) =>
        rowKey([
          r.user_id,
          r.device_type,
          r.masked_ip,
          r.masked_device_id,
          r.locale,
          r.app_version,
          r.create_date,
        ]),
    );
    assertEquals(gotRows, wantRows);

    // SQL-looking values came back as the very same text.
    for (const sql of SQL) {
      const want = logins.filter((l) =>
        l.kind === "login" && (l.userId === sql || l.locale === sql || l.deviceType === sql)
      );
      const got = await n(
        "SELECT count(*)::int AS n FROM user_logins WHERE user_id = $1 OR locale = $1 OR device_type = $1",
        [sql],
      );
      assertEquals(got, want.length, sql);
    }
    assert(await n("SELECT count(*)::int AS n FROM user_logins WHERE user_id = $1", [SQL[0]]) >= 1);

    // Nothing left in the queue; every other rejection in the dead-letter queue, as its redacted body.
    assertEquals(await queueDepth(client, queueUrl), { visible: 0, inFlight: 0 });
    const dlq = await receiveAll(client, `${queueUrl}-dlq`);
    assertEquals(dlq.length, letters.size);
    for (const m of dlq) {
      const id = m.MessageAttributes?.masq_message_id?.StringValue ?? "";
      const want = expected.get(id);
      assert(want?.kind === "rejection", `dead-letter message for ${id}`);
      assertEquals(m.Body, letters.get(id));
      assertEquals(m.MessageAttributes?.masq_reason?.StringValue, want.reason.slice(0, 1024));
    }
  } finally {
    client.destroy();
    await db.stop();
    await sqs.stop();
  }
});
