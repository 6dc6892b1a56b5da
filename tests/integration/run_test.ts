import { GetQueueAttributesCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { assert, assertEquals } from "../support/assert.ts";
import { createMasker } from "../../lib/transform/mask.ts";
import { seedQueue } from "../../lib/demo.ts";
import { queueDepth, receiveAll, sqsClient } from "../support/sqs.ts";
import { ROOT, runMasqCli, runMasqCliWithin, TEST_KEY } from "../support/processes.ts";
import { startDatabase } from "../support/databases.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";

const SAMPLE = Deno.readTextFileSync(`${ROOT}data/sample_logins.jsonl`).split("\n").filter(Boolean);

Deno.test("masq run drains the sample queue into exact rows, rejects to the DLQ, and a rerun adds nothing", async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const client = sqsClient(sqs);
  try {
    const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "30" });
    await seedQueue(sqs.endpoint, queueUrl, SAMPLE);
    const res = await runMasqCli(["run", "--concurrency", "4"], { queueUrl, databaseUrl: db.url });
    assertEquals(res.code, 0, res.stderr);
    assertEquals(res.summary?.received, 100);
    assertEquals(res.summary?.inserted, 99);
    assertEquals(res.summary?.rejected, 1);
    assertEquals(res.summary?.duplicates, 0);

    // Every good line becomes exactly the row the contract describes.
    const mask = await createMasker(TEST_KEY);
    const expected: string[] = [];
    for (const line of SAMPLE) {
      const o = JSON.parse(line);
      if (!o.user_id) continue;
      const [M, m = "0", p = "0"] = String(o.app_version).split(".");
      expected.push(JSON.stringify([
        o.user_id,
        o.device_type,
        await mask.ip(o.ip),
        await mask.deviceId(o.device_id),
        o.locale,
        Number(M) * 1e6 + Number(m) * 1e3 + Number(p),
        o.timestamp ? new Date(o.timestamp * 1000).toISOString().slice(0, 10) : "SENT",
      ]));
    }
    const rows = await db.query<Record<string, unknown>>("SELECT * FROM user_logins");
    const today = new Date().toISOString().slice(0, 10);
    const actual = rows.map((r) =>
      JSON.stringify([
        r.user_id,
        r.device_type,
        r.masked_ip,
        r.masked_device_id,
        r.locale,
        r.app_version,
        r.create_date === today && !expected.some((e) => e.includes(`"${today}"`)) ? "SENT" : r.create_date,
      ])
    );
    assertEquals(actual.sort(), expected.sort());

    const readable = await db.query<{ app_version: string }>(
      "SELECT DISTINCT app_version FROM user_logins_readable ORDER BY 1",
    );
    assert(readable.some((r) => r.app_version === "0.96.0"));
    assert(readable.some((r) => r.app_version === "3.7.0"));

    const rejected = await db.query<{ reason: string; body_redacted: string }>(
      "SELECT * FROM user_logins_rejected",
    );
    assertEquals(rejected.length, 1);
    assertEquals(rejected[0].reason, "user_id is missing");
    // Redaction by allow-list: neither value is an allow-listed field, so both are tokens of their path; nor
    // is either key one of the contract's, so both keys are tokens too.
    assertEquals(JSON.parse(rejected[0].body_redacted), {
      [`key_${mask.token("key.", "foo").slice(0, 16)}`]: mask.token("body.foo", "oops_wrong_ip"),
      [`key_${mask.token("key.", "bar").slice(0, 16)}`]: mask.token("body.bar", "123"),
    });

    const dlq = await receiveAll(client, `${queueUrl}-dlq`);
    assertEquals(dlq.length, 1);
    assertEquals(
      dlq[0].Body,
      rejected[0].body_redacted,
      "the dead letter is the redacted body, never the raw one",
    );
    assertEquals(dlq[0].MessageAttributes?.masq_reason?.StringValue, "user_id is missing");
    assertEquals(
      dlq[0].MessageAttributes?.masq_message_id?.StringValue,
      rejected[0]["message_id" as "reason"],
    );
    assertEquals(await queueDepth(client, queueUrl), { visible: 0, inFlight: 0 });

    // Redelivery: the same message ids again (as after a crash before delete) are duplicates, not rows.
    const ids = await db.query<{ message_id: string }>("SELECT message_id FROM user_logins_ledger");
    assertEquals(ids.length, 100);
    const again = await runMasqCli(["run"], { queueUrl, databaseUrl: db.url });
    assertEquals(again.code, 0, again.stderr);
    assertEquals(again.summary?.received, 0);
    const count = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins");
    assertEquals(count[0].n, 99);
  } finally {
    client.destroy();
    await db.stop();
    await sqs.stop();
  }
});

Deno.test("masq run drains without waiting for delayed messages, leaves them in the queue and says how many", async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const client = sqsClient(sqs);
  try {
    const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "30" });
    await seedQueue(sqs.endpoint, queueUrl, SAMPLE.slice(0, 5));
    // A producer's longest delay: a drain that waited for it would take 15 minutes.
    await client.send(
      new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: SAMPLE[5], DelaySeconds: 900 }),
    );
    const started = Date.now();
    const res = await runMasqCliWithin(60_000, ["run"], {
      queueUrl,
      databaseUrl: db.url,
      extra: { MASQ_LOG_FORMAT: "json" },
    });
    assertEquals(res.code, 0, res.stderr);
    assert(Date.now() - started < 60_000);
    assertEquals(res.summary?.received, 5);
    const said = res.stderr.split("\n").filter((l) => l.includes("delayed messages stay in the queue"));
    assertEquals(said.map((l) => JSON.parse(l).delayed), [1]);
    const attrs = await client.send(
      new GetQueueAttributesCommand({
        QueueUrl: queueUrl,
        AttributeNames: ["ApproximateNumberOfMessagesDelayed"],
      }),
    );
    assertEquals(attrs.Attributes?.ApproximateNumberOfMessagesDelayed, "1", "still in the queue");
  } finally {
    client.destroy();
    await db.stop();
    await sqs.stop();
  }
});

Deno.test("masq run never prints the credentials of an SQS URL: not in its errors, its log lines, nor a dead letter", async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const client = sqsClient(sqs);
  try {
    const SECRET = "s3cr3t-queue-pw";
    const withCredentials = (name: string) => sqs.queueUrl(name).replace("http://", `http://user:${SECRET}@`);
    const missing = await runMasqCliWithin(60_000, ["run"], {
      queueUrl: withCredentials("missing-queue"),
      databaseUrl: db.url,
    });
    assertEquals(missing.code, 2, missing.stderr);
    assert(missing.stderr.includes("queue does not exist"), missing.stderr);
    assert(!missing.stderr.includes(SECRET), missing.stderr);

    const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "30" });
    await seedQueue(sqs.endpoint, queueUrl, [...SAMPLE.slice(0, 9), '{"foo":"no user"}']);
    const res = await runMasqCliWithin(60_000, ["run"], {
      queueUrl: withCredentials("login-queue"),
      databaseUrl: db.url,
      extra: { MASQ_LOG_LEVEL: "debug" },
    });
    assertEquals(res.code, 0, res.stderr);
    assert(res.stderr.includes("connected to SQS"));
    assert(!(res.stderr + res.stdout).includes(SECRET), res.stderr);
    const letters = await receiveAll(client, `${queueUrl}-dlq`);
    assertEquals(letters.length, 1);
    for (const l of letters) assert(!JSON.stringify(l.MessageAttributes).includes(SECRET));
  } finally {
    client.destroy();
    await db.stop();
    await sqs.stop();
  }
});
