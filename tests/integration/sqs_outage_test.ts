/**
 * README "Operations" (delivery guarantee): "an SQS outage mid-run: nothing lost, nothing doubled; outages are retried with capped
 * exponential backoff and jitter, and logged", and "a delete that fails after a commit must not create a
 * duplicate on redelivery".
 *
 * fauxqs runs in a process of its own (tests/support/fauxqs_server.ts) with SQLite persistence; it is
 * SIGKILLed while masq is mid-run and started again a few seconds later on the same port and data directory.
 */
import { DatabaseSync } from "node:sqlite";
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { assert, assertEquals } from "../support/assert.ts";
import { isBadIndex, synthetic } from "../../bench/synthetic.ts";
import { createPostgresSink } from "../../lib/sink/postgres.ts";
import { silentLogger } from "../../lib/log.ts";
import { collect, hasExited, killAndReap, spawnMasq, waitForOutput } from "../support/processes.ts";
import { type FauxqsProcess, queueDepth, receiveAll, sqsClient, startFauxqsProcess } from "../support/sqs.ts";
import { startDatabase } from "../support/databases.ts";

const BAD_EVERY = 40;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function seed(client: SQSClient, queueUrl: string, bodies: string[]): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < bodies.length; i += 10) {
    const res = await client.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: bodies.slice(i, i + 10).map((b, j) => ({ Id: String(j), MessageBody: b })),
      }),
    );
    assertEquals(res.Failed ?? [], []);
    for (const s of res.Successful ?? []) ids[i + Number(s.Id)] = s.MessageId!;
  }
  return ids;
}

/** The messages fauxqs has persisted for a queue, read straight from its SQLite file (process stopped). */
function persisted(dataDir: string, queue: string): { id: string; inFlight: boolean }[] {
  const db = new DatabaseSync(`${dataDir}/fauxqs.db`, { readOnly: true });
  try {
    const now = Date.now();
    return (db.prepare(
      "SELECT message_id, receipt_handle, visibility_deadline FROM sqs_messages WHERE queue_name = ?",
    )
      .all(queue) as {
        message_id: string;
        receipt_handle: string | null;
        visibility_deadline: number | null;
      }[])
      .map((r) => ({
        id: r.message_id,
        inFlight: r.receipt_handle !== null && (r.visibility_deadline ?? 0) > now,
      }));
  } finally {
    db.close();
  }
}

Deno.test("fauxqs (the emulator the outage test relies on) keeps in-flight messages across SIGKILL and restart", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "masq-fauxqs-" });
  let fq: FauxqsProcess | undefined = await startFauxqsProcess({ dataDir });
  let client = sqsClient(fq);
  try {
    const { QueueUrl } = await client.send(
      new CreateQueueCommand({ QueueName: "q", Attributes: { VisibilityTimeout: "60" } }),
    );
    await client.send(new SendMessageCommand({ QueueUrl, MessageBody: "a" }));
    await client.send(new SendMessageCommand({ QueueUrl, MessageBody: "b" }));
    const got = await client.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 1 }));
    const [held] = got.Messages ?? [];
    assert(held?.ReceiptHandle, "nothing received");

    const port = fq.port;
    await fq.kill("SIGKILL");
    client.destroy();
    assertEquals(persisted(dataDir, "q").map((m) => m.inFlight).sort(), [false, true]);
    fq = await startFauxqsProcess({ port, dataDir });
    client = sqsClient(fq);

    // Still in flight (not redelivered), and its receipt handle still deletes it.
    assertEquals(await queueDepth(client, QueueUrl!), { visible: 1, inFlight: 1 });
    await client.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: held.ReceiptHandle }));
    assertEquals(await queueDepth(client, QueueUrl!), { visible: 1, inFlight: 0 });
    const rest = await client.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10 }));
    assertEquals(rest.Messages?.map((m) => m.Body), [held.Body === "a" ? "b" : "a"]);
  } finally {
    client.destroy();
    await fq?.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

interface Outage {
  messages: number;
  /** The queue's visibility timeout, s. */
  visibility: number;
  /** How long fauxqs stays dead, ms. */
  outageMs: number;
  /**
   * Makes every write take this long (a test-only trigger), so that masq's workers spend nearly all their
   * time holding a batch mid-write: when SQS dies, those batches commit and then cannot be deleted.
   */
  slowWriteMs?: number;
}

async function sqsOutage({ messages: MESSAGES, visibility, outageMs, slowWriteMs }: Outage) {
  const dataDir = await Deno.makeTempDir({ prefix: "masq-fauxqs-" });
  const db = await startDatabase();
  let fq: FauxqsProcess | undefined = await startFauxqsProcess({ dataDir });
  let client = sqsClient(fq);
  let masq: Deno.ChildProcess | undefined;
  let result: ReturnType<typeof collect> | undefined;
  try {
    if (slowWriteMs !== undefined) {
      const sink = createPostgresSink(db.url, { poolSize: 1, log: silentLogger });
      try {
        await sink.checkSchema();
      } finally {
        await sink.close();
      }
      await db.query(`
        CREATE FUNCTION slow_write() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(${slowWriteMs / 1000}); RETURN NULL; END $$`);
      await db.query(
        "CREATE TRIGGER slow_write AFTER INSERT ON user_logins_ledger FOR EACH STATEMENT EXECUTE FUNCTION slow_write()",
      );
    }
    await client.send(
      new CreateQueueCommand({
        QueueName: "login-queue",
        Attributes: { VisibilityTimeout: String(visibility) },
      }),
    );
    // fauxqs answers CreateQueue with an sqs.<region>.127.0.0.1 host; masq gets the plain one.
    const queueUrl = fq.queueUrl("login-queue");
    const bodies = Array.from({ length: MESSAGES }, (_, i) => synthetic(i, BAD_EVERY));
    const ids = await seed(client, queueUrl, bodies);
    const badIds = ids.filter((_, i) => isBadIndex(i, BAD_EVERY));
    const good = MESSAGES - badIds.length;

    // The time limit covers the wait for rows (up to 60 s), the outage and the recovery.
    masq = spawnMasq(["run"], {
      queueUrl,
      databaseUrl: db.url,
      extra: {
        MASQ_CONCURRENCY: "4",
        MASQ_MAX_BACKOFF_MS: "1000",
        MASQ_LOG_FORMAT: "json",
        MASQ_WAIT_SECONDS: "1",
        ...(db.kind === "pglite" ? { MASQ_DB_POOL_SIZE: "1" } : {}),
      },
    }, { timeoutMs: 60_000 + outageMs + 90_000 });
    result = collect(masq);

    let rows = 0;
    const deadline = Date.now() + 60_000;
    while (rows < MESSAGES * 0.15) {
      assert(Date.now() < deadline, "no rows within 60 s");
      if (hasExited(masq)) {
        throw new Error(`masq ended before the outage:\n${(await result).stderr.slice(-4000)}`);
      }
      await sleep(50);
      try {
        rows = (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins"))[0].n;
      } catch { /* not created yet */ }
    }
    const port = fq.port;
    await fq.kill("SIGKILL");
    const killedAt = Date.now();
    client.destroy();

    // What survived the kill: every seeded message is either still in fauxqs's store or already written
    // (a message leaves SQS only after its ledger record commits, so read the store first, then the ledger).
    const stored = persisted(dataDir, "login-queue");
    if (slowWriteMs !== undefined) {
      // PostgreSQL is up: the batches masq held mid-write commit, then their deletes fail. Once one has
      // failed, at least one committed batch is in flight in the store read above.
      await waitForOutput(masq, /"msg":"delete failed, retrying"/, { timeoutMs: 30_000 });
    }
    const ledgerAfterKill = new Set(
      (await db.query<{ message_id: string }>("SELECT message_id FROM user_logins_ledger")).map((r) =>
        r.message_id
      ),
    );
    const storedIds = new Set(stored.map((m) => m.id));
    assertEquals(ids.filter((id) => !storedIds.has(id) && !ledgerAfterKill.has(id)), [], "lost by the kill");
    assert(ledgerAfterKill.size < MESSAGES, "masq finished before the outage began");
    // Held by masq at the kill, committed (before it or just after), not deleted: SQS has them in flight.
    const committedNotDeleted = stored.filter((m) => m.inFlight && ledgerAfterKill.has(m.id)).length;

    await sleep(Math.max(0, killedAt + outageMs - Date.now()));
    fq = await startFauxqsProcess({ port, dataDir });
    client = sqsClient(fq);

    const res = await result;
    masq = undefined;
    assertEquals(res.code, 0, res.stderr.slice(-4000));

    // The outage was seen, retried and logged; the same process recovered.
    const lines = res.stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    const sqsRetries = lines.filter((l) =>
      /^(receive|delete|queue counts|dead-letter send) failed, retrying$/.test(l.msg)
    );
    assert(sqsRetries.length > 0, `no SQS retry logged:\n${res.stderr.slice(-3000)}`);
    for (const r of sqsRetries) assert(r.delay_ms >= 1 && r.delay_ms <= 1000, JSON.stringify(r));
    assert(lines.some((l) => / recovered$/.test(l.msg) && !l.msg.startsWith("database")), "no SQS recovery");

    // Exactly-once effect: every message's row or rejection once, never a second row.
    const s = res.summary!;
    assertEquals({ inserted: s.inserted, rejected: s.rejected }, { inserted: good, rejected: badIds.length });
    assert(s.received >= MESSAGES, `received ${s.received} < ${MESSAGES}`);
    if (outageMs < visibility * 1000) {
      // fauxqs restored the in-flight messages with their receipt handles and deadlines, the heartbeat
      // resumed, the pending deletes went through: nothing was delivered twice.
      assertEquals(s.duplicates, 0, "a message was redelivered after a restart shorter than its visibility");
    } else {
      // The visibility of the messages masq held lapsed while SQS was down, so the retried deletes of
      // committed batches came too late (their receipt handles had expired): SQS redelivered them, and the
      // ledger recognised each as a duplicate instead of writing a second row.
      assert(committedNotDeleted > 0, "no batch was between commit and delete when SQS died");
      assert(
        s.duplicates >= committedNotDeleted,
        `duplicates ${s.duplicates} < ${committedNotDeleted} committed-but-undeleted messages`,
      );
    }
    const [counts] = await db.query<{ rows: number; users: number; ledger: number; rejected: number }>(
      `SELECT (SELECT count(*)::int FROM user_logins) AS rows,
              (SELECT count(DISTINCT user_id)::int FROM user_logins) AS users,
              (SELECT count(*)::int FROM user_logins_ledger) AS ledger,
              (SELECT count(*)::int FROM user_logins_rejected) AS rejected`,
    );
    assertEquals(counts, { rows: good, users: good, ledger: MESSAGES, rejected: badIds.length });
    const ledgerIds = (await db.query<{ message_id: string }>("SELECT message_id FROM user_logins_ledger"))
      .map((r) => r.message_id);
    assertEquals(ledgerIds.sort(), [...ids].sort());
    assertEquals(await queueDepth(client, queueUrl), { visible: 0, inFlight: 0 });
    // The dead-letter queue is at-least-once (a send whose reply was lost is sent again): every rejected
    // message is there, identified by its original id.
    const dlq = await receiveAll(client, `${queueUrl}-dlq`);
    const dlqIds = new Set(dlq.map((m) => m.MessageAttributes?.masq_message_id?.StringValue));
    assertEquals([...dlqIds].sort(), [...badIds].sort());
  } finally {
    await killAndReap(masq, result);
    client.destroy();
    await fq?.stop();
    await db.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
}

Deno.test("SQS killed (SIGKILL) mid-run, back within the visibility timeout: masq retries and finishes, nothing delivered twice", () =>
  sqsOutage({ messages: 2_000, visibility: 15, outageMs: 4_000 }));

Deno.test("SQS killed (SIGKILL) mid-run for longer than the visibility timeout: committed-but-undeleted messages come back as duplicates, never as second rows", () =>
  sqsOutage({ messages: 1_000, visibility: 3, outageMs: 6_000, slowWriteMs: 100 }));
