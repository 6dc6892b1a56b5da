/**
 * README "Operations" (delivery guarantee): several masq processes draining one queue together still write every message
 * exactly once: the sum of their summaries' `inserted` is the number of good messages, and so is the number
 * of rows.
 *
 * On PostgreSQL the competition is forced rather than hoped for: the test holds a SHARE lock on the ledger
 * while the processes start, so no batch can commit, and releases it only once more writes wait on it than
 * any (processes - 1) processes could have under way (WRITE_STATEMENTS each), i.e. once every process has
 * received and is writing. (On embedded
 * PGlite, which cannot show other sessions' lock waits, how many processes got work is only reported.)
 */
import { assert, assertEquals } from "../support/assert.ts";
import { WRITE_STATEMENTS } from "../../lib/pipeline.ts";
import { checkExactlyOnce, deadLetterIds, queueTotal, seedSynthetic, waitFor } from "../support/delivery.ts";
import { collect, hasExited, killAndReap, spawnMasq } from "../support/processes.ts";
import { createSchema, queryOnce, startDatabase } from "../support/databases.ts";
import { sqsClient } from "../support/sqs.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";

const MESSAGES = 4_000;
const BAD_EVERY = 100;

for (const processes of [2, 4]) {
  Deno.test(`${processes} masq processes draining one queue of ${MESSAGES} write each message exactly once`, async () => {
    const sqs = await startEmbeddedSqs();
    const db = await startDatabase();
    const client = sqsClient(sqs);
    let children: Deno.ChildProcess[] = [];
    let locked = false;
    try {
      const queueUrl = sqs.createQueue("shared-queue", { VisibilityTimeout: "5" });
      const seeded = await seedSynthetic(sqs, client, "shared-queue", MESSAGES, BAD_EVERY);
      // PGlite's socket server takes 16 connections in all: keep the processes' pools within it.
      const concurrency = db.kind === "pglite" ? Math.floor(14 / processes) : 4;
      if (db.kind === "postgresql") {
        await createSchema(db);
        await db.query("BEGIN");
        locked = true;
        await db.query("LOCK TABLE user_logins_ledger IN SHARE MODE");
      }
      children = Array.from(
        { length: processes },
        () =>
          spawnMasq(["run"], {
            queueUrl,
            databaseUrl: db.url,
            extra: {
              MASQ_CONCURRENCY: String(concurrency),
              MASQ_DB_POOL_SIZE: String(concurrency),
              MASQ_LOG_FORMAT: "json",
            },
          }),
      );
      if (locked) {
        const [{ pid }] = await db.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
        const waiting = async () =>
          (await queryOnce<{ n: number }>(
            db.url,
            `SELECT count(*)::int AS n FROM pg_stat_activity
             WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE '%INSERT INTO user_logins_ledger%'`,
            [pid],
          ))[0].n;
        // A process has at most WRITE_STATEMENTS writes under way (fewer with a smaller pool).
        const enough = (processes - 1) * Math.min(WRITE_STATEMENTS, concurrency) + 1;
        assert(
          await waitFor(async () => children.some(hasExited) || (await waiting()) >= enough, 60_000),
          `fewer than ${enough} writes waited on the ledger lock within 60 s: not every process got work`,
        );
        assert(!children.some(hasExited), "a masq process ended while the ledger was locked");
        await db.query("COMMIT");
        locked = false;
      }
      const results = await Promise.all(children.map(collect));
      for (const r of results) {
        assertEquals(r.code, 0, r.stderr);
        assert(r.summary !== undefined, `no summary on stdout: ${r.stdout}`);
      }
      const sum = (k: string) => results.reduce((s, r) => s + (r.summary?.[k] ?? 0), 0);
      const working = results.filter((r) => (r.summary?.received ?? 0) > 0).length;
      console.log(
        `${processes} processes: ${results.map((r) => JSON.stringify(r.summary)).join(" ")} -> inserted ${
          sum("inserted")
        }, rejected ${sum("rejected")}, duplicates ${sum("duplicates")}; ${working} received messages`,
      );
      if (db.kind === "postgresql") {
        assertEquals(
          working,
          processes,
          "every process had batches waiting on the lock, so every one received",
        );
      }
      assertEquals(sum("inserted"), seeded.goodUserIds.size);
      assertEquals(sum("rejected"), seeded.badIds.size);
      // Every delivery is counted once: as a new row, a new rejection or a duplicate.
      assertEquals(sum("received"), sum("inserted") + sum("rejected") + sum("duplicates"));

      const outcome = await checkExactlyOnce(db, seeded);
      console.log(`competing ${processes}: lost=${outcome.lost} doubled=${outcome.doubled}`);
      assertEquals(outcome.problems, []);
      assertEquals(outcome.rows, seeded.goodUserIds.size);
      assertEquals(outcome.ledger, MESSAGES);
      assertEquals(await queueTotal(client, queueUrl), 0);
      const dlq = await deadLetterIds(client, `${queueUrl}-dlq`);
      assertEquals([...dlq.ids].sort(), [...seeded.badIds].sort());
    } finally {
      if (locked) await db.query("ROLLBACK").catch(() => {});
      await Promise.all(children.map((c) => killAndReap(c)));
      client.destroy();
      await db.stop();
      await sqs.stop();
    }
  });
}
