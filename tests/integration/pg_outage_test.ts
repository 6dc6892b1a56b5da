/**
 * README "Operations" (delivery guarantee): "a Postgres restart ... mid-run: nothing lost, nothing doubled; outages are retried with capped
 * exponential backoff and jitter, and logged" — and a database URL's password never reaches the log.
 *
 * A throwaway cluster (initdb, scram-sha-256 password auth) is stopped with `pg_ctl stop -m fast` while one
 * masq process is writing into it, kept down ~10 s, and started again on the same port.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { isBadIndex, synthetic } from "../../bench/synthetic.ts";
import { collect, hasExited, killAndReap, spawnMasq } from "../support/processes.ts";
import {
  createSchema,
  queryOnce,
  scratchPostgresUnavailable,
  startScratchPostgres,
} from "../support/databases.ts";
import { queueDepth, receiveAll, sqsClient } from "../support/sqs.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";

const MESSAGES = 5_000;
const BAD_EVERY = 50;
const MAX_BACKOFF_MS = 2_000;
const OUTAGE_MS = 10_000;

const SKIP = scratchPostgresUnavailable();
if (SKIP) console.warn(`pg_outage_test: skipped: ${SKIP}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface LogLine {
  level: string;
  msg: string;
  attempt?: number;
  delay_ms?: number;
  [k: string]: unknown;
}

Deno.test({
  name:
    `PostgreSQL stopped for ~10 s mid-run: masq retries with capped backoff, finishes, nothing lost or doubled${
      SKIP ? ` (skipped: ${SKIP})` : ""
    }`,
  ignore: SKIP !== undefined,
  async fn() {
    // A password that must never be printed (the URL carries it; scram-sha-256 makes the server need it).
    const password = `pw-${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
    const cluster = await startScratchPostgres({ password });
    await createSchema({ url: cluster.url }); // masq migrate: run itself makes no schema
    const sqs = await startEmbeddedSqs();
    const client = sqsClient(sqs);
    let masq: Deno.ChildProcess | undefined;
    let result: ReturnType<typeof collect> | undefined;
    try {
      const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "6" });
      for (let i = 0; i < MESSAGES; i++) sqs.send("login-queue", synthetic(i, BAD_EVERY));
      let bad = 0;
      for (let i = 0; i < MESSAGES; i++) if (isBadIndex(i, BAD_EVERY)) bad++;
      const good = MESSAGES - bad;

      masq = spawnMasq(["run"], {
        queueUrl,
        databaseUrl: cluster.url,
        extra: {
          MASQ_CONCURRENCY: "4",
          MASQ_MAX_BACKOFF_MS: String(MAX_BACKOFF_MS),
          MASQ_LOG_FORMAT: "json",
          MASQ_WAIT_SECONDS: "1",
        },
        // The wait for rows (up to 60 s), the outage, and the recovery.
      }, { timeoutMs: 60_000 + OUTAGE_MS + 90_000 });
      result = collect(masq);

      // Once rows are flowing, take the database away under the running process.
      let rowsAtStop = 0;
      const deadline = Date.now() + 60_000;
      for (;;) {
        assert(Date.now() < deadline, "no rows reached PostgreSQL within 60 s");
        if (hasExited(masq)) {
          throw new Error(`masq ended before the outage:\n${(await result).stderr.slice(-4000)}`);
        }
        try {
          rowsAtStop =
            (await queryOnce<{ n: number }>(cluster.url, "SELECT count(*)::int AS n FROM user_logins"))[0]
              .n;
        } catch { /* the table is not created yet */ }
        if (rowsAtStop >= 200) break;
        await sleep(25);
      }
      await cluster.stop();
      assert(
        !hasExited(masq) && rowsAtStop < good,
        `masq finished (${rowsAtStop} rows) before the outage began`,
      );
      await sleep(OUTAGE_MS);
      await cluster.start();

      const res = await result;
      masq = undefined;
      assertEquals(res.code, 0, res.stderr.slice(-4000));

      // Retries were logged, capped, and the same process recovered.
      const lines: LogLine[] = res.stderr.split("\n").filter((l) => l.startsWith("{")).map((l) =>
        JSON.parse(l)
      );
      const retries = lines.filter((l) => l.msg === "database write failed, retrying");
      assert(retries.length > 0, "no 'database write failed, retrying' line in the log");
      for (const r of retries) {
        assertEquals(r.level, "warn");
        assert(
          typeof r.delay_ms === "number" && r.delay_ms >= 1 && r.delay_ms <= MAX_BACKOFF_MS,
          JSON.stringify(r),
        );
        assert(typeof r.error === "string" && r.error !== "", JSON.stringify(r));
      }
      // The backoff grew past its first step (attempt 3 has a ceiling of 800 ms), i.e. it is exponential,
      // and the cap held throughout a ~10 s outage.
      assert(
        Math.max(...retries.map((r) => r.attempt ?? 0)) >= 3,
        "fewer than 3 attempts during a 10 s outage",
      );
      assert(lines.some((l) => l.msg === "database write: recovered"), "no 'database write: recovered' line");

      // No secret anywhere in the output, though connection errors were logged.
      for (const [name, text] of [["stderr", res.stderr], ["stdout", res.stdout]]) {
        assert(!text.includes(password), `the database password appears in ${name}`);
        assert(!text.includes(encodeURIComponent(password)), `the encoded password appears in ${name}`);
      }
      assert(
        res.stderr.includes("postgres://postgres:***@127.0.0.1"),
        "the redacted database URL is not logged",
      );

      // Nothing lost, nothing doubled.
      const s = res.summary!;
      assertEquals(
        { inserted: s.inserted, rejected: s.rejected, duplicates: s.duplicates, received: s.received },
        { inserted: good, rejected: bad, duplicates: 0, received: MESSAGES },
        "summary (duplicates > 0 would mean a message was received again while its batch was still retrying)",
      );
      const [counts] = await queryOnce<{ rows: number; users: number; ledger: number; rejected: number }>(
        cluster.url,
        `SELECT (SELECT count(*)::int FROM user_logins) AS rows,
                (SELECT count(DISTINCT user_id)::int FROM user_logins) AS users,
                (SELECT count(*)::int FROM user_logins_ledger) AS ledger,
                (SELECT count(*)::int FROM user_logins_rejected) AS rejected`,
      );
      assertEquals(counts, { rows: good, users: good, ledger: MESSAGES, rejected: bad });
      assertEquals(await queueDepth(client, queueUrl), { visible: 0, inFlight: 0 });
      assertEquals((await receiveAll(client, `${queueUrl}-dlq`)).length, bad);
    } finally {
      await killAndReap(masq, result);
      client.destroy();
      await sqs.stop();
      await cluster.destroy();
    }
  },
});
