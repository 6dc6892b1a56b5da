/**
 * README "Operations" (delivery guarantee): "Batches that take long keep their messages invisible (visibility is extended while work is in
 * flight)."
 *
 * The queue's visibility timeout is 2 s; a test-only trigger makes every write to user_logins take 3 s, and
 * an advisory lock in it (one per schema) serialises the writes. The writer may put all the batches into one
 * statement (they arrive within its linger); then that 3 s write alone outlives the messages' visibility,
 * and batches received meanwhile wait for it before their own 3 s write. Without the heartbeat, that batch's messages would become visible again
 * after 2 s, be received by the first worker once it is free, and be written again (received > seeded,
 * duplicates > 0; in fact masq then never finishes: every slow write outlives its messages' visibility, and
 * the test fails on its time limit; tried with the heartbeat disabled).
 *
 * fauxqs runs in its own process: on PGlite, pg_sleep blocks the test process, which must not freeze SQS.
 */
import { CreateQueueCommand } from "@aws-sdk/client-sqs";
import { assert, assertEquals } from "../support/assert.ts";
import { seedQueue } from "../../lib/demo.ts";
import { synthetic } from "../../bench/synthetic.ts";
import { createSchema, startDatabase } from "../support/databases.ts";
import { queueDepth, sqsClient, startFauxqsProcess } from "../support/sqs.ts";
import { runMasqCliWithin } from "../support/processes.ts";

const MESSAGES = 30;
const VISIBILITY_S = 2;
const WRITE_S = 3;

Deno.test("a write slower than the visibility timeout: the heartbeat keeps the batch invisible, each message delivered once", async () => {
  const db = await startDatabase();
  const fq = await startFauxqsProcess();
  const client = sqsClient(fq);
  try {
    await createSchema(db);
    await db.query("CREATE TABLE slow_writes(at timestamptz NOT NULL DEFAULT clock_timestamp())");
    await db.query(`
      CREATE FUNCTION slow_write() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_advisory_xact_lock(hashtext(current_schema()));
        PERFORM pg_sleep(${WRITE_S});
        INSERT INTO slow_writes DEFAULT VALUES;
        RETURN NULL;
      END $$`);
    await db.query(
      "CREATE TRIGGER slow_write AFTER INSERT ON user_logins FOR EACH STATEMENT EXECUTE FUNCTION slow_write()",
    );

    await client.send(
      new CreateQueueCommand({
        QueueName: "login-queue",
        Attributes: { VisibilityTimeout: String(VISIBILITY_S) },
      }),
    );
    const queueUrl = fq.queueUrl("login-queue");
    await seedQueue(fq.endpoint, queueUrl, Array.from({ length: MESSAGES }, (_, i) => synthetic(i)));

    const res = await runMasqCliWithin(60_000, ["run"], {
      queueUrl,
      databaseUrl: db.url,
      extra: {
        MASQ_CONCURRENCY: "2",
        MASQ_WAIT_SECONDS: "1",
        MASQ_LOG_FORMAT: "json",
        ...(db.kind === "pglite" ? { MASQ_DB_POOL_SIZE: "1" } : {}),
      },
    });
    assertEquals(res.code, 0, res.stderr.slice(-4000));
    assert(
      res.stderr.includes(`"visibility_timeout_s":${VISIBILITY_S}`),
      "masq did not use the queue's timeout",
    );

    // Every write really was slower than the visibility timeout.
    const [slow] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM slow_writes");
    assert(slow.n >= 1, "no slow write");

    // Each message was delivered exactly once: none became visible again while its batch was written.
    const s = res.summary!;
    assertEquals(
      { received: s.received, inserted: s.inserted, duplicates: s.duplicates, rejected: s.rejected },
      { received: MESSAGES, inserted: MESSAGES, duplicates: 0, rejected: 0 },
      "a message was redelivered during a slow write",
    );
    assert(
      !/visibility heartbeat failed|visibility extension refused/.test(res.stderr),
      res.stderr.slice(-3000),
    );
    const [counts] = await db.query<{ rows: number; users: number; ledger: number }>(
      `SELECT (SELECT count(*)::int FROM user_logins) AS rows,
              (SELECT count(DISTINCT user_id)::int FROM user_logins) AS users,
              (SELECT count(*)::int FROM user_logins_ledger) AS ledger`,
    );
    assertEquals(counts, { rows: MESSAGES, users: MESSAGES, ledger: MESSAGES });
    assertEquals(await queueDepth(client, queueUrl), { visible: 0, inFlight: 0 });
  } finally {
    client.destroy();
    await fq.stop();
    await db.stop();
  }
});
