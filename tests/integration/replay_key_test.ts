/**
 * The replay key (`redrive:<dead letter id>`) cannot be forged by a producer: masq run takes it only when
 * `masq_redrive_mac` is the MAC `masq redrive` made of `masq_redrive_id` under the same HMAC key. Anything
 * else keys the message by its SQS message id, and no attribute value reaches a column, an attribute or a
 * log line. The real CLI against fauxqs and PostgreSQL.
 */
import { SendMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import pg from "pg";
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { redrive } from "../../lib/lifecycle/redrive.ts";
import { silentLogger } from "../../lib/log.ts";
import { deadLetterFor } from "../../lib/transform/letter.ts";
import { createVaultCipher } from "../../lib/vault.ts";
import { queueDepth, receiveAll, sqsClient } from "../support/sqs.ts";
import { runMasqCliWithin } from "../support/processes.ts";
import { startDatabase } from "../support/databases.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";
import { VAULT_KEY } from "../support/lifecycle.ts";

const login = (user: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ user_id: user, app_version: "2.3.0", ip: "192.0.2.1", device_id: "dev-1", ...extra });

async function send(client: SQSClient, queueUrl: string, body: string, attributes: Record<string, string>) {
  const res = await client.send(
    new SendMessageCommand({
      QueueUrl: queueUrl,
      MessageBody: body,
      MessageAttributes: Object.fromEntries(
        Object.entries(attributes).map(([k, v]) => [k, { DataType: "String", StringValue: v }]),
      ),
    }),
  );
  return res.MessageId!;
}

function jsonLines(stderr: string): Record<string, unknown>[] {
  return stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

Deno.test("masq run ignores a producer's masq_redrive_id: no login is lost as a duplicate and no attribute value is stored or logged", async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const client = sqsClient(sqs);
  try {
    const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "30" });
    const DEVICE = "8f14e45f-ceea-467f-a0e6-c2f3c2b4e1aa"; // a device id shaped like an SQS message id
    const ids = [
      // Three different logins claiming one replay key: before, one row and two "duplicates".
      await send(client, queueUrl, login("u1"), { masq_redrive_id: "collide-1" }),
      await send(client, queueUrl, login("u2"), { masq_redrive_id: "collide-1" }),
      await send(client, queueUrl, login("u3"), {
        masq_redrive_id: "collide-1",
        masq_redrive_mac: "0".repeat(64),
      }),
      // A device id as the key, with a well-shaped MAC that is not the key's: a login and a rejection.
      await send(client, queueUrl, login("u4"), {
        masq_redrive_id: DEVICE,
        masq_redrive_mac: "a".repeat(64),
      }),
      await send(client, queueUrl, login("u5", { app_version: "bad" }), { masq_redrive_id: DEVICE }),
    ];
    const res = await runMasqCliWithin(60_000, ["run"], {
      queueUrl,
      databaseUrl: db.url,
      extra: { MASQ_LOG_FORMAT: "json" },
    });
    assertEquals(res.code, 0, res.stderr);
    assertEquals(
      [res.summary?.received, res.summary?.inserted, res.summary?.rejected, res.summary?.duplicates],
      [5, 4, 1, 0],
    );
    const users = await db.query<{ user_id: string }>("SELECT user_id FROM user_logins ORDER BY user_id");
    assertEquals(users.map((u) => u.user_id), ["u1", "u2", "u3", "u4"]);
    const ledger = await db.query<{ message_id: string }>("SELECT message_id FROM user_logins_ledger");
    assertEquals(ledger.map((l) => l.message_id).sort(), [...ids].sort());
    const [rejected] = await db.query<{ message_id: string }>("SELECT message_id FROM user_logins_rejected");
    assertEquals(rejected.message_id, ids[4]);
    const [letter] = await receiveAll(client, `${queueUrl}-dlq`);
    assertEquals(letter.MessageAttributes?.masq_message_id?.StringValue, ids[4]);
    assert(!JSON.stringify(letter.MessageAttributes).includes(DEVICE));

    const warnings = jsonLines(res.stderr).filter((l) => String(l.msg).startsWith("replay attributes"));
    assertEquals(warnings.map((w) => w.message_id).sort(), [...ids].sort(), "one warning per message");
    for (const value of [DEVICE, "collide-1", "a".repeat(64)]) {
      assert(!res.stderr.includes(value) && !res.stdout.includes(value), `${value} was logged`);
    }
    assertEquals(await queueDepth(client, queueUrl), { visible: 0, inFlight: 0 });
  } finally {
    client.destroy();
    await db.stop();
    await sqs.stop();
  }
});

Deno.test("a letter redriven with another HMAC key than masq run's is keyed by its new SQS message id, with a warning", async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const client = sqsClient(sqs);
  const pgClient = new pg.Client({ connectionString: db.url });
  await pgClient.connect();
  try {
    const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "30" });
    const dlqUrl = sqs.createQueue("login-queue-dlq");
    const vault = await createVaultCipher(VAULT_KEY, "v1");
    const original = login("u-rotated");
    const message = {
      id: "0b9c6f1e-1d2a-4c7e-9a51-2f8e5b7c3d99",
      receiptHandle: "r",
      body: original,
      sentTimestamp: 1_700_000_000_000,
      receiveCount: 1,
    };
    const letter = await deadLetterFor(message, "before the fix", "{}", queueUrl, vault);
    await client.send(
      new SendMessageCommand({
        QueueUrl: dlqUrl,
        MessageBody: letter.body,
        MessageAttributes: Object.fromEntries(
          Object.entries(letter.attributes).map(([k, v]) => [k, { DataType: "String", StringValue: v }]),
        ),
      }),
    );
    const result = await redrive({
      sqs: client,
      db: pgClient,
      dlqUrl,
      queueUrl,
      vault,
      hmacKey: "the HMAC key masq used before the rotation, 32 bytes+",
      dryRun: false,
      max: 10,
      who: { osUser: "test", reason: "replay after the fix" },
      log: silentLogger,
    });
    assertEquals(result.redriven, 1);
    const run = await runMasqCliWithin(60_000, ["run"], {
      queueUrl,
      databaseUrl: db.url,
      extra: { MASQ_LOG_FORMAT: "json" },
    });
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.summary?.inserted, 1);
    const [entry] = await db.query<{ message_id: string }>("SELECT message_id FROM user_logins_ledger");
    assert(!entry.message_id.startsWith("redrive:"), entry.message_id);
    const warnings = jsonLines(run.stderr).filter((l) => String(l.msg).startsWith("replay attributes"));
    assertEquals(warnings.map((w) => w.message_id), [entry.message_id]);
    assertMatch(entry.message_id, /^[0-9a-f-]{36}$/);
  } finally {
    await pgClient.end();
    client.destroy();
    await db.stop();
    await sqs.stop();
  }
});
