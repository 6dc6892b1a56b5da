/**
 * README "Operations" (delivery guarantee): `kill -9` at any moment loses and doubles nothing. The real masq CLI is
 * SIGKILLed eight times, each kill on an observed event rather than after a random delay, so that every run
 * of the test hits every kind of moment:
 *
 * - start-up: once masq has logged "connected to PostgreSQL" (schema created, SQS not opened yet);
 * - between commits: once this run has committed some more ledger rows (receives, writes and deletes are
 *   under way in its workers);
 * - mid-write (real PostgreSQL only): the test holds a SHARE lock on the ledger, so masq's batch writes
 *   block inside their INSERT; the kill comes once PostgreSQL shows a masq write waiting on that lock, i.e.
 *   with a batch sent and not committed. The server may still commit such a write after the kill (it had
 *   the whole statement), which makes it also a kill between commit and delete.
 *
 * Each killed run is restarted; then a clean run drains the rest, and the database must hold exactly one row
 * per good message and one rejection per bad one. The seed (fixed; MASQ_CRASH_SEED replays another) draws
 * how many rows a "between commits" kill waits for; MASQ_CRASH_MESSAGES overrides the message count.
 */
import { assert, assertEquals } from "../support/assert.ts";
import {
  checkExactlyOnce,
  deadLetterIds,
  ledgerCount,
  prng,
  queueTotal,
  seedSynthetic,
  waitFor,
} from "../support/delivery.ts";
import {
  collect,
  hasExited,
  killAndReap,
  runMasqCli,
  spawnMasq,
  stderrSoFar,
  waitForOutput,
} from "../support/processes.ts";
import { queryOnce, startDatabase } from "../support/databases.ts";
import { sqsClient } from "../support/sqs.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";

const REAL_PG = Boolean(Deno.env.get("TEST_DATABASE_URL"));
const MESSAGES = Number(Deno.env.get("MASQ_CRASH_MESSAGES") ?? 10_000);
const BAD_EVERY = 100;
const SEED = Number(Deno.env.get("MASQ_CRASH_SEED") ?? 1_000_003);

type Moment = "start-up" | "between commits" | "mid-write";
const PLAN: Moment[] = [
  "start-up",
  "between commits",
  "mid-write",
  "between commits",
  "mid-write",
  "start-up",
  "between commits",
  "mid-write",
];

/** masq's batch write (WRITE_SQL) in pg_stat_activity. */
const WRITE_QUERY = "%INSERT INTO user_logins_ledger%";

Deno.test(
  `masq loses and doubles nothing when SIGKILLed at start-up, between commits${
    REAL_PG ? " and mid-write" : ""
  } (${MESSAGES} messages, ${REAL_PG ? "PostgreSQL" : "embedded PGlite"})`,
  async () => {
    const random = prng(SEED);
    const sqs = await startEmbeddedSqs();
    const db = await startDatabase();
    const client = sqsClient(sqs);
    let child: Deno.ChildProcess | undefined;
    let locked = false;
    try {
      // PGlite shows no other sessions' lock waits: there the mid-write kills become between-commit kills.
      const plan = PLAN.map((m) => db.kind === "pglite" && m === "mid-write" ? "between commits" : m);
      console.log(`crash test: seed ${SEED}, ${MESSAGES} messages on ${db.kind}, plan ${plan.join(", ")}`);
      // A short visibility timeout: what a killed run held comes back quickly.
      const queueUrl = sqs.createQueue("crash-queue", { VisibilityTimeout: "3" });
      const seeded = await seedSynthetic(sqs, client, "crash-queue", MESSAGES, BAD_EVERY);
      const env = { queueUrl, databaseUrl: db.url, extra: { MASQ_LOG_FORMAT: "json" } };

      const log: string[] = [];
      for (const [i, moment] of plan.entries()) {
        const before = await ledgerCount(db);
        const run = spawnMasq(["run"], env);
        child = run;
        const t0 = Date.now();
        let how: string;
        /** Server sessions of masq's writes that were waiting on the lock when masq was killed. */
        let orphans: number[] = [];
        if (moment === "start-up") {
          await waitForOutput(run, /connected to PostgreSQL/);
          how = "once it logged 'connected to PostgreSQL'";
        } else if (moment === "between commits") {
          const grow = Math.round(50 + random() * 450);
          assert(
            await waitFor(async () => hasExited(run) || (await ledgerCount(db)) >= before + grow, 60_000, 20),
            `kill ${i + 1}: the ledger did not grow by ${grow} within 60 s`,
          );
          how = `once the ledger grew by ${grow}`;
        } else {
          await db.query("BEGIN");
          locked = true;
          await db.query("LOCK TABLE user_logins_ledger IN SHARE MODE");
          const [{ pid }] = await db.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
          const blockedWrites = async () =>
            (await queryOnce<{ pid: number }>(
              db.url,
              `SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE $2`,
              [pid, WRITE_QUERY],
            )).map((r) => r.pid);
          assert(
            await waitFor(async () => hasExited(run) || (await blockedWrites()).length > 0, 60_000, 20),
            `kill ${i + 1}: no masq write waited on the ledger lock within 60 s`,
          );
          // The writes waiting at the kill (a few more may join before it): their sessions outlive masq.
          orphans = await blockedWrites();
          how = `with ${orphans.length} batch write(s) waiting on the test's lock on the ledger`;
        }
        assert(
          !hasExited(run),
          `kill ${i + 1} (${moment}): masq ended before the kill:\n${stderrSoFar(run).slice(-3000)}`,
        );
        const atKill = await ledgerCount(db);
        run.kill("SIGKILL");
        const res = await collect(run);
        child = undefined;
        assertEquals(
          res.signal,
          "SIGKILL",
          `kill ${i + 1}: masq was not killed:\n${res.stderr.slice(-3000)}`,
        );
        let afterwards = "";
        if (locked) {
          await db.query("ROLLBACK");
          locked = false;
          // The killed run's server sessions may still commit the writes they were given.
          const ended = await waitFor(async () =>
            (await queryOnce<{ n: number }>(
              db.url,
              "SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1) AND state = 'active'",
              [orphans],
            ))[0].n === 0, 30_000);
          assert(ended, `kill ${i + 1}: the killed run's writes were still running 30 s after the lock`);
          afterwards = `, ${await ledgerCount(db)} once its orphaned writes ended`;
        }
        log.push(
          `kill ${i + 1} ${moment} after ${
            Date.now() - t0
          } ms, ${how}: ledger ${before} -> ${atKill}${afterwards}`,
        );
      }
      console.log(log.join("\n"));

      // A clean run finishes the job, waiting out what the killed runs left in flight.
      const final = await runMasqCli(["run"], env);
      assertEquals(final.code, 0, final.stderr);

      const outcome = await checkExactlyOnce(db, seeded);
      console.log(
        `crash test: lost=${outcome.lost} doubled=${outcome.doubled} after ${plan.length} kills (seed ${SEED}), ` +
          `final run ${JSON.stringify(final.summary)}`,
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
      if (locked) await db.query("ROLLBACK").catch(() => {});
      await killAndReap(child);
      client.destroy();
      await db.stop();
      await sqs.stop();
    }
  },
);
