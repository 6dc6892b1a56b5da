/**
 * `masq forget`: a person's rows and the vault entries nobody else needs go, shared entries stay, one
 * entry can go alone; all logged, all in one transaction (SIGKILL mid-way, run again: consistent).
 */
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { createMasker } from "../../lib/transform/mask.ts";
import { redactBody } from "../../lib/transform/redact.ts";
import { startDatabase, type TestDatabase } from "../support/databases.ts";
import { TEST_KEY } from "../support/processes.ts";
import {
  insertLogins,
  killAtPause,
  masq,
  tokensOf,
  VAULT_KEY_B64,
  vaultCount,
} from "../support/lifecycle.ts";

const SHARED_IP = "100.64.0.1";

async function seed(db: TestDatabase) {
  await insertLogins(db, [
    { userId: "u1", ip: SHARED_IP, deviceId: "phone-u1" },
    { userId: "u1", ip: "100.64.0.2", deviceId: "phone-u1" },
    { userId: "u1", ip: "100.64.0.2", deviceId: null },
    { userId: "u2", ip: SHARED_IP, deviceId: "phone-u2" },
    { userId: "u10", ip: "100.64.0.10", deviceId: "phone-u10" },
  ]);
  await db.query(
    `INSERT INTO user_logins_rejected (message_id, reason, body_redacted, rejected_at) VALUES
       ('r1', 'app_version is malformed', '{"user_id":"u1","app_version":"x"}', now()),
       ('r2', 'app_version is malformed', '{"user_id":"u10","app_version":"x"}', now()),
       ('r3', 'body is not valid JSON', NULL, now())`,
  );
}

async function state(db: TestDatabase) {
  const q = async (sql: string) => (await db.query<{ v: unknown }>(sql)).map((r) => r.v);
  return {
    users: await q("SELECT user_id AS v FROM user_logins ORDER BY 1"),
    rejected: await q("SELECT message_id AS v FROM user_logins_rejected ORDER BY 1"),
    vault: (await q("SELECT count(*)::int AS v FROM pii_vault"))[0],
    log: await q(
      "SELECT action || ':' || coalesce(user_id, token) || ':' || outcome AS v FROM pii_access_log ORDER BY id",
    ),
  };
}

Deno.test("masq forget --user-id erases the person's rows and unshared vault entries, keeps what others share", async () => {
  const db = await startDatabase();
  try {
    await seed(db);
    const entries = await vaultCount(db);
    const res = await masq(["forget", "--user-id", "u1", "--reason", "erasure request 2026-117"], {
      databaseUrl: db.url,
    });
    assertEquals(res.code, 0, res.stderr);
    assertEquals(await vaultCount(db), entries - 2);
    assertEquals(JSON.parse(res.stdout.trim()), {
      userLogins: 3,
      rejected: 1,
      vaultEntries: 2, // 100.64.0.2 and phone-u1
      vaultEntriesKept: 1, // the IP u2 shares
      subjectKeys: 0, // a vault under the old symmetric key has none
    });
    const s = await state(db);
    assertEquals(s.users, ["u10", "u2"]);
    assertEquals(s.rejected, ["r2", "r3"]);
    assertEquals(s.vault, 4); // shared IP, phone-u2, u10's IP and phone
    assertEquals(s.log, [
      "forget_user:u1:removed user_logins=3 user_logins_rejected=1 pii_vault=2 kept_shared=1 subject_keys=0",
    ]);
    // u2's shared address still recovers.
    const tok = await tokensOf();
    const rec = await masq(
      ["recover", "--field", "ip", "--token", await tok.ip(SHARED_IP), "--reason", "check"],
      { databaseUrl: db.url, env: { PII_VAULT_KEY: VAULT_KEY_B64 } },
    );
    assertEquals(rec.stdout, `${SHARED_IP}\n`, rec.stderr);
    // u1's own address is gone for good.
    const gone = await masq(
      ["recover", "--field", "ip", "--token", await tok.ip("100.64.0.2"), "--reason", "check"],
      { databaseUrl: db.url, env: { PII_VAULT_KEY: VAULT_KEY_B64 } },
    );
    assertEquals(gone.code, 1);
    assertEquals(gone.stdout, "");
  } finally {
    await db.stop();
  }
});

Deno.test("masq forget --field --token erases one vault entry; rows keep a token that leads nowhere", async () => {
  const db = await startDatabase();
  try {
    await seed(db);
    const token = await (await tokensOf()).deviceId("phone-u2");
    const res = await masq(["forget", "--field", "device_id", "--token", token, "--reason", "objection"], {
      databaseUrl: db.url,
    });
    assertEquals(res.code, 0, res.stderr);
    assertEquals(JSON.parse(res.stdout.trim()), { vaultEntries: 1, rowsStillReferencing: 1 });
    assertEquals((await state(db)).vault, 5);
    const again = await masq(["forget", "--field", "device_id", "--token", token, "--reason", "objection"], {
      databaseUrl: db.url,
    });
    assertEquals(JSON.parse(again.stdout.trim()).vaultEntries, 0);
    assertEquals((await state(db)).log, [`forget_token:${token}:removed`, `forget_token:${token}:not_found`]);
  } finally {
    await db.stop();
  }
});

Deno.test("masq forget refuses ambiguous or reasonless requests", async () => {
  const db = await startDatabase();
  try {
    const both = await masq([
      "forget",
      "--user-id",
      "u1",
      "--field",
      "ip",
      "--token",
      "a".repeat(64),
      "--reason",
      "r",
    ], {
      databaseUrl: db.url,
    });
    assertEquals(both.code, 2);
    assertMatch(both.stderr, /^masq: usage: give either --user-id, or --field with --token/);
    const none = await masq(["forget", "--user-id", "u1"], { databaseUrl: db.url });
    assertEquals(none.code, 2);
    assertMatch(none.stderr, /^masq: --reason: required/);
  } finally {
    await db.stop();
  }
});

Deno.test("masq forget killed mid-transaction (SIGKILL) leaves everything as it was; run again, it completes", async () => {
  const db = await startDatabase();
  try {
    await seed(db);
    const before = await state(db);
    const args = ["forget", "--user-id", "u1", "--reason", "erasure request 9"];
    await killAtPause(args, { databaseUrl: db.url }, "forget");
    assertEquals(await state(db), before, "a killed forget commits nothing");
    const res = await masq(args, { databaseUrl: db.url });
    assertEquals(res.code, 0, res.stderr);
    const after = await state(db);
    assertEquals(after.users, ["u10", "u2"]);
    assertEquals(after.vault, 4);
    assertEquals(after.log.length, 1);
  } finally {
    await db.stop();
  }
});

Deno.test("masq forget --user-id finds a non-ASCII person's rejected bodies as masq stores them (\\u escapes)", async () => {
  const db = await startDatabase();
  try {
    const masker = createMasker(TEST_KEY);
    const ids = ["rt-élève", "用户-42", "u-😀-x", "Ωmega\u00a0π", "ok\u007fdel"];
    // Near misses that must stay: other people whose ids share a prefix, an escape or a letter.
    const others = ["rt-eleve", "rt-élève2", "用户-43", "u-😁-x", "x-rt-élève"];
    const people = [...ids, ...others];
    await insertLogins(
      db,
      people.map((userId, i) => ({ userId, ip: `192.0.2.${i + 1}`, deviceId: `d-${i}` })),
    );
    for (const [i, userId] of people.entries()) {
      const body = redactBody(
        { user_id: userId, app_version: "not a version", ip: `192.0.2.${i + 1}` },
        masker,
        Date.now(),
      );
      assert(body !== null && /^[\x20-\x7e]*$/.test(body) && body.includes(`"user_id":"`));
      await db.query(
        `INSERT INTO user_logins_rejected (message_id, reason, body_redacted, rejected_at)
         VALUES ($1, 'app_version is malformed', $2, now())`,
        [`r-${i}`, body],
      );
    }
    const entries = await vaultCount(db);
    for (const [i, userId] of ids.entries()) {
      const res = await masq(["forget", "--user-id", userId, "--reason", "erasure request 12"], {
        databaseUrl: db.url,
      });
      assertEquals(res.code, 0, res.stderr);
      assertEquals(JSON.parse(res.stdout.trim()), {
        userLogins: 1,
        rejected: 1,
        vaultEntries: 2,
        vaultEntriesKept: 0,
        subjectKeys: 0,
      }, userId);
      assertEquals(await vaultCount(db), entries - 2 * (i + 1), "the person's own two entries only");
    }
    const s = await state(db);
    assertEquals(s.users, [...others].sort());
    assertEquals(s.rejected, others.map((_, i) => `r-${ids.length + i}`).sort());
    assertEquals(
      (await db.query<{ user_id: string }>("SELECT user_id FROM pii_access_log ORDER BY id")).map((l) =>
        l.user_id
      ),
      ids,
      "each logged as given",
    );
  } finally {
    await db.stop();
  }
});

Deno.test("masq forget refuses a reason that shows nothing, and an id PostgreSQL cannot hold", async () => {
  const db = await startDatabase();
  try {
    await seed(db);
    const before = await state(db);
    for (const reason of ["\u200b", "  ", "!!!", "\u2060\u2060\u2060"]) {
      const res = await masq(["forget", "--user-id", "u1", "--reason", reason], { databaseUrl: db.url });
      assertEquals(res.code, 2, JSON.stringify(reason));
      assertMatch(res.stderr, /^masq: --reason: /);
    }
    const long = await masq(["forget", "--user-id", "é".repeat(129), "--reason", "erasure 5"], {
      databaseUrl: db.url,
    });
    assertEquals(long.code, 2);
    assertEquals(long.stderr, "masq: --user-id: must be 1 to 128 characters\n");
    const astral = await masq(["forget", "--user-id", "😀".repeat(100), "--reason", "erasure 5"], {
      databaseUrl: db.url,
    });
    assertEquals(astral.code, 0, `100 characters fit varchar(128): ${astral.stderr}`);
    assertEquals(await state(db), {
      ...before,
      log: [
        "forget_user:" + "😀".repeat(100) +
        ":removed user_logins=0 user_logins_rejected=0 pii_vault=0 kept_shared=0 subject_keys=0",
      ],
    });
  } finally {
    await db.stop();
  }
});
