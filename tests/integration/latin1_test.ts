/**
 * A database whose encoding cannot hold every character a producer may send (LATIN1): a login with
 * characters LATIN1 has no room for is a rejection whose reason names the field (ASCII, storable in any
 * encoding), never a run that fails on the same message every time; one with characters LATIN1 holds is
 * stored. A real PostgreSQL database of its own on TEST_DATABASE_URL's server, the real CLI and fauxqs.
 */
import pg from "pg";
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { seedQueue } from "../../lib/demo.ts";
import { dropRoles, migrate } from "../../lib/sink/schema.ts";
import { queueDepth, receiveAll, sqsClient } from "../support/sqs.ts";
import { runMasqCliWithin } from "../support/processes.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";

const BASE = Deno.env.get("TEST_DATABASE_URL");

/** A fresh LATIN1 database on the test server, migrated, with roles of its own; dropped by `stop`. */
async function startLatin1Database() {
  const name = `masq_latin1_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const rolePrefix = `${name}_`;
  const admin = new pg.Client({ connectionString: BASE });
  await admin.connect();
  await admin.query(
    `CREATE DATABASE ${name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`,
  );
  const u = new URL(BASE!);
  u.pathname = `/${name}`;
  const url = u.toString();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await migrate(client, { rolePrefix });
  } catch (err) {
    await client.end();
    await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
    await dropRoles(admin, rolePrefix);
    await admin.end();
    throw err;
  }
  return {
    url,
    query: async <T>(sql: string) => (await client.query(sql)).rows as T[],
    async stop() {
      await client.end();
      await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
      await dropRoles(admin, rolePrefix);
      await admin.end();
    },
  };
}

const body = (user: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    user_id: user,
    app_version: "2.3.0",
    device_type: "android",
    ip: "192.0.2.7",
    device_id: "dev-7",
    ...extra,
  });

Deno.test({
  name:
    "masq run on a LATIN1 database rejects logins with characters it cannot store, naming the field, stores the others, and exits 0",
  ignore: BASE === undefined,
  async fn() {
    const db = await startLatin1Database();
    const sqs = await startEmbeddedSqs();
    const client = sqsClient(sqs);
    try {
      const bodies = [
        body("用户-1"), // CJK: no LATIN1 equivalent
        // An emoji, written as JSON escapes (the emulator refuses characters beyond U+FFFF in a body).
        body("user-\u{1F600}").replace("\u{1F600}", "\\ud83d\\ude00"),
        body("josé", { device_type: "téléphone" }), // LATIN1 holds é
        body("plain-user"),
        body("用户-2", { app_version: "not a version" }), // rejected by masq, its redacted body unstorable
        body("e\u0301mile"), // a combining accent: LATIN1 has no U+0301
      ];
      const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "30" });
      await seedQueue(sqs.endpoint, queueUrl, bodies);
      const res = await runMasqCliWithin(90_000, ["run"], {
        queueUrl,
        databaseUrl: db.url,
        extra: { MASQ_CONCURRENCY: "1", MASQ_LOG_FORMAT: "json" },
      });
      assertEquals(res.code, 0, res.stderr.slice(-4000));
      const s = res.summary!;
      assertEquals([s.received, s.inserted, s.rejected, s.duplicates], [6, 2, 4, 0]);

      const users = await db.query<{ user_id: string; device_type: string }>(
        "SELECT user_id, device_type FROM user_logins ORDER BY user_id",
      );
      assertEquals(users, [
        { user_id: "josé", device_type: "téléphone" },
        { user_id: "plain-user", device_type: "android" },
      ]);
      const rejected = await db.query<{ reason: string; body_redacted: string | null }>(
        "SELECT reason, body_redacted FROM user_logins_rejected ORDER BY reason",
      );
      assertEquals(rejected.length, 4);
      const cannot =
        /user_id holds a character the database encoding \(LATIN1\) cannot store \(SQLSTATE 22P05\)/;
      assertEquals(rejected.filter((r) => cannot.test(r.reason)).length, 3, JSON.stringify(rejected));
      for (const r of rejected) {
        assertMatch(r.reason, /^[\x20-\x7e]+$/, "the reason is ASCII");
        assert(!r.reason.includes("用户") && !r.reason.includes("\u{1F600}"), r.reason);
      }
      const ledger = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins_ledger");
      assertEquals(ledger[0].n, bodies.length, "rows + rejections = messages");
      assertEquals(await queueDepth(client, queueUrl), { visible: 0, inFlight: 0 });
      // Every rejection was dead-lettered (SQS stores what LATIN1 cannot).
      assertEquals((await receiveAll(client, `${queueUrl}-dlq`)).length, 4);
    } finally {
      client.destroy();
      await sqs.stop();
      await db.stop();
    }
  },
});
