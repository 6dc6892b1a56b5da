/**
 * README "Delivery guarantees": several masq processes draining one queue together still write every message exactly once: the
 * sum of their summaries' `inserted` is the number of good messages, and so is the number of rows.
 */
import { assert, assertEquals } from "../assert.ts";
import { checkExactlyOnce, deadLetterIds, queueTotal, seedSynthetic } from "./delivery.ts";
import { collect, killAndReap, spawnMasq, sqsClient, startDatabase, startEmbeddedSqs } from "./harness.ts";

const MESSAGES = 4_000;
const BAD_EVERY = 100;

for (const processes of [2, 4]) {
  Deno.test(`${processes} masq processes draining one queue of ${MESSAGES} write each message exactly once`, async () => {
    const sqs = await startEmbeddedSqs();
    const db = await startDatabase();
    const client = sqsClient(sqs);
    let children: Deno.ChildProcess[] = [];
    try {
      const queueUrl = sqs.createQueue("shared-queue", { VisibilityTimeout: "5" });
      const seeded = await seedSynthetic(sqs, client, "shared-queue", MESSAGES, BAD_EVERY);
      // PGlite's socket server takes 16 connections in all: keep the processes' pools within it.
      const concurrency = db.kind === "pglite" ? String(Math.floor(14 / processes)) : "8";
      children = Array.from(
        { length: processes },
        () =>
          spawnMasq(["run"], {
            queueUrl,
            databaseUrl: db.url,
            extra: { MASQ_CONCURRENCY: concurrency, MASQ_LOG_FORMAT: "json" },
          }),
      );
      const results = await Promise.all(children.map(collect));
      for (const r of results) {
        assertEquals(r.code, 0, r.stderr);
        assert(r.summary !== undefined, `no summary on stdout: ${r.stdout}`);
      }
      const sum = (k: string) => results.reduce((s, r) => s + (r.summary?.[k] ?? 0), 0);
      console.log(
        `${processes} processes: ${results.map((r) => JSON.stringify(r.summary)).join(" ")} -> inserted ${
          sum("inserted")
        }, rejected ${sum("rejected")}, duplicates ${sum("duplicates")}`,
      );
      const working = results.filter((r) => (r.summary?.received ?? 0) > 0).length;
      assert(working >= 2, `only ${working} of ${processes} processes received anything: no competition`);
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
      await Promise.all(children.map((c) => killAndReap(c)));
      client.destroy();
      await db.stop();
      await sqs.stop();
    }
  });
}
