/**
 * README "Delivery guarantees": `kill -9` at any moment loses and doubles nothing. The real masq CLI is SIGKILLed repeatedly,
 * some kills at random moments after start (start-up included), some while it is writing (after the ledger
 * has grown), restarted each time, then run cleanly to completion; the database must hold exactly one row
 * per good message and one rejection per bad one.
 *
 * MASQ_CRASH_MESSAGES overrides the message count, MASQ_CRASH_SEED replays a kill schedule.
 */
import { assert, assertEquals } from "../assert.ts";
import {
  checkExactlyOnce,
  deadLetterIds,
  ledgerCount,
  prng,
  queueTotal,
  seedSynthetic,
  waitFor,
} from "./delivery.ts";
import { collect, runMasqCli, spawnMasq, sqsClient, startDatabase, startEmbeddedSqs } from "./harness.ts";

const REAL_PG = Boolean(Deno.env.get("TEST_DATABASE_URL"));
// 20,000 drains in ~10 s on PostgreSQL and ~13 s on embedded PGlite here, so both get the full count.
const MESSAGES = Number(Deno.env.get("MASQ_CRASH_MESSAGES") ?? 20_000);
const BAD_EVERY = 100;
const KILLS = 8;
// Each killed run may commit at most this many, so that every kill lands before the queue drains.
const PER_RUN_CAP = Math.floor((MESSAGES * 0.8) / KILLS);
const SEED = Number(Deno.env.get("MASQ_CRASH_SEED") ?? Math.floor(Math.random() * 2 ** 31));

Deno.test(
  `masq loses and doubles nothing when SIGKILLed repeatedly (${MESSAGES} messages, ${
    REAL_PG ? "PostgreSQL" : "embedded PGlite"
  })`,
  async () => {
    const random = prng(SEED);
    const between = (lo: number, hi: number) => Math.round(lo + random() * (hi - lo));
    const sqs = await startEmbeddedSqs();
    const db = await startDatabase();
    const client = sqsClient(sqs);
    try {
      // A short visibility timeout: what a killed run held comes back quickly.
      const queueUrl = sqs.createQueue("crash-queue", { VisibilityTimeout: "3" });
      const seeded = await seedSynthetic(sqs, client, "crash-queue", MESSAGES, BAD_EVERY);
      const env = { queueUrl, databaseUrl: db.url, extra: { MASQ_LOG_FORMAT: "json" } };

      let kills = 0;
      let midWrite = 0;
      const log: string[] = [];
      for (let attempt = 0; kills < KILLS && attempt < KILLS * 2; attempt++) {
        const before = await ledgerCount(db);
        const child = spawnMasq(["run"], env);
        const t0 = Date.now();
        const done = collect(child);
        let exited = false;
        done.then(() => (exited = true), () => (exited = true));
        let how: string;
        if (attempt % 2 === 0) {
          // A random moment: start-up, connecting, receiving or writing.
          const ms = between(300, 2500);
          await waitFor(async () => exited || (await ledgerCount(db)) >= before + PER_RUN_CAP, ms, 50);
          how = `at random after ${Date.now() - t0} ms (drawn ${ms} ms, cap +${PER_RUN_CAP} rows)`;
        } else {
          // While writes are happening: once this run has committed some batches.
          const grow = between(100, Math.min(1500, PER_RUN_CAP));
          await waitFor(async () => exited || (await ledgerCount(db)) >= before + grow, 60_000);
          const extra = between(0, 300);
          await new Promise((r) => setTimeout(r, extra));
          how = `mid-write after ${Date.now() - t0} ms (+${grow} ledger rows, then ${extra} ms)`;
        }
        const atKill = await ledgerCount(db);
        if (!exited) child.kill("SIGKILL");
        const res = await done;
        const status = await child.status;
        if (status.signal === "SIGKILL") {
          kills++;
          if (atKill > before) midWrite++;
          log.push(`kill ${kills} ${how}: ledger ${before} -> ${atKill}`);
        } else {
          // It finished before the kill (the queue drained): not a crash; say so and go on.
          log.push(`run ended by itself (code ${res.code}) ${how}: ledger ${before} -> ${atKill}`);
          assertEquals(res.code, 0, res.stderr);
        }
      }
      console.log(log.join("\n"));
      assert(kills >= 5, `only ${kills} runs could be killed before the queue drained`);
      assert(midWrite >= 2, `only ${midWrite} kills landed while rows were being written`);

      // A clean run finishes the job, waiting out what the killed runs left in flight.
      const final = await runMasqCli(["run"], env);
      assertEquals(final.code, 0, final.stderr);

      const outcome = await checkExactlyOnce(db, seeded);
      console.log(
        `crash test: lost=${outcome.lost} doubled=${outcome.doubled} kills=${kills} ` +
          `(${midWrite} after writes began, seed ${SEED}, ${MESSAGES} messages on ${db.kind}, final run ${
            JSON.stringify(final.summary)
          })`,
      );
      assertEquals(outcome.problems, [], `seed ${SEED}`);
      assertEquals(outcome.lost, 0);
      assertEquals(outcome.doubled, 0);
      assertEquals(outcome.rows, seeded.goodUserIds.size);
      assertEquals(outcome.rejected, seeded.badIds.size);
      assertEquals(outcome.ledger, MESSAGES);
      assertEquals(await queueTotal(client, queueUrl), 0);

      // Every bad message reached the dead-letter queue; a kill between the send and the commit may have
      // forwarded one twice (at-least-once), never a good one.
      const dlq = await deadLetterIds(client, `${queueUrl}-dlq`);
      assertEquals([...dlq.ids].sort(), [...seeded.badIds].sort());
      assert(dlq.count >= seeded.badIds.size);
      console.log(`dead-letter queue: ${dlq.count} messages for ${dlq.ids.size} bad ids`);
    } finally {
      client.destroy();
      await db.stop();
      await sqs.stop();
    }
  },
);
