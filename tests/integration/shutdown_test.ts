/**
 * README "Operations" (delivery guarantee): SIGINT/SIGTERM stop receiving, finish and commit what is in flight, delete it
 * and exit 0 with the summary as the last stdout line. Nothing is lost, nothing is left invisible in the queue, and a
 * second run drains the rest without a single duplicate.
 *
 * Two moments for each signal: in the middle of a busy run (receives under way: SQS may already have
 * handed out the messages of a receive that is being answered), and while every worker waits for its
 * commit (the test holds a lock on the ledger and, on PostgreSQL, sees masq's writes waiting on it), so that
 * the batches in flight must be finished after the signal. The test waits for events (ledger rows, writes
 * waiting on the lock, the "stopping" log line), never for a fixed time.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { checkExactlyOnce, ledgerCount, seedSynthetic, waitFor } from "../support/delivery.ts";
import {
  collect,
  hasExited,
  killAndReap,
  runMasqCli,
  spawnMasq,
  waitForOutput,
} from "../support/processes.ts";
import { queryOnce, startDatabase } from "../support/databases.ts";
import { queueDepth, sqsClient } from "../support/sqs.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";

const MESSAGES = 4_000;
const BAD_EVERY = 100;
/** The queue's visibility timeout, s: a stopping masq must be gone well before its messages reappear. */
const VISIBILITY = 15;

for (const held of [false, true]) {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    const moment = held ? "while its commits are held up" : "during a busy run";
    Deno.test(`${signal} ${moment} commits and deletes what is in flight, exits 0, loses nothing`, async () => {
      const sqs = await startEmbeddedSqs();
      const db = await startDatabase();
      const client = sqsClient(sqs);
      let locked = false;
      let child: Deno.ChildProcess | undefined;
      try {
        const queueUrl = sqs.createQueue("stop-queue", { VisibilityTimeout: String(VISIBILITY) });
        const seeded = await seedSynthetic(sqs, client, "stop-queue", MESSAGES, BAD_EVERY);
        // PGlite's socket server interleaves the extended-protocol messages of connections whose queries
        // queued up behind a transaction (results reach the wrong connection): one connection while the
        // test holds a transaction open.
        const pool: Record<string, string> = held && db.kind === "pglite" ? { MASQ_DB_POOL_SIZE: "1" } : {};
        const env = { queueUrl, databaseUrl: db.url, extra: { MASQ_LOG_FORMAT: "json", ...pool } };

        const masq = child = spawnMasq(["run"], env);
        // Busy: batches are being committed, and most of the queue is still ahead.
        assert(
          await waitFor(async () => hasExited(masq) || (await ledgerCount(db)) >= 500, 60_000),
          "no progress",
        );
        assert(!hasExited(masq), "masq finished before it could be signalled");

        let heldBatches = 0;
        let blockedWrites = (): Promise<number> => Promise.resolve(0);
        if (held) {
          // New ledger rows wait for this transaction (on PGlite, every other client does).
          await db.query("BEGIN");
          locked = true;
          await db.query("LOCK TABLE user_logins_ledger IN SHARE MODE");
          // On PostgreSQL, masq's writes waiting on that lock are visible (-1: PGlite cannot show them).
          const [{ pid }] = await db.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
          blockedWrites = async () =>
            db.kind === "pglite" ? -1 : (await queryOnce<{ n: number }>(
              db.url,
              `SELECT count(*)::int AS n FROM pg_stat_activity
               WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE '%INSERT INTO user_logins_ledger%'`,
              [pid],
            ))[0].n;
          assert(
            await waitFor(
              async () =>
                (await queueDepth(client, queueUrl)).inFlight >= 10 && (await blockedWrites()) !== 0,
              30_000,
            ),
            "no batch got in flight and waiting for its write",
          );
          heldBatches = (await queueDepth(client, queueUrl)).inFlight;
        }
        const signalledAt = Date.now();
        masq.kill(signal);
        await waitForOutput(masq, new RegExp(`${signal}: stopping`));
        if (held) {
          // Signalled, and its writes still cannot commit: masq must be waiting for them, not gone.
          assert(!hasExited(masq), "masq exited without finishing the batches it held");
          assert((await blockedWrites()) !== 0, "masq's writes stopped waiting while the ledger was locked");
          await db.query("COMMIT");
          locked = false;
        }
        const res = await collect(masq);
        const stopSeconds = (Date.now() - signalledAt) / 1000;
        // Right after the exit: whatever it received, it deleted.
        const after = await queueDepth(client, queueUrl);

        assertEquals(res.code, 0, res.stderr);
        const summary = res.summary;
        assert(summary !== undefined, `the last stdout line is not the JSON summary: ${res.stdout}`);
        console.log(
          `${signal} ${moment}: exited 0 after ${stopSeconds.toFixed(1)} s` +
            `${held ? ` (${heldBatches} messages in flight at the signal)` : ""}, ` +
            `summary ${JSON.stringify(summary)}, queue after exit ${JSON.stringify(after)}`,
        );
        assert(res.stderr.includes(`${signal}: stopping`), "the stop is logged");
        assert(stopSeconds < VISIBILITY, `took ${stopSeconds} s to stop, beyond the visibility timeout`);
        assertEquals(
          after.inFlight,
          0,
          `messages received and not deleted are left invisible in the queue; masq's log:\n${res.stderr}`,
        );
        assert(after.visible > 0, "the run was stopped early: messages should remain");

        // Nothing lost: every seeded message is written or still in the queue, and the summary agrees.
        const written = await ledgerCount(db);
        assertEquals(written + after.visible, MESSAGES);
        assertEquals(summary.received, written);
        assertEquals(summary.duplicates, 0);
        const rows = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins");
        assertEquals(summary.inserted, rows[0].n);
        const rejected = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins_rejected");
        assertEquals(summary.rejected, rejected[0].n);

        // The rest: no message comes back as a duplicate, since none was left undeleted.
        const second = await runMasqCli(["run"], env);
        assertEquals(second.code, 0, second.stderr);
        assertEquals(second.summary?.received, after.visible);
        assertEquals(second.summary?.duplicates, 0);
        const outcome = await checkExactlyOnce(db, seeded);
        console.log(
          `${signal} ${moment}: lost=${outcome.lost} doubled=${outcome.doubled}, second run ${
            JSON.stringify(second.summary)
          }`,
        );
        assertEquals(outcome.problems, []);
        assertEquals(outcome.ledger, MESSAGES);
        assertEquals(await queueDepth(client, queueUrl), { visible: 0, inFlight: 0 });
      } finally {
        if (locked) await db.query("ROLLBACK").catch(() => {});
        await killAndReap(child);
        client.destroy();
        await db.stop();
        await sqs.stop();
      }
    });
  }
}
