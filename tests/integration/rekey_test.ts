/**
 * `masq rekey`: every vaulted token re-made under the new key, rows rewritten, originals still
 * recoverable; resumable after a SIGKILL between batches; rows without an original reported.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { startDatabase, type TestDatabase } from "./harness.ts";
import { insertLogins, killAtPause, type Login, masq, tokensOf, VAULT_KEY_B64 } from "./lifecycle.ts";

const NEW_KEY = "a-new-hmac-key-for-the-rotation-test-0123456789";

function logins(n: number): Login[] {
  return Array.from({ length: n }, (_, i) => ({
    userId: `u${i % 7}`,
    ip: `10.9.${i % 5}.${i % 50}`,
    deviceId: i % 4 === 0 ? null : `device-${i % 30}`,
  }));
}

async function withKeyFile<T>(fn: (file: string, dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "masq-rekey-" });
  try {
    await Deno.writeTextFile(`${dir}/k2`, NEW_KEY + "\n");
    return await fn(`${dir}/k2`, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Every row's tokens, and whether each has a vault entry (and under which key). */
async function consistency(db: TestDatabase) {
  return (await db.query<{ orphans: number; k1: number; k2: number }>(
    `SELECT
       (SELECT count(*) FROM user_logins u WHERE
          (u.masked_ip IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pii_vault v WHERE v.field = 'ip' AND v.token = u.masked_ip))
          OR (u.masked_device_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM pii_vault v WHERE v.field = 'device_id' AND v.token = u.masked_device_id)))::int AS orphans,
       (SELECT count(*) FROM pii_vault WHERE key_id = 'k1')::int AS k1,
       (SELECT count(*) FROM pii_vault WHERE key_id = 'k2')::int AS k2`,
  ))[0];
}

/** Asserts that every row carries exactly the tokens the new key makes of its original. */
async function assertAllUnderNewKey(db: TestDatabase, seeded: Login[]) {
  const tok = await tokensOf(NEW_KEY);
  const expected = await Promise.all(seeded.map(async (l) =>
    [
      l.userId,
      l.ip === null ? null : await tok.ip(l.ip),
      l.deviceId === null ? null : await tok.deviceId(l.deviceId),
    ].join("|")
  ));
  const rows = await db.query<{ r: string }>(
    "SELECT concat_ws('|', user_id, coalesce(masked_ip, ''), coalesce(masked_device_id, '')) AS r FROM user_logins",
  );
  const norm = (s: string) => s.replaceAll("||", "|").replace(/\|$/, "");
  assertEquals(rows.map((r) => norm(r.r)).sort(), expected.map(norm).sort());
}

Deno.test("masq rekey re-tokenises every vaulted row under the new key, keeps originals recoverable, reports the rest", async () => {
  const db = await startDatabase();
  try {
    await withKeyFile(async (file, dir) => {
      const seeded = logins(40);
      await insertLogins(db, seeded);
      await insertLogins(db, [{ userId: "legacy", ip: "172.16.0.9", deviceId: "legacy-phone" }], {
        vault: false,
      });
      const before = await consistency(db);
      const res = await masq(
        ["rekey", "--to-key-file", file, "--to-key-id", "k2", "--batch", "7", "--reason", "yearly rotation"],
        { databaseUrl: db.url, env: { PII_VAULT_KEY: VAULT_KEY_B64 }, read: [dir] },
      );
      assertEquals(res.code, 0, res.stderr);
      const out = JSON.parse(res.stdout.trim());
      assertEquals(out.entries, before.k1);
      assertEquals(out.batches, Math.ceil(before.k1 / 7));
      assertEquals(out.rowsWithoutOriginal, { maskedIp: 1, maskedDeviceId: 1 });
      assertMatch(res.stderr, /rekey progress/);
      assertMatch(res.stderr, /some rows keep tokens of an older key/);
      assert(!res.stderr.includes(NEW_KEY), "the key is never logged");
      const after = await consistency(db);
      assertEquals(after, { orphans: 1, k1: 0, k2: before.k1 }); // the legacy row has no original
      await db.query("DELETE FROM user_logins WHERE user_id = 'legacy'");
      await assertAllUnderNewKey(db, seeded);
      const keys = await db.query<{ id: string }>("SELECT id FROM pii_keys ORDER BY id");
      assertEquals(keys.map((k) => k.id), ["k2"]);
      const logged = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pii_access_log WHERE action = 'rekey' AND reason = 'yearly rotation'",
      );
      assertEquals(logged[0].n, out.batches);
      // The originals come back under the new tokens.
      const token = await (await tokensOf(NEW_KEY)).ip(seeded[3].ip!);
      const rec = await masq(["recover", "--field", "ip", "--token", token, "--reason", "check"], {
        databaseUrl: db.url,
        env: { PII_VAULT_KEY: VAULT_KEY_B64 },
      });
      assertEquals(rec.stdout, `${seeded[3].ip}\n`, rec.stderr);
      // Nothing left to do: a second run is a no-op.
      const again = await masq(["rekey", "--to-key-file", file, "--to-key-id", "k2"], {
        databaseUrl: db.url,
        env: { PII_VAULT_KEY: VAULT_KEY_B64 },
        read: [dir],
      });
      assertEquals(JSON.parse(again.stdout.trim()).entries, 0, again.stderr);
    });
  } finally {
    await db.stop();
  }
});

Deno.test("masq rekey killed (SIGKILL) between batches leaves every row consistent; run again, it finishes", async () => {
  const db = await startDatabase();
  try {
    await withKeyFile(async (file, dir) => {
      const seeded = logins(120);
      await insertLogins(db, seeded);
      const before = await consistency(db);
      const o = { databaseUrl: db.url, env: { PII_VAULT_KEY: VAULT_KEY_B64 }, read: [dir] };
      const args = ["rekey", "--to-key-file", file, "--to-key-id", "k2", "--batch", "10"];
      await killAtPause(args, o, "rekey");
      const mid = await consistency(db);
      assertEquals(
        mid,
        { orphans: 0, k1: before.k1 - 10, k2: 10 },
        "one batch committed whole, no row orphaned",
      );
      const res = await masq(args, o);
      assertEquals(res.code, 0, res.stderr);
      assertEquals(JSON.parse(res.stdout.trim()).entries, before.k1 - 10);
      assertEquals(await consistency(db), { orphans: 0, k1: 0, k2: before.k1 });
      await assertAllUnderNewKey(db, seeded);
    });
  } finally {
    await db.stop();
  }
});

Deno.test("masq rekey refuses without a key file, a key id or the vault key", async () => {
  const db = await startDatabase();
  try {
    const noFile = await masq(["rekey", "--to-key-id", "k2"], { databaseUrl: db.url });
    assertEquals(noFile.code, 2);
    assertMatch(noFile.stderr, /^masq: --to-key-file: required/);
    const noId = await masq(["rekey", "--to-key-file", "/nonexistent"], { databaseUrl: db.url });
    assertMatch(noId.stderr, /^masq: --to-key-id: required/);
    const missing = await masq(["rekey", "--to-key-file", "secrets/nope", "--to-key-id", "k2"], {
      databaseUrl: db.url,
    });
    assertEquals(missing.code, 2);
    assertMatch(missing.stderr, /^masq: --to-key-file: cannot read "secrets\/nope": no such file/);
    await withKeyFile(async (file, dir) => {
      const noVault = await masq(["rekey", "--to-key-file", file, "--to-key-id", "k2"], {
        databaseUrl: db.url,
        read: [dir],
      });
      assertEquals(noVault.code, 2);
      assertMatch(noVault.stderr, /^masq: PII_VAULT_KEY: not set/);
    });
  } finally {
    await db.stop();
  }
});
