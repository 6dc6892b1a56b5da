/**
 * masq's roles against real login roles (`CREATE ROLE x LOGIN IN ROLE <group>`, connected as x over TCP):
 * nobody reads an original without a committed pii_access_log line, nobody but the owner changes the log
 * or forges its time or roles, each role edits only what its commands need, and each command works for the
 * role it is documented for and is refused to the others.
 */
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { roleNames } from "../../lib/sink/schema.ts";
import { deadLetterFor } from "../../lib/transform/letter.ts";
import { createVaultCipher } from "../../lib/vault.ts";
import { receiveAll, sqsClient } from "../support/sqs.ts";
import { startDatabase, type TestDatabase } from "../support/databases.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";
import { TEST_KEY } from "../support/processes.ts";
import {
  createLogin,
  type DbLogin,
  insertLogins,
  type Login,
  masq,
  NO_LOGIN_ROLES,
  tokensOf,
  VAULT_KEY,
  VAULT_KEY_B64,
  vaultCount,
} from "../support/lifecycle.ts";

const DENIED = "42501";
const IPS = Array.from({ length: 22 }, (_, i) => `198.51.100.${i + 10}`);
const PEOPLE: Login[] = IPS.map((ip, i) => ({ userId: `u${i % 5}`, ip, deviceId: `phone-${i % 5}` }));

interface LogLine {
  at: Date;
  db_role: string;
  session_role: string;
  os_user: string | null;
  action: string;
  token: string | null;
  outcome: string;
}

async function accessLog(db: TestDatabase): Promise<LogLine[]> {
  return await db.query<LogLine>(
    "SELECT at, db_role, session_role, os_user, action, token, outcome FROM pii_access_log ORDER BY id",
  );
}

async function withLogins(
  db: TestDatabase,
  groups: ("writer" | "analyst" | "privacyOfficer")[],
  fn: (logins: DbLogin[]) => Promise<void>,
): Promise<void> {
  const r = roleNames(db.rolePrefix);
  const logins: DbLogin[] = [];
  try {
    for (const [i, g] of groups.entries()) logins.push(await createLogin(db, r[g], `login${i}`));
    await fn(logins);
  } finally {
    for (const l of logins) await l.drop().catch(() => {});
  }
}

Deno.test({
  name:
    "a privacy-officer login reads ciphertexts only through masq_recover(), against request lines committed before",
  ignore: NO_LOGIN_ROLES !== undefined,
}, async () => {
  const db = await startDatabase();
  try {
    await insertLogins(db, PEOPLE);
    const tok = await tokensOf();
    const tokens = await Promise.all(IPS.map((ip) => tok.ip(ip)));
    await withLogins(db, ["privacyOfficer", "privacyOfficer"], async ([dpo, other]) => {
      // No direct way to the ciphertexts, not even as an oracle in a WHERE or a RETURNING.
      for (
        const sql of [
          "SELECT ciphertext FROM pii_vault",
          "SELECT * FROM pii_vault",
          "SELECT count(*) FROM pii_vault WHERE get_byte(ciphertext, 0) > 127",
          "DELETE FROM pii_vault WHERE ciphertext IS NULL",
          "DELETE FROM pii_vault WHERE false RETURNING ciphertext",
          "INSERT INTO pii_vault (field, token, ciphertext, key_id) VALUES ('ip', 'x', '\\x00', 'k9') RETURNING ciphertext",
          "UPDATE pii_vault SET key_id = key_id",
          "SELECT * FROM masq_recover('ip', ARRAY[(SELECT min(token) FROM pii_vault)])",
          "SELECT * FROM masq_rekey_batch(1)",
        ]
      ) assertEquals(await dpo.attempt(sql), DENIED, sql);
      assertEquals(await dpo.attempt("SELECT field, token, key_id, created_at FROM pii_vault"), "ok");

      // A request and a fetch in one transaction, a subtransaction or one multi-statement message: the fetch
      // is refused, so rolling back cannot take a line back after the ciphertexts were read.
      const request = "SELECT masq_recover_request('ip', $1::text[], 'ticket 7', 'mallory')";
      for (
        const steps of [
          [request, "SELECT * FROM masq_recover('ip', $1::text[])"],
          ["SAVEPOINT s", request, "RELEASE s", "SELECT * FROM masq_recover('ip', $1::text[])"],
        ]
      ) {
        await dpo.client.query("BEGIN");
        let code = "ok";
        for (const sql of steps) {
          try {
            await dpo.client.query(sql, sql.includes("$1") ? [tokens] : []);
          } catch (err) {
            code = (err as { code: string }).code;
            break;
          }
        }
        await dpo.client.query("ROLLBACK");
        assertEquals(code, DENIED, steps.join("; "));
      }
      const oneMessage = await dpo.client.query(
        `SELECT masq_recover_request('ip', ARRAY['${tokens[0]}'], 'ticket 7', 'mallory');
         SELECT * FROM masq_recover('ip', ARRAY['${tokens[0]}'])`,
      ).then(() => "ok", (err: { code: string }) => err.code);
      assertEquals(oneMessage, DENIED);
      assertEquals(await accessLog(db), [], "every attempt was rolled back, and nothing was handed out");

      // The way in: the request commits its lines (one per token, found or not), then the fetch.
      const unknown = "e".repeat(64);
      await dpo.client.query(request, [[...tokens, unknown]]);
      const rows =
        (await dpo.client.query("SELECT token FROM masq_recover('ip', $1::text[])", [tokens])).rows;
      assertEquals(rows.length, 22);
      const log = await accessLog(db);
      assertEquals(log.length, 23);
      assertEquals(log.map((l) => l.outcome), [...tokens.map(() => "found"), "not_found"]);
      assertEquals(log.map((l) => l.token), [...tokens, unknown]);
      for (const l of log) {
        assertEquals([l.db_role, l.session_role, l.os_user, l.action], [
          dpo.name,
          dpo.name,
          "mallory",
          "recover",
        ]);
        assert(Math.abs(l.at.getTime() - Date.now()) < 60_000, "stamped now");
      }

      // Another login cannot use those lines; nor can anyone once they are older than the window.
      assertEquals(await other.attempt("SELECT * FROM masq_recover('ip', $1::text[])", [tokens]), DENIED);
      await db.query("UPDATE pii_access_log SET at = at - interval '6 minutes'");
      assertEquals(await dpo.attempt("SELECT * FROM masq_recover('ip', $1::text[])", [tokens]), DENIED);
    });
  } finally {
    await db.stop();
  }
});

Deno.test({
  name:
    "pii_access_log is append-only for a privacy-officer login, which cannot forge a line's time or roles",
  ignore: NO_LOGIN_ROLES !== undefined,
}, async () => {
  const db = await startDatabase();
  try {
    await insertLogins(db, PEOPLE.slice(0, 3));
    await withLogins(db, ["privacyOfficer"], async ([dpo]) => {
      await db.query(
        "INSERT INTO pii_access_log (action, reason, outcome, os_user) VALUES ('forget_user', 'by the owner', 'x', 'admin')",
      );
      for (
        const sql of [
          "INSERT INTO pii_access_log (action, reason, outcome, db_role) VALUES ('forget_user', 'r', 'o', 'postgres')",
          "INSERT INTO pii_access_log (action, reason, outcome, session_role) VALUES ('forget_user', 'r', 'o', 'postgres')",
          "INSERT INTO pii_access_log (action, reason, outcome, at) VALUES ('forget_user', 'r', 'o', '2020-01-01')",
          "INSERT INTO pii_access_log (id, action, reason, outcome) OVERRIDING SYSTEM VALUE VALUES (-1, 'redrive', 'r', 'o')",
          "INSERT INTO pii_access_log (action, field, token, reason, outcome) VALUES ('recover', 'ip', 'x', 'r', 'found')",
          "INSERT INTO pii_access_log (action, reason, outcome) VALUES ('rekey', 'r', 'requested up to 10000')",
          "UPDATE pii_access_log SET reason = 'nothing to see'",
          "UPDATE pii_access_log SET at = now()",
          "DELETE FROM pii_access_log",
          "TRUNCATE pii_access_log",
          "ALTER TABLE pii_access_log DISABLE TRIGGER pii_access_log_stamp",
          "DROP TRIGGER pii_access_log_stamp ON pii_access_log",
          "CREATE FUNCTION masq_caller() RETURNS text LANGUAGE sql AS $$ SELECT 'postgres' $$",
          "CREATE TABLE pii_access_log_2 (x int)",
        ]
      ) assertEquals(await dpo.attempt(sql), DENIED, sql);

      // What it may append carries the time and roles the database saw, whatever the statement said.
      await dpo.client.query(
        "INSERT INTO pii_access_log (action, reason, outcome, os_user) VALUES ('forget_user', 'r', 'o', 'dpo')",
      );
      await dpo.client.query(`SET ROLE ${roleNames(db.rolePrefix).privacyOfficer}`);
      await dpo.client.query(
        "INSERT INTO pii_access_log (action, reason, outcome) VALUES ('redrive', 'r', 'o')",
      );
      await dpo.client.query("RESET ROLE");
      const log = await accessLog(db);
      assertEquals(log.map((l) => [l.db_role, l.session_role]), [
        ["postgres", "postgres"],
        [dpo.name, dpo.name],
        [roleNames(db.rolePrefix).privacyOfficer, dpo.name],
      ]);
      for (const l of log) assert(Math.abs(l.at.getTime() - Date.now()) < 60_000);

      // Analytics rows: only the two token columns (rekey) and whole-row deletes (forget).
      for (
        const sql of [
          "UPDATE user_logins SET locale = '203.0.113.230'",
          "UPDATE user_logins SET user_id = 'someone else'",
          "UPDATE user_logins SET create_date = '2000-01-01', app_version = 1, device_type = 'x'",
          "INSERT INTO user_logins (user_id) VALUES ('x')",
          "UPDATE user_logins_rejected SET body_redacted = '{}'",
          "INSERT INTO user_logins_rejected (message_id) VALUES ('m')",
          "UPDATE user_logins_ledger SET outcome = 'rejected'",
          "DELETE FROM user_logins_ledger",
          "UPDATE pii_keys SET first_used = now()",
          "TRUNCATE user_logins",
        ]
      ) assertEquals(await dpo.attempt(sql), DENIED, sql);
      for (
        const sql of [
          "UPDATE user_logins SET masked_ip = masked_ip, masked_device_id = masked_device_id",
          "DELETE FROM user_logins WHERE user_id = 'u1'",
          "DELETE FROM user_logins_rejected",
          "UPDATE pii_keys SET last_used = now()",
        ]
      ) assertEquals(await dpo.attempt(sql), "ok", sql);
    });
  } finally {
    await db.stop();
  }
});

Deno.test({
  name:
    "writer and analyst logins cannot read a ciphertext, call the vault functions or touch pii_access_log",
  ignore: NO_LOGIN_ROLES !== undefined,
}, async () => {
  const db = await startDatabase();
  try {
    await insertLogins(db, PEOPLE.slice(0, 3));
    await db.query("SELECT masq_recover_request('ip', ARRAY(SELECT token FROM pii_vault), 'owner', 'admin')");
    const id =
      (await db.query<{ id: string }>("SELECT masq_rekey_request('k2', NULL, 10, 'owner', 'admin') AS id"))[0]
        .id;
    await withLogins(db, ["writer", "analyst"], async (logins) => {
      for (const login of logins) {
        for (
          const sql of [
            "SELECT ciphertext FROM pii_vault",
            "SELECT masq_recover_request('ip', ARRAY(SELECT 'x'), 'a reason', 'me')",
            "SELECT * FROM masq_recover('ip', ARRAY['x'])",
            "SELECT masq_rekey_request('k2', NULL, 10, 'a reason', 'me')",
            `SELECT * FROM masq_rekey_batch(${id})`,
            "SELECT * FROM pii_access_log",
            "INSERT INTO pii_access_log (action, reason, outcome) VALUES ('forget_user', 'r', 'o')",
            "UPDATE pii_access_log SET reason = 'x'",
            "DELETE FROM pii_access_log",
            "UPDATE user_logins SET locale = 'x'",
            "UPDATE user_logins SET masked_ip = 'x'",
            "DELETE FROM user_logins",
            "DELETE FROM pii_vault",
            "SELECT * FROM pii_rekey_requests",
          ]
        ) assertEquals(await login.attempt(sql), DENIED, `${login.name}: ${sql}`);
      }
      const [writer, analyst] = logins;
      // Schema v4: the writer cannot read the vault's tokens either (it could enumerate addresses against them
      // with the HMAC key); it writes with ON CONFLICT DO NOTHING, which needs no SELECT.
      assertEquals(await writer.attempt("SELECT field, token FROM pii_vault"), DENIED);
      assertEquals(
        await writer.attempt(
          "INSERT INTO pii_vault (field, token, ciphertext, key_id) VALUES ('ip', 'w1', '\\x00', 'k1') ON CONFLICT DO NOTHING",
        ),
        "ok",
      );
      assertEquals(await writer.attempt("SELECT key_id FROM pii_vault"), DENIED);
      assertEquals(await analyst.attempt("SELECT user_id, masked_ip FROM user_logins_readable"), "ok");
      assertEquals(await analyst.attempt("SELECT token FROM pii_vault"), DENIED);
    });
  } finally {
    await db.stop();
  }
});

Deno.test({
  name:
    "recover, forget, rekey and redrive work for a privacy-officer login and are refused to writer and analyst logins",
  ignore: NO_LOGIN_ROLES !== undefined,
}, async () => {
  const db = await startDatabase();
  const sqs = await startEmbeddedSqs();
  const dir = await Deno.makeTempDir({ prefix: "masq-roles-" });
  try {
    await insertLogins(db, PEOPLE);
    const token = await (await tokensOf()).ip(IPS[0]);
    const newKey = "the-new-hmac-key-of-the-roles-test-0123456789";
    await Deno.writeTextFile(`${dir}/k2`, newKey);
    const vault = { PII_VAULT_KEY: VAULT_KEY_B64 };
    const commands = {
      recover: ["recover", "--field", "ip", "--token", token, "--reason", "ticket 5"],
      forget: ["forget", "--user-id", "u1", "--reason", "erasure 3"],
      rekey: ["rekey", "--to-key-file", `${dir}/k2`, "--to-key-id", "k2", "--batch", "5"],
    };
    await withLogins(db, ["writer", "analyst", "privacyOfficer"], async ([writer, analyst, dpo]) => {
      const before = await vaultCount(db);
      for (const login of [writer, analyst]) {
        for (const [name, args] of Object.entries(commands)) {
          const res = await masq(args, { databaseUrl: login.url, env: vault, read: [dir] });
          assertEquals(res.code, 1, `${login.name}: ${name}: ${res.stderr}`);
          assertEquals(res.stdout, "");
          assertMatch(res.stderr, /permission denied/);
        }
      }
      assertEquals(await vaultCount(db), before);
      assertEquals(await accessLog(db), []);

      const rec = await masq(commands.recover, { databaseUrl: dpo.url, env: vault });
      assertEquals([rec.code, rec.stdout], [0, `${IPS[0]}\n`], rec.stderr);
      const forgot = await masq(commands.forget, { databaseUrl: dpo.url });
      assertEquals(forgot.code, 0, forgot.stderr);
      const removed = JSON.parse(forgot.stdout.trim());
      assertEquals(await vaultCount(db), before - removed.vaultEntries);
      const rekeyed = await masq(commands.rekey, { databaseUrl: dpo.url, env: vault, read: [dir] });
      assertEquals(rekeyed.code, 0, rekeyed.stderr);
      assertEquals(JSON.parse(rekeyed.stdout.trim()).entries, before - removed.vaultEntries);
      assertEquals(
        (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pii_vault WHERE key_id = 'k2'"))[0].n,
        before - removed.vaultEntries,
      );
      const again = await masq(
        [
          "recover",
          "--field",
          "ip",
          "--token",
          await (await tokensOf(newKey)).ip(IPS[0]),
          "--reason",
          "check 1",
        ],
        { databaseUrl: dpo.url, env: vault },
      );
      assertEquals(again.stdout, `${IPS[0]}\n`, again.stderr);

      // redrive: one dead letter back to its queue, the access on record under the login.
      const queueUrl = sqs.createQueue("q");
      const dlqUrl = sqs.createQueue("q-dlq");
      const client = sqsClient(sqs);
      try {
        const letter = await deadLetterFor(
          {
            id: crypto.randomUUID(),
            receiptHandle: "r",
            body: '{"user_id":"u9"}',
            sentTimestamp: 1,
            receiveCount: 1,
          },
          "app_version is missing",
          '{"user_id":"u9"}',
          queueUrl,
          await createVaultCipher(VAULT_KEY, "v1"),
        );
        await client.send(
          new SendMessageCommand({
            QueueUrl: dlqUrl,
            MessageBody: letter.body,
            MessageAttributes: Object.fromEntries(
              Object.entries(letter.attributes).map(([k, v]) => [k, { DataType: "String", StringValue: v }]),
            ),
          }),
        );
        const redriven = await masq(["redrive"], {
          databaseUrl: dpo.url,
          env: { ...vault, SQS_QUEUE_URL: queueUrl, PII_HMAC_KEY: TEST_KEY },
        });
        assertEquals(redriven.code, 0, redriven.stderr);
        assertEquals(JSON.parse(redriven.stdout.trim()).redriven, 1);
        assertEquals((await receiveAll(client, queueUrl)).map((m) => m.Body), ['{"user_id":"u9"}']);
      } finally {
        client.destroy();
      }

      const log = await accessLog(db);
      assertEquals(
        new Set(log.map((l) => l.action)),
        new Set(["recover", "forget_user", "rekey", "redrive"]),
      );
      for (const l of log) assertEquals([l.db_role, l.session_role], [dpo.name, dpo.name]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
    await sqs.stop();
    await db.stop();
  }
});
