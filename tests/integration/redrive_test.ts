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
import { assert, assertEquals, assertMatch, assertRejects } from "../support/assert.ts";
import { redrive } from "../../lib/lifecycle/redrive.ts";
import { silentLogger } from "../../lib/log.ts";
import { deadLetterFor } from "../../lib/transform/letter.ts";
import { createVaultCipher } from "../../lib/vault.ts";
import type { Message } from "../../lib/types.ts";
import { queueDepth, receiveAll, sqsClient } from "../support/sqs.ts";
import { runMasqCliWithin, TEST_KEY } from "../support/processes.ts";
import { startDatabase } from "../support/databases.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";
import { masq, OTHER_VAULT_KEY_B64, VAULT_KEY, VAULT_KEY_B64 } from "../support/lifecycle.ts";

/** Message ids as SQS makes them (masq keys messages by them; a letter's masq_message_id is one). */
const ORIG = Array.from(
  { length: 10 },
  (_, i) => `0b9c6f1e-1d2a-4c7e-9a51-2f8e5b7c3d${String(i).padStart(2, "0")}`,
);

/** What every redrive needs: the vault key, and the HMAC key masq run uses (it signs the replay key). */
const KEYS = { PII_VAULT_KEY: VAULT_KEY_B64, PII_HMAC_KEY: TEST_KEY };

/** Nothing left in the DLQ, by why. */
const NONE_LEFT = {
  noOriginal: 0,
  otherVaultKey: 0,
  otherQueue: 0,
  undecryptable: 0,
  malformedOriginal: 0,
  badMessageId: 0,
  refusedBySourceQueue: 0,
  erased: 0,
  notSealedByMasq: 0,
  behindInGroup: 0,
  unexpected: 0,
};

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
          received(ORIG[i], body),
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
      await deadLetterFor(received(ORIG[7], "x"), "not JSON", null, queueUrl, undefined),
    );
    await sendLetter(
      client,
      dlqUrl,
      await deadLetterFor(received(ORIG[8], "y"), "not JSON", null, queueUrl, oldVault),
    );
    const o = {
      databaseUrl: db.url,
      env: { ...KEYS, SQS_QUEUE_URL: queueUrl },
    };

    const dry = await masq(["redrive", "--dry-run"], o);
    assertEquals(dry.code, 0, dry.stderr);
    assertEquals(JSON.parse(dry.stdout.trim()), {
      redriven: 3,
      dryRun: true,
      left: { ...NONE_LEFT, noOriginal: 1, otherVaultKey: 1 },
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
      ORIG.slice(0, 3),
    );
    const leftover = await receiveAll(client, dlqUrl);
    assertEquals(leftover.map((m) => m.MessageAttributes?.masq_message_id?.StringValue).sort(), [
      ORIG[7],
      ORIG[8],
    ]);

    const log = await db.query<{ message_id: string; outcome: string }>(
      "SELECT message_id, outcome FROM pii_access_log WHERE action = 'redrive' ORDER BY id",
    );
    assertEquals(log.filter((l) => l.outcome === "decrypted (dry run)").length, 3);
    assertEquals(
      log.filter((l) => l.outcome === "decrypted for redrive").map((l) => l.message_id).sort(),
      ORIG.slice(0, 3),
    );
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
        received(ORIG[1], ORIGINALS[0]),
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
      env: { SQS_QUEUE_URL: queueUrl, PII_VAULT_KEY: OTHER_VAULT_KEY_B64, PII_HMAC_KEY: TEST_KEY },
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
      env: { ...KEYS, SQS_QUEUE_URL: queueUrl },
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
        received(ORIG[5], original),
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
      hmacKey: TEST_KEY,
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

/** Sends a letter with raw attributes (any data type), as something other than masq might. */
async function sendRaw(
  client: SQSClient,
  dlqUrl: string,
  body: string,
  attributes: Record<string, { DataType: string; StringValue?: string; BinaryValue?: Uint8Array }>,
) {
  await client.send(
    new SendMessageCommand({ QueueUrl: dlqUrl, MessageBody: body, MessageAttributes: attributes }),
  );
}

Deno.test("masq redrive sets aside letters it cannot use, counted by why and naming none of their values, and redrives the letters behind them", async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const client = sqsClient(sqs);
  try {
    const queueUrl = sqs.createQueue("login-queue");
    const dlqUrl = sqs.createQueue("login-queue-dlq");
    const vault = await createVaultCipher(VAULT_KEY, "v1");
    const good = async (i: number) =>
      await deadLetterFor(
        received(ORIG[i], ORIGINALS[i % 3]),
        "app_version is malformed",
        "{}",
        queueUrl,
        vault,
      );
    const s = (v: string) => ({ DataType: "String", StringValue: v });
    const base = (await good(9)).attributes;
    const attrs = (over: Record<string, string | undefined>) =>
      Object.fromEntries(
        Object.entries({ ...base, ...over }).flatMap(([k, v]) => v === undefined ? [] : [[k, s(v)]]),
      );
    // Values that must never reach a log line or the access log: a device id, an address, free text.
    const DEVICE = "593-47-5928";
    const ADDRESS = "198.51.100.77";
    // The bad letters first, so that each receive meets them before the good ones.
    await sendRaw(client, dlqUrl, "{}", attrs({ masq_original: `not base64 ${ADDRESS}!` }));
    await sendRaw(client, dlqUrl, "{}", attrs({ masq_original: "QUJD" })); // base64, too short for a ciphertext
    await sendRaw(client, dlqUrl, "{}", attrs({ masq_message_id: undefined }));
    await sendRaw(client, dlqUrl, "{}", attrs({ masq_message_id: DEVICE }));
    await sendRaw(client, dlqUrl, "{}", attrs({ masq_message_id: `redrive:${ADDRESS}` }));
    await sendRaw(client, dlqUrl, "{}", {
      ...attrs({}),
      masq_original: { DataType: "Binary", BinaryValue: new TextEncoder().encode(DEVICE) },
    });
    for (const i of [0, 1]) await sendLetter(client, dlqUrl, await good(i));

    const res = await masq(["redrive", "--reason", "ticket 77: producer fixed"], {
      databaseUrl: db.url,
      env: { ...KEYS, SQS_QUEUE_URL: queueUrl, MASQ_LOG_FORMAT: "json" },
    });
    assertEquals(res.code, 0, res.stderr);
    assertEquals(JSON.parse(res.stdout.trim()), {
      redriven: 2,
      dryRun: false,
      left: { ...NONE_LEFT, malformedOriginal: 2, badMessageId: 3, unexpected: 1 },
      leftInDlq: 6,
    });
    const replayed = await receiveAll(client, queueUrl);
    assertEquals(replayed.map((m) => m.Body).sort(), [ORIGINALS[0], ORIGINALS[1]].sort());
    // Set aside: left in the DLQ, visible again at once.
    assertEquals(await queueDepth(client, dlqUrl), { visible: 6, inFlight: 0 });
    const lines = res.stderr.trim().split("\n").map((l) => JSON.parse(l));
    const aside = lines.filter((l) => l.msg === "dead letter set aside; left in the DLQ");
    assertEquals(aside.map((l) => l.why).sort(), [
      "badMessageId",
      "badMessageId",
      "badMessageId",
      "malformedOriginal",
      "malformedOriginal",
      "unexpected",
    ]);
    const log = await db.query<{ message_id: string; reason: string }>(
      "SELECT message_id, reason FROM pii_access_log WHERE action = 'redrive'",
    );
    assertEquals(log.map((l) => l.message_id).sort(), [ORIG[0], ORIG[1]]);
    assertEquals(log[0].reason, "ticket 77: producer fixed");
    for (const value of [DEVICE, ADDRESS, "not base64"]) {
      assert(!(res.stdout + res.stderr).includes(value), `${value} printed`);
      assert(!JSON.stringify(log).includes(value), `${value} in the access log`);
    }
  } finally {
    client.destroy();
    await db.stop();
    await sqs.stop();
  }
});

Deno.test("masq redrive sets aside a letter whose original the source queue refuses and redrives the rest", async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const client = sqsClient(sqs);
  try {
    // A source queue that takes 1 KiB at most: the first original is larger.
    const queueUrl = sqs.createQueue("login-queue", { MaximumMessageSize: "1024" });
    const dlqUrl = sqs.createQueue("login-queue-dlq");
    const vault = await createVaultCipher(VAULT_KEY, "v1");
    const large = JSON.stringify({ user_id: "u-large", app_version: "bad", note: "n".repeat(2000) });
    await sendLetter(
      client,
      dlqUrl,
      await deadLetterFor(received(ORIG[0], large), "r", "{}", queueUrl, vault),
    );
    await sendLetter(
      client,
      dlqUrl,
      await deadLetterFor(received(ORIG[1], ORIGINALS[1]), "r", "{}", queueUrl, vault),
    );
    const res = await masq(["redrive"], { databaseUrl: db.url, env: { ...KEYS, SQS_QUEUE_URL: queueUrl } });
    assertEquals(res.code, 0, res.stderr);
    assertEquals(JSON.parse(res.stdout.trim()).left, { ...NONE_LEFT, refusedBySourceQueue: 1 });
    assertEquals((await receiveAll(client, queueUrl)).map((m) => m.Body), [ORIGINALS[1]]);
    const [kept] = await receiveAll(client, dlqUrl);
    assertEquals(kept.MessageAttributes?.masq_message_id?.StringValue, ORIG[0]);
  } finally {
    client.destroy();
    await db.stop();
    await sqs.stop();
  }
});

Deno.test("masq redrive refuses to start without the HMAC key or with a reason nobody can read", async () => {
  const db = await startDatabase();
  try {
    const noHmac = await masq(["redrive"], { databaseUrl: db.url, env: { PII_VAULT_KEY: VAULT_KEY_B64 } });
    assertEquals(noHmac.code, 2, noHmac.stderr);
    assertMatch(
      noHmac.stderr,
      /^masq: PII_HMAC_KEY: not set; `masq redrive` needs the HMAC key `masq run` uses \(PII_HMAC_KEY or PII_HMAC_KEY_FILE\)/m,
    );
    const weak = await masq(["redrive"], {
      databaseUrl: db.url,
      env: { PII_VAULT_KEY: VAULT_KEY_B64, PII_HMAC_KEY: "short" },
    });
    assertEquals(weak.code, 2, weak.stderr);
    assertMatch(weak.stderr, /PII_HMAC_KEY: is 5 bytes/);
    for (const reason of ["", "  ", "\u200b\u200b\u200b\u200b", "a\u0007\u200bb", "..!!--"]) {
      const res = await masq(["redrive", "--reason", reason], { databaseUrl: db.url, env: KEYS });
      assertEquals(res.code, 2, `${JSON.stringify(reason)}: ${res.stderr}`);
      assertMatch(res.stderr, /^masq: --reason: must hold at least 3 visible letters or digits/m);
    }
  } finally {
    await db.stop();
  }
});
