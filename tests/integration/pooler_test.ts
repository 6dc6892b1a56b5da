/**
 * docs/postgres.md "Connection poolers": every command (migrate, run, recover, forget, rekey, redrive)
 * through a real PgBouncer, in transaction mode and in session mode, in front of TEST_DATABASE_URL's
 * server, with the schema chosen by each login's `ALTER ROLE ... IN DATABASE ... SET search_path` (which
 * `migrate --writer-login` sets for the writer; PgBouncer refuses the URL's `options`). Several `run`
 * processes share the pooler; the outcome is checked exactly once.
 */
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { roleNames } from "../../lib/sink/schema.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";
import { checkExactlyOnce, seedSynthetic } from "../support/delivery.ts";
import pg from "pg";
import { collect, killAndReap, runMasqCli, spawnMasq, TEST_KEY } from "../support/processes.ts";
import { queryOnce, startDatabase } from "../support/databases.ts";
import { sqsClient } from "../support/sqs.ts";
import { masq, tokensOf, VAULT_KEY_B64 } from "../support/lifecycle.ts";
import { pgbouncerUnavailable, startPgbouncer } from "../support/pgbouncer.ts";

const MESSAGES = 1_200;
const BAD_EVERY = 100;
const PROCESSES = 3;
const WRITER_PASSWORD = "pooler-test-writer-password-0123";

// A missing pgbouncer fails the test with its reason (CI installs it); no database at all is PGlite's case.
const NO_SERVER = Deno.env.get("TEST_DATABASE_URL") ? undefined : "needs TEST_DATABASE_URL";

for (const mode of ["transaction", "session"] as const) {
  Deno.test({
    name:
      `every command works through PgBouncer in ${mode} mode, the schema chosen by the logins' search_path, ${PROCESSES} runs exactly once`,
    ignore: NO_SERVER !== undefined,
  }, async () => {
    const why = pgbouncerUnavailable();
    if (why) throw new Error(`pgbouncer: ${why}`);
    const db = await startDatabase({ migrated: false });
    const schema = db.rolePrefix.slice(0, -1);
    const database = new URL(Deno.env.get("TEST_DATABASE_URL")!).pathname.slice(1) || "postgres";
    const owner = `${db.rolePrefix}owner`;
    const app = `${db.rolePrefix}app`;
    const dpo = `${db.rolePrefix}dpo`;
    const roles = roleNames(db.rolePrefix);
    const sqs = await startEmbeddedSqs();
    const client = sqsClient(sqs);
    const dir = await Deno.makeTempDir({ prefix: "masq-pooler-" });
    // Transaction mode: one server connection per user, shared by every client (names clash at once).
    // Session mode: a server connection per client, so enough for every process's whole pool.
    const bouncer = await startPgbouncer({
      mode,
      users: [owner, app, dpo],
      poolSize: mode === "transaction" ? 1 : PROCESSES * 3 + 2,
    });
    const children: Deno.ChildProcess[] = [];
    try {
      // The schema's owner runs migrate; its schema comes from its role's setting, not from the URL.
      await db.query(`CREATE ROLE ${owner} LOGIN CREATEROLE`);
      await db.query(`ALTER SCHEMA ${schema} OWNER TO ${owner}`);
      await db.query(`ALTER ROLE ${owner} IN DATABASE ${database} SET search_path = ${schema}`);

      // The URL's options are refused by any PgBouncer: one line, exit 2, naming the way that works.
      const refused = await masq(["migrate", "--role-prefix", db.rolePrefix], {
        databaseUrl: `${bouncer.url(owner)}?options=${encodeURIComponent(`-c search_path=${schema}`)}`,
      });
      assertEquals(refused.code, 2, refused.stderr);
      assertMatch(refused.stderr, /unsupported startup parameter: options.*search_path/);

      const migrated = await masq(["migrate", "--role-prefix", db.rolePrefix, "--writer-login", app], {
        databaseUrl: bouncer.url(owner),
        env: { MASQ_WRITER_PASSWORD: WRITER_PASSWORD },
      });
      assertEquals(migrated.code, 0, migrated.stderr);
      assertEquals(JSON.parse(migrated.stdout.trim()).writerLogin, app);
      const [login] = await db.query<{ login: boolean; member: boolean; password: boolean }>(
        `SELECT r.rolcanlogin AS login, pg_has_role(r.rolname, $2, 'MEMBER') AS member,
                EXISTS (SELECT 1 FROM pg_authid a WHERE a.rolname = r.rolname AND a.rolpassword LIKE 'SCRAM-SHA-256$%') AS password
         FROM pg_roles r WHERE r.rolname = $1`,
        [app, roles.writer],
      );
      assertEquals(login, { login: true, member: true, password: true });
      await db.query(`CREATE ROLE ${dpo} LOGIN IN ROLE ${roles.privacyOfficer}`);
      await db.query(`ALTER ROLE ${dpo} IN DATABASE ${database} SET search_path = ${schema}`);

      const queueUrl = sqs.createQueue("pooled", { VisibilityTimeout: "5" });
      const seeded = await seedSynthetic(sqs, client, "pooled", MESSAGES, BAD_EVERY);
      const run = (extra: Record<string, string>) => {
        const batch = Array.from({ length: PROCESSES }, () =>
          spawnMasq(["run"], {
            queueUrl,
            databaseUrl: bouncer.url(app),
            extra: {
              PII_VAULT_KEY: VAULT_KEY_B64,
              MASQ_CONCURRENCY: "4",
              MASQ_DB_POOL_SIZE: "3",
              MASQ_LOG_FORMAT: "json",
              ...extra,
            },
          }));
        children.push(...batch);
        return Promise.all(batch.map(collect));
      };

      if (mode === "transaction") {
        // Named statements forced on: the pooler hands a name to server connections that have it or not.
        // Each process either finishes or stops with exit 2 naming the setting; nothing is written twice.
        const forced = await run({ MASQ_DB_NAMED_STATEMENTS: "on" });
        const codes = forced.map((r) => r.code);
        assert(codes.every((c) => c === 0 || c === 2), `codes ${codes}`);
        assert(codes.includes(2), `some run must hit a taken or missing name: codes ${codes}`);
        assertMatch(
          forced.find((r) => r.code === 2)!.stderr,
          /MASQ_DB_NAMED_STATEMENTS: is on, but .*(42P05|26000)/,
        );
      }
      const results = await run({});
      for (const r of results) assertEquals(r.code, 0, r.stderr.slice(-2000));
      if (mode === "transaction") {
        assert(
          results.some((r) => /refused a named prepared statement/.test(r.stderr)),
          "auto switched to unnamed statements",
        );
      } else {
        assert(
          results.every((r) => !/refused a named prepared statement/.test(r.stderr)),
          "session mode keeps names",
        );
      }
      const outcome = await checkExactlyOnce(db, seeded);
      assertEquals(outcome.problems, []);

      // The lifecycle commands, as a privacy-officer login, through the same pooler.
      const dpoUrl = bouncer.url(dpo);
      const [{ masked_ip: token }] = await db.query<{ masked_ip: string }>(
        "SELECT masked_ip FROM user_logins WHERE masked_ip IS NOT NULL LIMIT 1",
      );
      const vault = { PII_VAULT_KEY: VAULT_KEY_B64 };
      const recovered = await masq(["recover", "--field", "ip", "--token", token, "--reason", "ticket 9"], {
        databaseUrl: dpoUrl,
        env: vault,
      });
      assertEquals(recovered.code, 0, recovered.stderr);
      assertEquals(await (await tokensOf()).ip(recovered.stdout.trim()), token);

      const forgot = await masq(["forget", "--user-id", "user-1", "--reason", "erasure 9"], {
        databaseUrl: dpoUrl,
      });
      assertEquals(forgot.code, 0, forgot.stderr);
      assertEquals((await db.query("SELECT 1 FROM user_logins WHERE user_id = 'user-1'")).length, 0);

      await Deno.writeTextFile(`${dir}/k2`, "the-pooler-test-new-hmac-key-0123456789abcdef");
      const rekeyed = await masq([
        "rekey",
        "--to-key-file",
        `${dir}/k2`,
        "--to-key-id",
        "k2",
        "--batch",
        "100",
      ], {
        databaseUrl: dpoUrl,
        env: vault,
        read: [dir],
      });
      assertEquals(rekeyed.code, 0, rekeyed.stderr);
      const [{ left }] = await db.query<{ left: number }>(
        "SELECT count(*)::int AS left FROM pii_vault WHERE key_id <> 'k2'",
      );
      assertEquals(left, 0);

      const redriven = await masq(["redrive"], {
        databaseUrl: dpoUrl,
        env: { ...vault, SQS_QUEUE_URL: queueUrl, PII_HMAC_KEY: TEST_KEY },
      });
      assertEquals(redriven.code, 0, redriven.stderr);
      assert(JSON.parse(redriven.stdout.trim()).redriven >= seeded.badIds.size, redriven.stdout);

      const actions = await db.query<{ action: string; session_role: string }>(
        "SELECT DISTINCT action, session_role FROM pii_access_log ORDER BY action",
      );
      assertEquals(actions.map((a) => a.action), ["forget_user", "recover", "redrive", "rekey"]);
      assert(actions.every((a) => a.session_role === dpo), JSON.stringify(actions));
    } finally {
      for (const c of children) await killAndReap(c);
      await bouncer.stop();
      client.destroy();
      await sqs.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await db.stop();
      // After the schema (which the owner owns) and the groups are gone.
      for (const r of [app, dpo, owner]) {
        await queryOnce(Deno.env.get("TEST_DATABASE_URL")!, `DROP ROLE IF EXISTS ${r}`).catch(() => {});
      }
    }
  });
}

Deno.test({
  name:
    "run exits 2 with one line pointing at pool sizing when a session-mode PgBouncer has no server connection free",
  ignore: NO_SERVER !== undefined,
}, async () => {
  const why = pgbouncerUnavailable();
  if (why) throw new Error(`pgbouncer: ${why}`);
  const db = await startDatabase();
  const schema = db.rolePrefix.slice(0, -1);
  const database = new URL(Deno.env.get("TEST_DATABASE_URL")!).pathname.slice(1) || "postgres";
  const app = `${db.rolePrefix}app`;
  const sqs = await startEmbeddedSqs();
  const bouncer = await startPgbouncer({ mode: "session", users: [app], poolSize: 1, queryWaitTimeout: 2 });
  let holder: pg.Client | undefined;
  try {
    await db.query(`CREATE ROLE ${app} LOGIN IN ROLE ${roleNames(db.rolePrefix).writer}`);
    await db.query(`ALTER ROLE ${app} IN DATABASE ${database} SET search_path = ${schema}`);
    // Another replica holds the pool's only server connection for as long as its session lasts.
    holder = new pg.Client({ connectionString: bouncer.url(app) });
    await holder.connect();
    await holder.query("SELECT 1");
    const res = await runMasqCli(["run"], {
      queueUrl: sqs.createQueue("starved"),
      databaseUrl: bouncer.url(app),
    });
    assertEquals(res.code, 2, res.stderr);
    assertMatch(res.stderr, /masq: --database-url \/ DATABASE_URL: .*query_wait_timeout.*--db-pool-size/);
    assertEquals(res.stderr.trim().split("\n").filter((l) => l.startsWith("masq:")).length, 1);
  } finally {
    await holder?.end().catch(() => {});
    await bouncer.stop();
    await sqs.stop();
    await db.stop();
    await queryOnce(Deno.env.get("TEST_DATABASE_URL")!, `DROP ROLE IF EXISTS ${app}`).catch(() => {});
  }
});
