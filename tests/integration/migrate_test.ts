/**
 * `masq migrate` is the only DDL; `masq run` checks the schema version and exits 2 naming migrate; each
 * role can do its part and nothing else (against the real database: PostgreSQL, or PGlite without
 * TEST_DATABASE_URL).
 */
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { roleNames, SCHEMA_VERSION } from "../../lib/sink/schema.ts";
import { runMasqCliWithin } from "../support/processes.ts";
import { sqsClient } from "../support/sqs.ts";
import { startDatabase } from "../support/databases.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";
import { asRole, insertLogins, masq, tokensOf, VAULT_KEY_B64 } from "../support/lifecycle.ts";
import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";

Deno.test("masq run exits 2 naming migrate when the schema is missing or older, and creates nothing", async () => {
  const db = await startDatabase({ migrated: false });
  const sqs = await startEmbeddedSqs();
  try {
    const queueUrl = sqs.createQueue("q");
    const missing = await runMasqCliWithin(60_000, ["run"], { queueUrl, databaseUrl: db.url });
    assertEquals(missing.code, 2, missing.stderr);
    assertMatch(missing.stderr, /^masq: schema: the database has no masq schema.*run `masq migrate`/m);
    const tables = await db.query(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()",
    );
    assertEquals(tables, [], "run must not create anything");

    const indexes = async () =>
      (await db.query<{ name: string }>(
        "SELECT indexname AS name FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'user_logins' ORDER BY 1",
      )).map((r) => r.name);
    const first = await masq(["migrate", "--role-prefix", db.rolePrefix, "--no-token-indexes"], {
      databaseUrl: db.url,
    });
    assertEquals(first.code, 0, first.stderr);
    assertEquals(JSON.parse(first.stdout.trim()).from, 0);
    assertEquals(JSON.parse(first.stdout.trim()).to, SCHEMA_VERSION);
    assertEquals(await indexes(), ["user_logins_user_id"]);
    const again = await masq(["migrate", "--role-prefix", db.rolePrefix], { databaseUrl: db.url });
    assertEquals(again.code, 0, again.stderr);
    assertEquals(JSON.parse(again.stdout.trim()).from, SCHEMA_VERSION);
    assertEquals(await indexes(), [
      "user_logins_masked_device_id",
      "user_logins_masked_ip",
      "user_logins_user_id",
    ]);

    const methods = await db.query<{ name: string; method: string }>(
      `SELECT c.relname AS name, a.amname AS method FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = 'user_logins'::regclass ORDER BY 1`,
    );
    assertEquals(methods, [
      { name: "user_logins_masked_device_id", method: "hash" },
      { name: "user_logins_masked_ip", method: "hash" },
      { name: "user_logins_user_id", method: "btree" },
    ]);

    // A version 1 schema (btree token indexes) is upgraded in place: hash indexes of the same names.
    await db.query("DROP INDEX user_logins_masked_ip, user_logins_masked_device_id");
    await db.query("CREATE INDEX user_logins_masked_ip ON user_logins (masked_ip)");
    await db.query("CREATE INDEX user_logins_masked_device_id ON user_logins (masked_device_id)");
    await db.query("UPDATE masq_schema_version SET version = 1");
    const upgrade = await masq(["migrate", "--role-prefix", db.rolePrefix], { databaseUrl: db.url });
    assertEquals(upgrade.code, 0, upgrade.stderr);
    assertEquals(
      [JSON.parse(upgrade.stdout.trim()).from, JSON.parse(upgrade.stdout.trim()).to],
      [1, SCHEMA_VERSION],
    );
    assertEquals(
      await db.query<{ name: string; method: string }>(
        `SELECT c.relname AS name, a.amname AS method FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = 'user_logins'::regclass ORDER BY 1`,
      ),
      methods,
    );

    await db.query("UPDATE masq_schema_version SET version = 0");
    const older = await runMasqCliWithin(60_000, ["run"], { queueUrl, databaseUrl: db.url });
    assertEquals(older.code, 2, older.stderr);
    assertMatch(older.stderr, /^masq: schema: .*version 0, older than this masq's \d+; run `masq migrate`/m);
  } finally {
    await sqs.stop();
    await db.stop();
  }
});

Deno.test("migrate's roles: the writer writes only, the analyst reads the readable view only, the privacy officer manages the vault", async () => {
  const db = await startDatabase();
  try {
    const r = roleNames(db.rolePrefix);
    await insertLogins(db, [{ userId: "u1", ip: "10.0.0.1", deviceId: "dev-1" }]);
    const writer = (sql: string, p?: unknown[]) => asRole(db, r.writer, sql, p);
    const analyst = (sql: string, p?: unknown[]) => asRole(db, r.analyst, sql, p);
    const officer = (sql: string, p?: unknown[]) => asRole(db, r.privacyOfficer, sql, p);
    const DENIED = "42501";

    // The writer: exactly what a batch does.
    assertEquals(
      await writer(
        `WITH l AS (INSERT INTO user_logins_ledger (message_id, outcome) VALUES ('m1', 'inserted')
           ON CONFLICT (message_id) DO NOTHING RETURNING message_id),
         u AS (INSERT INTO user_logins (user_id) VALUES ('u2') RETURNING 1),
         v AS (INSERT INTO pii_vault (field, token, ciphertext, key_id) VALUES ('ip', 'ab', '\\x00', 'k1')
           ON CONFLICT DO NOTHING)
         INSERT INTO user_logins_rejected (message_id, reason) VALUES ('m2', 'x') ON CONFLICT DO NOTHING`,
      ),
      "ok",
    );
    assertEquals(await writer("SELECT message_id FROM user_logins_ledger"), "ok");
    assertEquals(
      await writer(
        "INSERT INTO pii_keys VALUES ('k1', now(), now()) ON CONFLICT (id) DO UPDATE SET last_used = now()",
      ),
      "ok",
    );
    assertEquals(await writer("SELECT version FROM masq_schema_version"), "ok");
    for (
      const sql of [
        "SELECT * FROM pii_vault",
        "SELECT ciphertext FROM pii_vault",
        "SELECT token FROM pii_vault", // schema v4: not even the tokens (no enumeration of the address space)
        "SELECT field, token FROM pii_vault",
        "SELECT * FROM masq_subject_keys", // the key store: the writer inserts, never reads
        "DELETE FROM masq_subject_keys",
        "SELECT * FROM user_logins",
        "SELECT * FROM user_logins_readable",
        "SELECT body_redacted FROM user_logins_rejected",
        "SELECT * FROM user_logins_rejected",
        "SELECT * FROM pii_access_log",
        "DELETE FROM user_logins",
        "DELETE FROM pii_vault",
        "DELETE FROM user_logins_ledger",
        "UPDATE user_logins SET masked_ip = 'x'",
        "TRUNCATE user_logins",
        "CREATE TABLE evil(x int)",
        "DROP TABLE user_logins",
      ]
    ) assertEquals(await writer(sql), DENIED, `writer: ${sql}`);

    // The analyst: the readable view, nothing else.
    assertEquals(await analyst("SELECT user_id, masked_ip, app_version FROM user_logins_readable"), "ok");
    for (
      const sql of [
        "SELECT * FROM user_logins",
        "SELECT * FROM pii_vault",
        "SELECT * FROM user_logins_rejected",
        "SELECT * FROM user_logins_ledger",
        "SELECT * FROM pii_access_log",
        "SELECT * FROM pii_keys",
        "INSERT INTO user_logins (user_id) VALUES ('x')",
        "DELETE FROM user_logins",
        "CREATE TABLE evil(x int)",
      ]
    ) assertEquals(await analyst(sql), DENIED, `analyst: ${sql}`);

    // The privacy officer: originals only through the functions (after a committed request), forget's
    // deletes, rekey's two token columns; the access log is append-only even for them, and stamped.
    for (
      const sql of [
        "SELECT field, token, key_id, created_at FROM pii_vault",
        "DELETE FROM pii_vault WHERE field = 'ip'",
        "INSERT INTO pii_vault (field, token, ciphertext, key_id) VALUES ('ip', 'cd', '\\x00', 'k2')",
        "DELETE FROM user_logins WHERE user_id = 'u1'",
        "UPDATE user_logins SET masked_ip = masked_ip, masked_device_id = masked_device_id",
        "DELETE FROM user_logins_rejected WHERE message_id = 'm2'",
        "LOCK TABLE pii_vault IN SHARE ROW EXCLUSIVE MODE",
        "INSERT INTO pii_access_log (action, reason, outcome) VALUES ('forget_user', 'test', 'removed')",
        "SELECT masq_recover_request('ip', ARRAY['ab'], 'ticket 1', 'dpo')",
        "SELECT masq_rekey_request('k2', NULL, 10, 'rotation', 'dpo')",
        "SELECT * FROM pii_access_log",
      ]
    ) assertEquals(await officer(sql), "ok", `privacy officer: ${sql}`);
    for (
      const sql of [
        "SELECT * FROM pii_vault",
        "SELECT ciphertext FROM pii_vault",
        "UPDATE pii_vault SET ciphertext = ciphertext",
        "SELECT * FROM masq_recover('ip', ARRAY(SELECT token FROM pii_vault))",
        "INSERT INTO pii_access_log (action, reason, outcome) VALUES ('recover', 'test', 'found')",
        "INSERT INTO pii_access_log (action, reason, outcome) VALUES ('rekey', 'test', 'requested')",
        "INSERT INTO pii_access_log (action, reason, outcome, db_role) VALUES ('redrive', 'test', 'x', 'someone')",
        "UPDATE pii_access_log SET reason = 'nothing to see'",
        "DELETE FROM pii_access_log",
        "TRUNCATE pii_access_log",
        "UPDATE user_logins SET locale = '203.0.113.230'",
        "UPDATE user_logins SET user_id = 'u2'",
        "INSERT INTO user_logins (user_id) VALUES ('x')",
        "CREATE TABLE evil(x int)",
      ]
    ) assertEquals(await officer(sql), DENIED, `privacy officer: ${sql}`);
    // The writer and the analyst: no way to a ciphertext or into the log.
    for (const role of [writer, analyst]) {
      for (
        const sql of [
          "SELECT masq_recover_request('ip', ARRAY['ab'], 'ticket 1', 'w')",
          "SELECT * FROM masq_recover('ip', ARRAY['ab'])",
          "SELECT masq_rekey_request('k2', NULL, 10, 'rotation', 'w')",
          "INSERT INTO pii_access_log (action, reason, outcome) VALUES ('forget_user', 'test', 'x')",
        ]
      ) assertEquals(await role(sql), DENIED, sql);
    }
  } finally {
    await db.stop();
  }
});

Deno.test("migrate upgrades a version 2 database in place: every row, vault entry and log line kept, the grants made anew", async () => {
  const db = await startDatabase({ migrated: false });
  try {
    const r = roleNames(db.rolePrefix);
    const v2 = await Deno.readTextFile(new URL("../testdata/schema_v2.sql", import.meta.url));
    await db.query(v2.replaceAll("__PREFIX__", db.rolePrefix));
    await insertLogins(db, [
      { userId: "u1", ip: "10.0.0.1", deviceId: "dev-1" },
      { userId: "u2", ip: "10.0.0.2", deviceId: "dev-1" },
    ]);
    await db.query(
      "INSERT INTO pii_access_log (action, reason, outcome, db_role) VALUES ('recover', 'under v2', 'found', 'x')",
    );
    // What an operator may have added by hand: gone after migrate.
    await db.query(`GRANT SELECT ON pii_vault TO ${r.analyst}`);
    await db.query(`GRANT UPDATE ON pii_access_log TO ${r.writer}`);
    const snapshot = async () => ({
      rows: await db.query("SELECT * FROM user_logins ORDER BY user_id"),
      vault: await db.query("SELECT field, token, ciphertext, key_id FROM pii_vault ORDER BY field, token"),
      log: await db.query("SELECT id, at, db_role, action, reason FROM pii_access_log ORDER BY id"),
    });
    const before = await snapshot();
    assertEquals(before.vault.length, 3);
    assertEquals(
      await asRole(db, r.privacyOfficer, "SELECT ciphertext FROM pii_vault"),
      "ok",
      "v2 allowed it",
    );

    for (const expected of [2, SCHEMA_VERSION]) {
      const res = await masq(["migrate", "--role-prefix", db.rolePrefix], { databaseUrl: db.url });
      assertEquals(res.code, 0, res.stderr);
      assertEquals(JSON.parse(res.stdout.trim()).from, expected);
      assertEquals(await snapshot(), before);
      for (
        const [role, sql] of [
          [r.privacyOfficer, "SELECT ciphertext FROM pii_vault"],
          [r.privacyOfficer, "UPDATE user_logins SET locale = 'x'"],
          [
            r.privacyOfficer,
            "INSERT INTO pii_access_log (action, reason, outcome) VALUES ('recover', 'r', 'found')",
          ],
          [r.analyst, "SELECT * FROM pii_vault"],
          [r.writer, "UPDATE pii_access_log SET reason = 'x'"],
        ]
      ) assertEquals(await asRole(db, role, sql), "42501", `${role}: ${sql}`);
    }
    // The upgraded vault still answers recover.
    const token = await (await tokensOf()).ip("10.0.0.2");
    const rec = await masq(["recover", "--field", "ip", "--token", token, "--reason", "after the upgrade"], {
      databaseUrl: db.url,
      env: { PII_VAULT_KEY: VAULT_KEY_B64 },
    });
    assertEquals(rec.stdout, "10.0.0.2\n", rec.stderr);
  } finally {
    await db.stop();
  }
});

Deno.test({
  name: "masq run works as a login user that is only a member of the writer role",
  // PGlite's socket server knows one user; the SET ROLE checks above cover its grants.
  ignore: !Deno.env.get("TEST_DATABASE_URL"),
}, async () => {
  const db = await startDatabase();
  const sqs = await startEmbeddedSqs();
  const login = `${db.rolePrefix}app`;
  try {
    const r = roleNames(db.rolePrefix);
    await db.query(`CREATE ROLE ${login} LOGIN IN ROLE ${r.writer}`);
    const url = new URL(db.url);
    url.username = login;
    const queueUrl = sqs.createQueue("q");
    const client = sqsClient(sqs);
    await client.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: [
          {
            Id: "a",
            MessageBody: JSON.stringify({
              user_id: "u1",
              device_type: "ios",
              ip: "10.1.2.3",
              device_id: "d-1",
              locale: "en_US",
              app_version: "2.3.0",
            }),
          },
          { Id: "b", MessageBody: "not json" },
        ],
      }),
    );
    client.destroy();
    const res = await runMasqCliWithin(60_000, ["run"], { queueUrl, databaseUrl: url.toString() });
    assertEquals(res.code, 0, res.stderr);
    assertEquals(res.summary?.inserted, 1);
    assertEquals(res.summary?.rejected, 1);
    const keys = await db.query<{ id: string }>("SELECT id FROM pii_keys");
    assertEquals(keys.map((k) => k.id), ["k1"]);
    assert(!res.stderr.includes("10.1.2.3"));
    assert(!res.stderr.includes("connected as a role that may"), res.stderr);
    // The superuser, by contrast, is warned about.
    const sqs2 = sqs.createQueue("q2");
    const su = await runMasqCliWithin(60_000, ["run"], { queueUrl: sqs2, databaseUrl: db.url });
    assertEquals(su.code, 0, su.stderr);
    assertMatch(
      su.stderr,
      /connected as a role that may read the vault and read user_logins and delete rows; run as a member of \S+writer only/,
    );
  } finally {
    await db.query(`DROP ROLE IF EXISTS ${login}`).catch(() => {});
    await sqs.stop();
    await db.stop();
  }
});

Deno.test({
  name: "masq recover and forget work for a privacy-officer login and are refused to an analyst login",
  ignore: !Deno.env.get("TEST_DATABASE_URL"),
}, async () => {
  const db = await startDatabase();
  const officer = `${db.rolePrefix}dpo`;
  const analyst = `${db.rolePrefix}ana`;
  try {
    const r = roleNames(db.rolePrefix);
    await db.query(`CREATE ROLE ${officer} LOGIN IN ROLE ${r.privacyOfficer}`);
    await db.query(`CREATE ROLE ${analyst} LOGIN IN ROLE ${r.analyst}`);
    await insertLogins(db, [{ userId: "u1", ip: "198.18.0.1", deviceId: "d1" }]);
    const as = (user: string) => {
      const u = new URL(db.url);
      u.username = user;
      return u.toString();
    };
    const token = await (await tokensOf()).ip("198.18.0.1");
    const env = { PII_VAULT_KEY: VAULT_KEY_B64 };
    const args = ["recover", "--field", "ip", "--token", token, "--reason", "ticket 5"];

    const denied = await masq(args, { databaseUrl: as(analyst), env });
    assertEquals(denied.code, 1);
    assertEquals(denied.stdout, "");
    assertMatch(denied.stderr, /permission denied for function masq_recover_request/);
    const deniedForget = await masq(["forget", "--user-id", "u1", "--reason", "erasure 2"], {
      databaseUrl: as(analyst),
    });
    assertEquals(deniedForget.code, 1);
    assertMatch(deniedForget.stderr, /permission denied/);

    const ok = await masq(args, { databaseUrl: as(officer), env });
    assertEquals(ok.code, 0, ok.stderr);
    assertEquals(ok.stdout, "198.18.0.1\n");
    const forgot = await masq(["forget", "--user-id", "u1", "--reason", "erasure 3"], {
      databaseUrl: as(officer),
    });
    assertEquals(forgot.code, 0, forgot.stderr);
    const log = await db.query<{ db_role: string; session_role: string; action: string }>(
      "SELECT db_role, session_role, action FROM pii_access_log ORDER BY id",
    );
    assertEquals(log, [
      { db_role: officer, session_role: officer, action: "recover" },
      { db_role: officer, session_role: officer, action: "forget_user" },
    ]);
  } finally {
    await db.query(`DROP ROLE IF EXISTS ${officer}`).catch(() => {});
    await db.query(`DROP ROLE IF EXISTS ${analyst}`).catch(() => {});
    await db.stop();
  }
});

Deno.test("masq migrate warns when every role may create objects in masq's schema", async () => {
  const db = await startDatabase();
  try {
    const schema = (await db.query<{ s: string }>("SELECT current_schema() AS s"))[0].s;
    const quiet = await masq(["migrate", "--role-prefix", db.rolePrefix], { databaseUrl: db.url });
    assertEquals(quiet.code, 0, quiet.stderr);
    assert(!quiet.stderr.includes("may create objects"), quiet.stderr);
    await db.query(`GRANT CREATE ON SCHEMA ${schema} TO PUBLIC`);
    try {
      const res = await masq(["migrate", "--role-prefix", db.rolePrefix], { databaseUrl: db.url });
      assertEquals(res.code, 0, res.stderr);
      assertMatch(
        res.stderr,
        new RegExp(
          `every role may create objects in schema ${schema}.*REVOKE CREATE ON SCHEMA ${schema} FROM PUBLIC`,
        ),
      );
    } finally {
      await db.query(`REVOKE CREATE ON SCHEMA ${schema} FROM PUBLIC`);
    }
  } finally {
    await db.stop();
  }
});
