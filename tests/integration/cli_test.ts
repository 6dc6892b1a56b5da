/**
 * The CLI's contract at its edges: help, configuration errors (exit 2, one line, no stack, no secret), and
 * the demo end to end.
 */
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { runMasqCli } from "../support/processes.ts";
import { startDatabase } from "../support/databases.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";

const SECRET = "Sup3r-S3cret-pw";

function assertOneLineError(res: { code: number; stdout: string; stderr: string }, pattern: RegExp) {
  assertEquals(res.code, 2, res.stderr);
  // Progress lines logged before the failure (e.g. "connected to PostgreSQL") are not part of the error.
  const lines = res.stderr.trim().split("\n").filter((l) => !/^\d\d:\d\d:\d\d\.\d{3} (INFO|WARN) /.test(l));
  assertEquals(lines.length, 1, `expected one line, got:\n${res.stderr}`);
  assertMatch(lines[0], pattern);
  assert(!res.stderr.includes("    at "), "no stack trace");
  assert(!(res.stdout + res.stderr).includes(SECRET), "the password must not be printed");
}

const base = {
  queueUrl: "http://127.0.0.1:9/000000000000/q",
  databaseUrl: `postgres://u:${SECRET}@127.0.0.1:9/db`,
};

Deno.test("masq --help lists the commands, every flag, the environment variables and the defaults", async () => {
  const res = await runMasqCli(["--help"], base);
  assertEquals(res.code, 0);
  for (
    const s of [
      "run",
      "demo",
      "bench",
      "--queue-url",
      "SQS_QUEUE_URL",
      "--database-url",
      "DATABASE_URL",
      "--dlq-url",
      "--sqs-protocol",
      "--follow",
      "PII_HMAC_KEY",
      "http://localhost:4566/000000000000/login-queue",
    ]
  ) assert(res.stdout.includes(s), `help lacks ${s}`);
  assert(!res.stdout.includes(SECRET));
});

Deno.test("masq run exits 2 with one line when PII_HMAC_KEY is missing", async () => {
  const res = await runMasqCli(["run"], { ...base, extra: { PII_HMAC_KEY: "" } });
  assertOneLineError(res, /^masq: PII_HMAC_KEY: not set/);
});

Deno.test("masq run exits 2 with one line on an unknown flag, a malformed URL or a bad number", async () => {
  assertOneLineError(
    await runMasqCli(["run", "--no-such-flag"], base),
    /^masq: usage: Unknown option '--no-such-flag'/,
  );
  assertOneLineError(
    await runMasqCli(["run", "--queue-url", "not a url"], base),
    /^masq: --queue-url: is not a URL/,
  );
  assertOneLineError(
    await runMasqCli(["run", "--concurrency", "0"], base),
    /^masq: --concurrency: "0" is not a whole number from 1 to 64/,
  );
  assertOneLineError(
    await runMasqCli(["run"], { ...base, databaseUrl: "mysql://x@y/z" }),
    /^masq: DATABASE_URL: has scheme "mysql:"/,
  );
});

Deno.test("masq exits 2 with one line when a command is given an argument it does not take", async () => {
  for (const command of ["run", "demo", "bench"]) {
    assertOneLineError(
      await runMasqCli([command, "junk"], base),
      new RegExp(`^masq: usage: unexpected argument "junk" after "${command}"`),
    );
  }
});

Deno.test("masq exits 2 with one line naming the commands when the command is unknown", async () => {
  assertOneLineError(
    await runMasqCli(["nosuch"], base),
    /^masq: usage: unknown command "nosuch"; expected one of run, demo, bench/,
  );
});

Deno.test("masq bench exits 2 with one line saying that the benchmark is deno task bench", async () => {
  assertOneLineError(await runMasqCli(["bench"], base), /^masq: bench: the benchmark is `deno task bench`/);
});

Deno.test("masq run refuses a password in --database-url without echoing it", async () => {
  const res = await runMasqCli(["run", "--database-url", `postgres://u:${SECRET}@h/db`], base);
  assertOneLineError(res, /^masq: --database-url: contains a password/);
});

Deno.test("masq run exits 2 naming DATABASE_URL (password redacted) when the database does not answer", async () => {
  const res = await runMasqCli(["run"], base);
  assertOneLineError(
    res,
    /^masq: --database-url \/ DATABASE_URL: cannot use postgres:\/\/u:\*\*\*@127\.0\.0\.1:9\/db/,
  );
});

Deno.test("masq run exits 2 naming SQS_QUEUE_URL when the queue does not exist", async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  try {
    const res = await runMasqCli(["run"], { queueUrl: sqs.queueUrl("no-such-queue"), databaseUrl: db.url });
    assertOneLineError(res, /^masq: --queue-url \/ SQS_QUEUE_URL: .*no-such-queue: queue does not exist/);
  } finally {
    await db.stop();
    await sqs.stop();
  }
});

Deno.test("masq demo runs the whole pipeline offline and ends with the summary", async () => {
  const res = await runMasqCli(["demo"], base);
  assertEquals(res.code, 0, res.stderr);
  assertEquals(res.summary?.received, 100);
  assertEquals(res.summary?.inserted, 99);
  assertEquals(res.summary?.rejected, 1);
  assertMatch(res.stdout, /user_logins_readable \(10 of 99 rows\)/);
  assertMatch(res.stdout, /user_id is missing/);
  assertMatch(res.stderr, /DEMO: using a fixed, public HMAC key/);
});
