/**
 * `masq vault-convert` (lib/lifecycle/convert.ts) against real PostgreSQL, over the real CLI: a vault under
 * the old symmetric key becomes sealed entries in committed batches; SIGKILLed between batches, the old key
 * still opens what is left and a second run finishes; every entry is converted exactly once, each person
 * sharing a value gets their own sealed entry, a value no row carries is sealed to the officer; then the
 * old key can be retired.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { decodeEntry, generateOfficerKeys } from "../../lib/seal.ts";
import { TEST_KEY } from "../support/processes.ts";
import { startDatabase } from "../support/databases.ts";
import { roleNames } from "../../lib/sink/schema.ts";
import {
  createLogin,
  insertLogins,
  killAtPause,
  type Login,
  masq,
  NO_LOGIN_ROLES,
  tokensOf,
  VAULT_KEY_B64,
} from "../support/lifecycle.ts";

const PEOPLE: Login[] = Array.from({ length: 24 }, (_, i) => ({
  userId: `u${i % 6}`,
  ip: `10.7.0.${i % 5}`, // values shared between people (u0 and u5 both have 10.7.0.0, ...)
  deviceId: i % 5 === 0 ? null : `device-${i % 6}`,
}));

Deno.test("masq vault-convert SIGKILLed between batches leaves the old key reading the rest; run again, every entry is sealed exactly once", async () => {
  const db = await startDatabase();
  try {
    await insertLogins(db, [...PEOPLE, { userId: "ghost", ip: "10.7.99.99", deviceId: null }]);
    await db.query("DELETE FROM user_logins WHERE user_id = 'ghost'"); // an entry no row carries
    const before = await db.query<{ field: string; token: string }>(
      "SELECT field, token FROM pii_vault ORDER BY field, token",
    );
    const total = before.length;
    assert(total > 10, "enough entries for several batches");
    // What each old entry must become: one sealed entry per person whose rows carry its token (or one).
    const expected = await db.query<{ n: number }>(
      `SELECT coalesce(sum(greatest(1, (SELECT count(DISTINCT u.user_id) FROM user_logins u
          WHERE (v.field = 'ip' AND u.masked_ip = v.token) OR (v.field = 'device_id' AND u.masked_device_id = v.token)))), 0)::int AS n
       FROM pii_vault v`,
    );
    const keys = await generateOfficerKeys();
    const env = {
      PII_VAULT_KEY: VAULT_KEY_B64,
      PII_VAULT_PRIVATE_KEY: keys.privateText,
      PII_HMAC_KEY: TEST_KEY,
    };
    const o = { databaseUrl: db.url, env };
    const args = ["vault-convert", "--batch", "5", "--reason", "seal the vault"];

    await killAtPause(args, o, "convert");
    const legacyLeft = async () =>
      (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pii_vault WHERE subject_key_id = ''"))[0]
        .n;
    assertEquals(await legacyLeft(), total - 5, "the first batch committed, nothing of the second");

    // Mid-conversion, both kinds open: converted entries with the private key, the rest with the old key.
    const tok = await tokensOf();
    const recover = (ip: string, e: Record<string, string>) =>
      tok.ip(ip).then((t) =>
        masq(["recover", "--field", "ip", "--token", t, "--reason", "ticket 3"], {
          databaseUrl: db.url,
          env: e,
        })
      );
    const ips = [...new Set(PEOPLE.map((p) => p.ip!)), "10.7.99.99"];
    for (const ip of ips) {
      const r = await recover(ip, env);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout.trim(), ip);
    }

    const rest = await masq(args, o);
    assertEquals(rest.code, 0, rest.stderr);
    const result = JSON.parse(rest.stdout.trim());
    assertEquals(result.converted, total - 5);
    assertEquals(result.left, 0);
    assertEquals(await legacyLeft(), 0);

    const rows = await db.query<
      { field: string; token: string; ciphertext: Uint8Array; subject_key_id: string }
    >(
      "SELECT field, token, ciphertext, subject_key_id FROM pii_vault",
    );
    assertEquals(rows.length, expected[0].n, "one sealed entry per (value, person); none twice");
    assertEquals(
      [...new Set(rows.map((r) => `${r.field}:${r.token}`))].sort(),
      before.map((b) => `${b.field}:${b.token}`).sort(),
      "every old entry converted, none lost",
    );
    assert(rows.every((r) => decodeEntry(new Uint8Array(r.ciphertext))?.recipient === r.subject_key_id));
    const ghost = await tok.ip("10.7.99.99");
    assertEquals(rows.filter((r) => r.token === ghost).map((r) => r.subject_key_id[0]), ["o"]);
    assertEquals(
      rows.filter((r) => r.subject_key_id.startsWith("o:")).length,
      1,
      "only the ghost's has no subject",
    );
    assert(rows.length > total, "shared values got one entry per person");
    const reads = await db.query<{ outcome: string }>(
      "SELECT outcome FROM pii_access_log WHERE action = 'convert' AND outcome LIKE 'read %'",
    );
    assertEquals(
      reads.reduce((n, r) => n + Number(r.outcome.split(" ")[1]), 0),
      total,
      "each entry read once",
    );

    // The old key is retired: recover opens everything with the private key alone.
    const { PII_VAULT_KEY: _retired, ...sealedOnly } = env;
    for (const ip of ips) {
      const r = await recover(ip, sealedOnly);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout.trim(), ip);
    }
    const again = await masq(args, o);
    assertEquals(again.code, 0, again.stderr);
    assertEquals(JSON.parse(again.stdout.trim()), { converted: 0, sealed: 0, batches: 0, left: 0 });
  } finally {
    await db.stop();
  }
});

Deno.test({
  name: "masq vault-convert works for a privacy-officer login and is refused to writer and analyst logins",
  ignore: NO_LOGIN_ROLES !== undefined,
}, async () => {
  const db = await startDatabase();
  const r = roleNames(db.rolePrefix);
  const logins = [
    await createLogin(db, r.privacyOfficer, "dpo"),
    await createLogin(db, r.writer, "w"),
    await createLogin(db, r.analyst, "a"),
  ];
  try {
    await insertLogins(db, PEOPLE.slice(0, 6));
    const keys = await generateOfficerKeys();
    const env = {
      PII_VAULT_KEY: VAULT_KEY_B64,
      PII_VAULT_PRIVATE_KEY: keys.privateText,
      PII_HMAC_KEY: TEST_KEY,
    };
    const [dpo, writer, analyst] = logins;
    for (const refused of [writer, analyst]) {
      const res = await masq(["vault-convert", "--reason", "seal"], { databaseUrl: refused.url, env });
      assert(res.code !== 0, `${refused.name} may not convert`);
      assert(/permission denied/.test(res.stderr), res.stderr);
    }
    const res = await masq(["vault-convert", "--reason", "seal"], { databaseUrl: dpo.url, env });
    assertEquals(res.code, 0, res.stderr);
    assertEquals(JSON.parse(res.stdout.trim()).left, 0);
    const lines = await db.query<{ db_role: string }>(
      "SELECT DISTINCT db_role FROM pii_access_log WHERE action = 'convert'",
    );
    assertEquals(lines.map((l) => l.db_role), [dpo.name]);
  } finally {
    for (const l of logins) await l.drop().catch(() => {});
    await db.stop();
  }
});
