/**
 * `masq redrive`: dead letters back to the source queue with their original bodies, decrypted with the
 * vault key; letters that cannot be restored stay in the DLQ and are counted. Real SQS wire protocol
 * (fauxqs) and real PostgreSQL (the access log).
 */
import {
  ChangeMessageVisibilityCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import pg from "pg";
import { assert, assertEquals, assertMatch, assertRejects } from "../assert.ts";
import { redrive } from "../../lib/lifecycle/redrive.ts";
import { silentLogger } from "../../lib/log.ts";
import { deadLetterFor } from "../../lib/transform/dead_letter.ts";
import { createVaultCipher } from "../../lib/vault.ts";
import type { Message } from "../../lib/types.ts";
import {
  queueDepth,
  receiveAll,
  runMasqCliWithin,
  sqsClient,
  startDatabase,
  startEmbeddedSqs,
} from "./harness.ts";
import { masq, VAULT_KEY } from "./lifecycle.ts";
import { VAULT_KEY_B64 } from "./lifecycle.ts";

const ORIGINALS = [0, 1, 2].map((i) =>
  JSON.stringify({ user_id: `u${i}`, ip: `192.0.2.${i + 1}`, device_id: `dev-${i}`, app_version: "bad" })
);

/** A message as masq received it, for deadLetterFor(). */
const received = (id: string, body: string): Message => ({
  id,
  receiptHandle: "r",
  body,
  sentTimestamp: 1_700_000_000_000,
  receiveCount: 1,
});

async function sendLetter(
  client: SQSClient,
  dlqUrl: string,
  letter: { body: string; attributes: Record<string, string> },
) {
  await client.send(
    new SendMessageCommand({
      QueueUrl: dlqUrl,
      MessageBody: letter.body,
      MessageAttributes: Object.fromEntries(
        Object.entries(letter.attributes).map(([k, v]) => [k, { DataType: "String", StringValue: v }]),
      ),
    }),
  );
}

Deno.test("masq redrive restores dead letters' original bodies to the source queue and leaves what it cannot restore", async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const client = sqsClient(sqs);
  try {
    const queueUrl = sqs.createQueue("login-queue");
    const dlqUrl = sqs.createQueue("login-queue-dlq");
    const vault = await createVaultCipher(VAULT_KEY, "v1");
    const oldVault = await createVaultCipher(VAULT_KEY, "v0");
    for (const [i, body] of ORIGINALS.entries()) {
      await sendLetter(
        client,
        dlqUrl,
        await deadLetterFor(
          received(`orig-${i}`, body),
          "app_version is malformed",
          '{"redacted":true}',
          queueUrl,
          vault,
        ),
      );
    }
    await sendLetter(
      client,
      dlqUrl,
      await deadLetterFor(received("orig-7", "x"), "not JSON", null, queueUrl, undefined),
    );
    await sendLetter(
      client,
      dlqUrl,
      await deadLetterFor(received("orig-8", "y"), "not JSON", null, queueUrl, oldVault),
    );
    const o = {
      databaseUrl: db.url,
      env: { PII_VAULT_KEY: VAULT_KEY_B64, SQS_QUEUE_URL: queueUrl },
    };

    const dry = await masq(["redrive", "--dry-run"], o);
    assertEquals(dry.code, 0, dry.stderr);
    assertEquals(JSON.parse(dry.stdout.trim()), {
      redriven: 3,
      dryRun: true,
      left: { noOriginal: 1, otherVaultKey: 1, undecryptable: 0, otherQueue: 0 },
      leftInDlq: 2,
    });
    assertEquals(await queueDepth(client, queueUrl), { visible: 0, inFlight: 0 });
    assertEquals(await queueDepth(client, dlqUrl), { visible: 5, inFlight: 0 }, "a dry run changes nothing");

    const one = await masq(["redrive", "--max", "1"], o);
    assertEquals(one.code, 0, one.stderr);
    const first = JSON.parse(one.stdout.trim());
    assertEquals(first.redriven + first.leftInDlq, 1, "--max 1 looks at one letter");

    const res = await masq(["redrive"], o);
    assertEquals(res.code, 0, res.stderr);
    const rest = JSON.parse(res.stdout.trim());
    assertEquals(first.redriven + rest.redriven, 3);
    assertEquals(rest.leftInDlq, 2);
    for (const out of [dry, one, res]) {
      for (const body of ORIGINALS) assert(!(out.stdout + out.stderr).includes(JSON.parse(body).ip));
    }

    const replayed = await receiveAll(client, queueUrl);
    assertEquals(replayed.map((m) => m.Body).sort(), [...ORIGINALS].sort());
    assertEquals(
      replayed.map((m) => m.MessageAttributes?.masq_original_message_id?.StringValue).sort(),
      ["orig-0", "orig-1", "orig-2"],
    );
    const leftover = await receiveAll(client, dlqUrl);
    assertEquals(leftover.map((m) => m.MessageAttributes?.masq_message_id?.StringValue).sort(), [
      "orig-7",
      "orig-8",
    ]);

    const log = await db.query<{ message_id: string; outcome: string }>(
      "SELECT message_id, outcome FROM pii_access_log WHERE action = 'redrive' ORDER BY id",
    );
    assertEquals(log.filter((l) => l.outcome === "decrypted (dry run)").length, 3);
    assertEquals(log.filter((l) => l.outcome === "decrypted for redrive").map((l) => l.message_id).sort(), [
      "orig-0",
      "orig-1",
      "orig-2",
    ]);
  } finally {
    client.destroy();
    await db.stop();
    await sqs.stop();
  }
});

Deno.test("masq redrive refuses without the vault key, and with a wrong one leaves every letter in place", async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const client = sqsClient(sqs);
  try {
    const queueUrl = sqs.createQueue("login-queue");
    const dlqUrl = sqs.createQueue("login-queue-dlq");
    const vault = await createVaultCipher(VAULT_KEY, "v1");
    await sendLetter(
      client,
      dlqUrl,
      await deadLetterFor(
        received("m1", ORIGINALS[0]),
        "app_version is malformed",
        "{}",
        queueUrl,
        vault,
      ),
    );
    const none = await masq(["redrive"], { databaseUrl: db.url, env: { SQS_QUEUE_URL: queueUrl } });
    assertEquals(none.code, 2);
    assertMatch(none.stderr, /^masq: PII_VAULT_KEY: not set; `masq redrive` needs the vault key/);
    const wrong = await masq(["redrive"], {
      databaseUrl: db.url,
      env: { SQS_QUEUE_URL: queueUrl, PII_VAULT_KEY: btoa("x".repeat(32)) },
    });
    assertEquals(wrong.code, 1, wrong.stderr);
    assertEquals(JSON.parse(wrong.stdout.trim()).left.undecryptable, 1);
    assertMatch(wrong.stderr, /1 dead letters do not decrypt under vault key v1: wrong PII_VAULT_KEY\?/);
    assertEquals(await queueDepth(client, dlqUrl), { visible: 1, inFlight: 0 });
    assertEquals(await queueDepth(client, queueUrl), { visible: 0, inFlight: 0 });
  } finally {
    client.destroy();
    await db.stop();
    await sqs.stop();
  }
});

Deno.test("a message masq run dead-letters with the vault key is restored by masq redrive, byte for byte", async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const client = sqsClient(sqs);
  try {
    // A long poll masq run left open as it exited may still claim the replayed message (SQS does the same
    // for a vanished client): a short visibility timeout brings it back soon.
    const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "2" });
    const dlqUrl = sqs.createQueue("login-queue-dlq");
    const bad = JSON.stringify({
      user_id: "u9",
      ip: "192.0.2.99",
      device_id: "dev-9",
      app_version: "not a version",
    });
    await client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: bad }));
    const run = await runMasqCliWithin(60_000, ["run"], {
      queueUrl,
      databaseUrl: db.url,
      extra: { PII_VAULT_KEY: VAULT_KEY_B64 },
    });
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.summary?.rejected, 1);
    const letters = await receiveAll(client, dlqUrl);
    assertEquals(letters.length, 1);
    assert(!letters[0].Body!.includes("192.0.2.99"), "the letter's body is redacted");
    assertEquals(letters[0].MessageAttributes?.masq_key_id?.StringValue, "v1");
    await client.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: dlqUrl,
        ReceiptHandle: letters[0].ReceiptHandle!,
        VisibilityTimeout: 0,
      }),
    );

    const res = await masq(["redrive"], {
      databaseUrl: db.url,
      env: { PII_VAULT_KEY: VAULT_KEY_B64, SQS_QUEUE_URL: queueUrl },
    });
    assertEquals(res.code, 0, res.stderr);
    assertEquals(JSON.parse(res.stdout.trim()).redriven, 1);
    let replayed: (string | undefined)[] = [];
    for (let attempt = 0; attempt < 4 && replayed.length === 0; attempt++) {
      const got = await client.send(
        new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 5 }),
      );
      replayed = (got.Messages ?? []).map((m) => m.Body);
    }
    assertEquals(replayed, [bad]);
    assertEquals(await queueDepth(client, dlqUrl), { visible: 0, inFlight: 0 });
  } finally {
    client.destroy();
    await db.stop();
    await sqs.stop();
  }
});

Deno.test("a redrive that failed between its send and its delete sends the letter again; masq run writes it once", async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const client = sqsClient(sqs);
  const pgClient = new pg.Client({ connectionString: db.url });
  await pgClient.connect();
  try {
    const queueUrl = sqs.createQueue("login-queue");
    const dlqUrl = sqs.createQueue("login-queue-dlq");
    const vault = await createVaultCipher(VAULT_KEY, "v1");
    const original = JSON.stringify({ user_id: "u-redriven", ip: "192.0.2.50", app_version: "2.3.0" });
    await sendLetter(
      client,
      dlqUrl,
      await deadLetterFor(
        received("orig-50", original),
        "the producer sent it before the fix",
        "{}",
        queueUrl,
        vault,
      ),
    );
    const opts = {
      db: pgClient,
      dlqUrl,
      queueUrl,
      vault,
      dryRun: false,
      max: 10,
      who: { osUser: "test", reason: "replay after the fix" },
      log: silentLogger,
    };

    // The first redrive fails where a crash would hurt: its send is done, the letter's delete is not.
    const failing = sqsClient(sqs);
    let held: string | undefined;
    failing.middlewareStack.add((next, context) => (args) => {
      if (context.commandName === "DeleteMessageCommand") {
        held = (args.input as { ReceiptHandle: string }).ReceiptHandle;
        throw new Error("crash between send and delete");
      }
      return next(args);
    });
    await assertRejects(() => redrive({ ...opts, sqs: failing }), Error, "crash between send and delete");
    failing.destroy();
    // The letter comes back once its visibility runs out; here at once.
    await client.send(
      new ChangeMessageVisibilityCommand({ QueueUrl: dlqUrl, ReceiptHandle: held!, VisibilityTimeout: 0 }),
    );
    assertEquals((await redrive({ ...opts, sqs: client })).redriven, 1);
    assertEquals(await queueDepth(client, dlqUrl), { visible: 0, inFlight: 0 });
    assertEquals(await queueDepth(client, queueUrl), { visible: 2, inFlight: 0 }, "sent twice");

    const run = await runMasqCliWithin(60_000, ["run"], { queueUrl, databaseUrl: db.url });
    assertEquals(run.code, 0, run.stderr);
    assertEquals([run.summary?.inserted, run.summary?.duplicates], [1, 1]);
    const rows = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM user_logins WHERE user_id = 'u-redriven'",
    );
    assertEquals(rows[0].n, 1);
    const ledger = await db.query<{ message_id: string }>("SELECT message_id FROM user_logins_ledger");
    assertEquals(ledger.length, 1);
    assertMatch(ledger[0].message_id, /^redrive:/);
  } finally {
    await pgClient.end();
    client.destroy();
    await db.stop();
    await sqs.stop();
  }
});
