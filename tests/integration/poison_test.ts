/**
 * README "Bad input": "One bad message never holds back or loses the good ones in its batch" — here a message that
 * passes masq's own validation but whose row the database refuses at write time (a test-only CHECK
 * constraint). The batch is split until the refused row is alone; that message is rejected with the
 * database's reason (dead-letter queue + user_logins_rejected); the other nine rows are written.
 */
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { seedQueue } from "../../lib/demo.ts";
import { synthetic } from "../../bench/synthetic.ts";
import { createSchema, startDatabase } from "../support/databases.ts";
import { queueDepth, receiveAll, sqsClient } from "../support/sqs.ts";
import { runMasqCliWithin } from "../support/processes.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";

const POISON = JSON.stringify({
  user_id: "evil",
  app_version: "2.3.0",
  device_type: "android",
  ip: "199.172.111.135",
  locale: "RU",
  device_id: "593-47-5928",
});

Deno.test("a row the database refuses is isolated from its batch, rejected with the database's reason, the rest written", async () => {
  const db = await startDatabase();
  const sqs = await startEmbeddedSqs();
  const client = sqsClient(sqs);
  try {
    await createSchema(db);
    await db.query("ALTER TABLE user_logins ADD CONSTRAINT no_evil CHECK (user_id <> 'evil')");

    // One batch of ten, the poison in the middle.
    const bodies = Array.from({ length: 10 }, (_, i) => (i === 5 ? POISON : synthetic(i)));
    const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "30" });
    await seedQueue(sqs.endpoint, queueUrl, bodies);

    const res = await runMasqCliWithin(60_000, ["run"], {
      queueUrl,
      databaseUrl: db.url,
      extra: { MASQ_CONCURRENCY: "1", MASQ_BATCH_SIZE: "10", MASQ_LOG_FORMAT: "json" },
    });
    assertEquals(res.code, 0, res.stderr.slice(-4000));
    const s = res.summary!;
    assertEquals(
      { received: s.received, inserted: s.inserted, rejected: s.rejected, duplicates: s.duplicates },
      { received: 10, inserted: 9, rejected: 1, duplicates: 0 },
    );

    // The rest of the batch is written.
    const users = await db.query<{ user_id: string }>("SELECT user_id FROM user_logins ORDER BY user_id");
    assertEquals(
      users.map((u) => u.user_id),
      [0, 1, 2, 3, 4, 6, 7, 8, 9].map((i) => `user-${i}`),
    );

    // Rejected with the database's reason, PII masked in the stored body.
    const rejected = await db.query<{ message_id: string; reason: string; body_redacted: string }>(
      "SELECT message_id, reason, body_redacted FROM user_logins_rejected",
    );
    assertEquals(rejected.length, 1);
    const [rej] = rejected;
    assertEquals(
      rej.reason,
      'database refused the row: new row for relation "user_logins" violates check constraint "no_evil" (SQLSTATE 23514)',
    );
    const body = JSON.parse(rej.body_redacted);
    assertEquals(body.user_id, "evil");
    assertMatch(body.ip, /^[0-9a-f]{64}$/);
    assertMatch(body.device_id, /^[0-9a-f]{64}$/);
    assert(!rej.body_redacted.includes("199.172.111.135") && !rej.body_redacted.includes("593-47-5928"));

    // The ledger: every message once, the poison as a rejection.
    const ledger = await db.query<{ message_id: string; outcome: string; written_at: string }>(
      "SELECT message_id, outcome, written_at::text FROM user_logins_ledger",
    );
    assertEquals(ledger.length, 10);
    assertEquals(ledger.filter((l) => l.outcome === "rejected").map((l) => l.message_id), [rej.message_id]);
    // Split and retry, not one message per write: the nine good rows were committed by a few writes (the
    // halves that did not hold the poison: at most four for a batch of ten), and not together.
    const commits = new Set(ledger.filter((l) => l.outcome === "inserted").map((l) => l.written_at)).size;
    assert(commits >= 2 && commits <= 4, `the good rows were committed in ${commits} transactions`);

    // The dead-letter queue has the redacted body (no vault key: no original) with the reason and its id.
    const dlq = await receiveAll(client, `${queueUrl}-dlq`);
    assertEquals(dlq.length, 1);
    assertEquals(dlq[0].Body, rej.body_redacted);
    assertEquals(dlq[0].MessageAttributes?.masq_original, undefined);
    assertEquals(dlq[0].MessageAttributes?.masq_reason?.StringValue, rej.reason);
    assertEquals(dlq[0].MessageAttributes?.masq_message_id?.StringValue, rej.message_id);

    const lines = res.stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    const refused = lines.filter((l) => l.msg === "row refused by the database; rejecting it");
    assertEquals(refused.map((l) => l.message_id), [rej.message_id]);
    assertEquals(await queueDepth(client, queueUrl), { visible: 0, inFlight: 0 });
  } finally {
    client.destroy();
    await sqs.stop();
    await db.stop();
  }
});
