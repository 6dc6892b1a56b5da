/**
 * docs/postgres.md "Statement and lock timeouts": `masq run` as a real login role whose `statement_timeout`
 * or `lock_timeout` is set with ALTER ROLE, as a real subprocess. A statement that times out again and again
 * gets smaller until it passes; one row that cannot pass stops the run with exit 2 naming statement_timeout;
 * a SIGTERM while writes are being retried stops the run within seconds, exit 0, nothing lost or doubled.
 * The server's slowness is real too: a trigger that sleeps per row (pg_sleep), so the sizes are not left
 * to the machine's speed.
 */
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { roleNames } from "../../lib/sink/schema.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";
import { checkExactlyOnce, queueTotal, seedSynthetic } from "../support/delivery.ts";
import { collect, killAndReap, runMasqCli, spawnMasq, waitForOutput } from "../support/processes.ts";
import { startDatabase, type TestDatabase } from "../support/databases.ts";
import { sqsClient } from "../support/sqs.ts";
import { createLogin, type DbLogin, NO_LOGIN_ROLES } from "../support/lifecycle.ts";

/** Makes every insert into user_logins take `ms` per row. */
async function slowRows(db: TestDatabase, ms: number): Promise<void> {
  await db.query(`CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_sleep(${ms / 1000}); RETURN NEW; END $$`);
  await db.query(
    "CREATE TRIGGER slow_row BEFORE INSERT ON user_logins FOR EACH ROW EXECUTE FUNCTION slow_row()",
  );
}

async function withWriter(db: TestDatabase, setting: string, fn: (login: DbLogin) => Promise<void>) {
  const login = await createLogin(db, roleNames(db.rolePrefix).writer, "app");
  try {
    await db.query(`ALTER ROLE ${login.name} SET ${setting}`);
    await fn(login);
  } finally {
    await login.drop();
  }
}

const BAD_EVERY = 50;

Deno.test({
  name:
    "run as a login whose statement_timeout is too short for full statements writes smaller ones, every message once",
  ignore: NO_LOGIN_ROLES !== undefined,
}, async () => {
  const db = await startDatabase();
  const sqs = await startEmbeddedSqs();
  const client = sqsClient(sqs);
  try {
    // 3 ms a row against 150 ms: 250 rows time out; about 40 pass.
    await slowRows(db, 3);
    await withWriter(db, "statement_timeout = '150ms'", async (login) => {
      const queueUrl = sqs.createQueue("slow", { VisibilityTimeout: "30" });
      const seeded = await seedSynthetic(sqs, client, "slow", 1_000, BAD_EVERY);
      const res = await runMasqCli(["run"], {
        queueUrl,
        databaseUrl: login.url,
        extra: { MASQ_LOG_FORMAT: "json", MASQ_CONCURRENCY: "32" },
      });
      assertEquals(res.code, 0, res.stderr.slice(-3000));
      assertMatch(res.stderr, /statement_timeout\); splitting it, and writing smaller statements/);
      assertEquals((await checkExactlyOnce(db, seeded)).problems, []);
      assertEquals(res.summary?.inserted, seeded.goodUserIds.size);
    });
  } finally {
    client.destroy();
    await sqs.stop();
    await db.stop();
  }
});

Deno.test({
  name:
    "run stops with exit 2 naming statement_timeout when even one row takes longer, the messages left in the queue",
  ignore: NO_LOGIN_ROLES !== undefined,
}, async () => {
  const db = await startDatabase();
  const sqs = await startEmbeddedSqs();
  const client = sqsClient(sqs);
  try {
    await slowRows(db, 300);
    await withWriter(db, "statement_timeout = '50ms'", async (login) => {
      const queueUrl = sqs.createQueue("stuck", { VisibilityTimeout: "30" });
      const seeded = await seedSynthetic(sqs, client, "stuck", 200, 1_000);
      const started = Date.now();
      const res = await runMasqCli(["run"], { queueUrl, databaseUrl: login.url }, { timeoutMs: 90_000 });
      assertEquals(res.code, 2, res.stderr.slice(-3000));
      assertMatch(res.stderr, /masq: statement_timeout: PostgreSQL cancelled a one-row write/);
      assert(Date.now() - started < 60_000, "it says so within a minute");
      const [{ n }] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins_ledger");
      assertEquals(n, 0);
      assertEquals(await queueTotal(client, queueUrl), seeded.total, "every message is still in the queue");
    });
  } finally {
    client.destroy();
    await sqs.stop();
    await db.stop();
  }
});

Deno.test({
  name:
    "SIGTERM while writes are retried (lock_timeout against a held lock) stops run within seconds, exit 0, nothing lost",
  ignore: NO_LOGIN_ROLES !== undefined,
}, async () => {
  const db = await startDatabase();
  const sqs = await startEmbeddedSqs();
  const client = sqsClient(sqs);
  let child: Deno.ChildProcess | undefined;
  let locked = false;
  try {
    await withWriter(db, "lock_timeout = '20ms'", async (login) => {
      const queueUrl = sqs.createQueue("locked", { VisibilityTimeout: "5" });
      const seeded = await seedSynthetic(sqs, client, "locked", 600, BAD_EVERY);
      // Every write waits for this lock and gives up after 20 ms (55P03, retried with backoff).
      await db.query("BEGIN");
      locked = true;
      await db.query("LOCK TABLE user_logins_ledger IN SHARE MODE");
      child = spawnMasq(["run", "--follow"], {
        queueUrl,
        databaseUrl: login.url,
        extra: { MASQ_LOG_FORMAT: "json" },
      });
      await waitForOutput(
        child,
        /database write failed, retrying(.|\n)*database write failed, retrying(.|\n)*"attempt":3/,
        {
          timeoutMs: 60_000,
        },
      );
      const signalled = Date.now();
      child.kill("SIGTERM");
      const stopped = await collect(child);
      const took = Date.now() - signalled;
      assertEquals(stopped.code, 0, stopped.stderr.slice(-3000));
      assert(took < 8_000, `stopped ${took} ms after SIGTERM`);
      assertMatch(stopped.stderr, /stopping: a failed write is not retried/);
      await db.query("ROLLBACK");
      locked = false;
      const [{ n }] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins_ledger");
      assertEquals(n, 0, "nothing was written while the lock was held");

      const rerun = await runMasqCli(["run"], { queueUrl, databaseUrl: login.url });
      assertEquals(rerun.code, 0, rerun.stderr.slice(-3000));
      assertEquals((await checkExactlyOnce(db, seeded)).problems, []);
    });
  } finally {
    await killAndReap(child);
    if (locked) await db.query("ROLLBACK").catch(() => {});
    client.destroy();
    await sqs.stop();
    await db.stop();
  }
});
