/**
 * Dead letters are sized by the dead-letter queue's own MaximumMessageSize (up to SQS's 1 MiB), and a
 * letter whose encrypted original fits only without the redacted body goes without it: an original that
 * fits is never lost. The real CLI (run, then redrive) against fauxqs and PostgreSQL, with a vault key.
 */
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import {
  ChangeMessageVisibilityCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
} from "@aws-sdk/client-sqs";
import { BODY_LEFT_OUT } from "../../lib/source/sqs.ts";
import { receiveAll, sqsClient } from "../support/sqs.ts";
import { runMasqCliWithin, TEST_KEY } from "../support/processes.ts";
import { startDatabase } from "../support/databases.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";
import { masq, VAULT_KEY_B64 } from "../support/lifecycle.ts";

/**
 * A rejected body of about `bytes` bytes (app_version is malformed): one long note, which its redacted
 * copy turns into one token, and `fields` short fields, each of which becomes a 64-character token there.
 */
function rejectedBody(tag: string, bytes: number, fields: number): string {
  const o: Record<string, string> = { user_id: `u-${tag}`, app_version: "not a version" };
  for (let i = 0; i < fields; i++) o[`f${i}`] = "v";
  const base = JSON.stringify({ ...o, note: "" }).length;
  return JSON.stringify({ ...o, note: "n".repeat(bytes - base) });
}

// About 190 KB, whose redacted copy is about 22 KB: with the encrypted original (about 250 KB), more than
// 256 KiB; the original alone, less.
const MID = rejectedBody("mid", 188_000, 300);
// About 700 KB: its encrypted original alone is more than 256 KiB, less than 1 MiB.
const LARGE = rejectedBody("large", 700_000, 5);
// About 200 KB and hardly any fields: its encrypted original alone is more than 256 KiB.
const OVER = rejectedBody("over", 200_000, 5);

/** Runs masq (vault key) over a queue holding `bodies`, its DLQ at `dlqBytes`, and returns the run. */
async function runWith(dlqBytes: number, bodies: string[]) {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const client = sqsClient(sqs);
  // A long poll masq run left open as it exited may still claim a replayed message (SQS does the same for
  // a vanished client): a short visibility timeout brings it back soon.
  const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "2" });
  const dlqUrl = sqs.createQueue("login-queue-dlq", { MaximumMessageSize: String(dlqBytes) });
  for (const body of bodies) {
    await client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
  }
  const run = await runMasqCliWithin(90_000, ["run"], {
    queueUrl,
    databaseUrl: db.url,
    extra: { PII_VAULT_KEY: VAULT_KEY_B64, MASQ_LOG_FORMAT: "json" },
  });
  const stop = async () => {
    client.destroy();
    await db.stop();
    await sqs.stop();
  };
  return { sqs, db, client, queueUrl, dlqUrl, run, stop };
}

/** Receives every letter of the DLQ and makes each visible again, for the redrive after. */
async function peek(t: Awaited<ReturnType<typeof runWith>>) {
  const letters = await receiveAll(t.client, t.dlqUrl);
  for (const l of letters) {
    await t.client.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: t.dlqUrl,
        ReceiptHandle: l.ReceiptHandle!,
        VisibilityTimeout: 0,
      }),
    );
  }
  return letters;
}

/** Redrives the DLQ and returns the `n` bodies that arrived in the source queue. */
async function redriveAll(t: Awaited<ReturnType<typeof runWith>>, n: number): Promise<string[]> {
  const res = await masq(["redrive"], {
    databaseUrl: t.db.url,
    env: { PII_VAULT_KEY: VAULT_KEY_B64, PII_HMAC_KEY: TEST_KEY, SQS_QUEUE_URL: t.queueUrl },
    timeoutMs: 90_000,
  });
  assertEquals(res.code, 0, res.stderr);
  assertEquals(JSON.parse(res.stdout.trim()).leftInDlq, 0, res.stdout);
  const bodies: string[] = [];
  for (let attempt = 0; attempt < 6 && bodies.length < n; attempt++) {
    const got = await t.client.send(
      new ReceiveMessageCommand({
        QueueUrl: t.queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 5,
        VisibilityTimeout: 60,
      }),
    );
    bodies.push(...(got.Messages ?? []).map((m) => m.Body!));
  }
  return bodies;
}

/** A short stand-in for a large body in assertions (a failed one prints both sides). */
function digest(body: string): string {
  return `${body.length} bytes, ${body.slice(0, 24)}...${body.slice(-8)}`;
}

Deno.test("masq run dead-letters rejected bodies of about 200 KB and 700 KB with their originals into a 1 MiB DLQ; redrive restores them byte for byte", async () => {
  const t = await runWith(1_048_576, [MID, LARGE]);
  try {
    assertEquals(t.run.code, 0, t.run.stderr);
    assertEquals([t.run.summary?.rejected, t.run.summary?.inserted], [2, 0]);
    const reasons = await t.db.query<{ reason: string }>("SELECT reason FROM user_logins_rejected");
    assertEquals(reasons.length, 2);
    for (const r of reasons) assertMatch(r.reason, /^app_version [^;]*$/, "dead-lettered: nothing appended");
    const letters = await peek(t);
    assertEquals(letters.length, 2);
    for (const l of letters) {
      assert(l.MessageAttributes?.masq_original?.StringValue, "the letter carries the encrypted original");
      assert(l.Body !== BODY_LEFT_OUT, "both fit with their redacted bodies");
    }
    const restored = await redriveAll(t, 2);
    assertEquals(restored.map(digest).sort(), [MID, LARGE].map(digest).sort());
    assert(restored.includes(MID) && restored.includes(LARGE), "restored byte for byte");
  } finally {
    await t.stop();
  }
});

Deno.test("masq run sends a letter too large for a 256 KiB DLQ without its redacted body, keeping its original; one whose original alone is too large is recorded as such", async () => {
  const t = await runWith(262_144, [MID, OVER]);
  try {
    assertEquals(t.run.code, 0, t.run.stderr);
    assertEquals(t.run.summary?.rejected, 2);
    const rows = await t.db.query<{ user_id: string; reason: string; body_redacted: string }>(
      "SELECT body_redacted::json->>'user_id' AS user_id, reason, body_redacted FROM user_logins_rejected",
    );
    const byUser = new Map(rows.map((r) => [r.user_id, r]));
    assertMatch(byUser.get("u-mid")!.reason, /^app_version [^;]*$/);
    assert(byUser.get("u-mid")!.body_redacted.length > 20_000, "the redacted body is kept in the table");
    assertMatch(
      byUser.get("u-over")!.reason,
      /^app_version .*; not dead-lettered: too large for the dead-letter queue$/,
    );
    const letters = await peek(t);
    assertEquals(letters.length, 1);
    assertEquals(letters[0].Body, BODY_LEFT_OUT);
    assert(letters[0].MessageAttributes?.masq_original?.StringValue);
    const restored = await redriveAll(t, 1);
    assertEquals(restored.map(digest), [digest(MID)]);
    assert(restored[0] === MID, "restored byte for byte");
  } finally {
    await t.stop();
  }
});
