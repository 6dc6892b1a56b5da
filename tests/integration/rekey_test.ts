/**
 * `masq rekey`: every vaulted token re-made under the new key, rows rewritten, originals still
 * recoverable; resumable after a SIGKILL between batches; rows without an original reported.
 */
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { collect, TEST_KEY } from "../support/processes.ts";
import { startDatabase, type TestDatabase } from "../support/databases.ts";
import {
  insertLogins,
  killAtPause,
  type Login,
  masq,
  OTHER_VAULT_KEY_B64,
  spawnLifecycle,
  tokensOf,
  VAULT_KEY,
  VAULT_KEY_B64,
  vaultCount,
} from "../support/lifecycle.ts";

const NEW_KEY = "a-new-hmac-key-for-the-rotation-test-0123456789";

function logins(n: number): Login[] {
  return Array.from({ length: n }, (_, i) => ({
    userId: `u${i % 7}`,
    ip: `10.9.${i % 5}.${i % 50}`,
    deviceId: i % 4 === 0 ? null : `device-${i % 30}`,
  }));
}

async function withKeyFile<T>(
  fn: (file: string, dir: string) => Promise<T>,
  key: string | Uint8Array = NEW_KEY + "\n",
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "masq-rekey-" });
  try {
    if (typeof key === "string") await Deno.writeTextFile(`${dir}/k2`, key);
    else await Deno.writeFile(`${dir}/k2`, key);
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
      // Each batch: its request, committed before the read, and what it read.
      const logged = await db.query<{ outcome: string; db_role: string }>(
        "SELECT outcome, db_role FROM pii_access_log WHERE action = 'rekey' AND reason = 'yearly rotation' ORDER BY id",
      );
      assertEquals(logged.filter((l) => /^read \d+ vault entries/.test(l.outcome)).length, out.batches);
      assertEquals(logged.filter((l) => l.outcome.startsWith("requested up to 7 ")).length, out.batches);
      assertEquals(
        logged.filter((l) => /^read /.test(l.outcome)).reduce(
          (n, l) => n + Number(l.outcome.split(" ")[1]),
          0,
        ),
        before.k1,
      );
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
    assertEquals(missing.stderr, "masq: --to-key-file: cannot read the file it names: no such file\n");
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

/** Everything a rekey may change: every vault entry and every row, as they are. */
async function snapshot(db: TestDatabase) {
  return {
    vault: await db.query(
      "SELECT field, token, key_id, encode(ciphertext, 'hex') AS c FROM pii_vault ORDER BY field, token",
    ),
    rows: await db.query(
      "SELECT user_id, masked_ip, masked_device_id FROM user_logins ORDER BY user_id, masked_ip, masked_device_id",
    ),
    keys: await db.query("SELECT id FROM pii_keys ORDER BY id"),
  };
}

Deno.test("masq rekey refuses the current HMAC key under a new id before any change, and every vault entry stays", async () => {
  const db = await startDatabase();
  try {
    const seeded = logins(20);
    await insertLogins(db, seeded);
    // Entries of an older key first in the table, so the probe of every old key is what refuses.
    await insertLogins(db, [{ userId: "old", ip: "192.0.2.99", deviceId: null }], {
      hmacKey: "an-older-hmac-key-for-the-rekey-test-0123456789",
      keyId: "k0",
    });
    await db.query("INSERT INTO pii_keys VALUES ('k0', now(), now()), ('k1', now(), now())");
    const before = await snapshot(db);
    const entries = await vaultCount(db);
    await withKeyFile(async (file, dir) => {
      const res = await masq(["rekey", "--to-key-file", file, "--to-key-id", "k2"], {
        databaseUrl: db.url,
        env: { PII_VAULT_KEY: VAULT_KEY_B64 },
        read: [dir],
      });
      assertEquals(res.code, 2, res.stderr);
      assertEquals(
        res.stderr,
        "masq: --to-key-file: the new key makes the same tokens as HMAC key k1: it is the same key (under a new id); nothing was changed\n",
      );
      assertEquals(res.stdout, "");
    }, TEST_KEY + "\n");
    assertEquals(await snapshot(db), before);
    assertEquals(await vaultCount(db), entries);
    const token = await (await tokensOf()).ip(seeded[0].ip!);
    const rec = await masq(["recover", "--field", "ip", "--token", token, "--reason", "still there?"], {
      databaseUrl: db.url,
      env: { PII_VAULT_KEY: VAULT_KEY_B64 },
    });
    assertEquals(rec.stdout, `${seeded[0].ip}\n`, rec.stderr);
  } finally {
    await db.stop();
  }
});

Deno.test("masq rekey refuses a weak, public or vault key as the new key, before any change", async () => {
  const db = await startDatabase();
  try {
    await insertLogins(db, logins(10));
    const before = await snapshot(db);
    // A vault key whose bytes are text, to be given as the new key byte for byte.
    const textVaultKey = "q8Zr3Kp0Lw7Vx2Nm5Tb9Hc4Jf6Dg1Ys@";
    const cases: [string | Uint8Array, RegExp, string?][] = [
      ["x\n", /^masq: --to-key-file: /],
      ["example-key\n", /^masq: --to-key-file: /],
      ["masq-demo-key-NOT-SECRET-do-not-use-in-production", /^masq: --to-key-file: /],
      [" \n", /^masq: --to-key-file: /],
      ["\n", /^masq: --to-key-file: names an empty file/],
      [VAULT_KEY_B64 + "\n", /^masq: --to-key-file: holds the vault key/],
      [VAULT_KEY_B64.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, ""), /holds the vault key/],
      [Array.from(VAULT_KEY, (b) => b.toString(16).padStart(2, "0")).join(""), /holds the vault key/],
      [textVaultKey, /^masq: --to-key-file: holds the vault key/, btoa(textVaultKey)],
    ];
    for (const [key, expected, vaultKey] of cases) {
      await withKeyFile(async (file, dir) => {
        const res = await masq(["rekey", "--to-key-file", file, "--to-key-id", "k2"], {
          databaseUrl: db.url,
          env: { PII_VAULT_KEY: vaultKey ?? VAULT_KEY_B64 },
          read: [dir],
        });
        assertEquals(res.code, 2, `${JSON.stringify(key)}: ${res.stderr}`);
        assertMatch(res.stderr, expected);
        assertEquals(res.stderr.trim().split("\n").length, 1, "one line");
        const text = typeof key === "string" ? key.trim() : "";
        if (text.length > 3) assert(!res.stderr.includes(text), "never the key");
      }, key);
    }
    assertEquals(await snapshot(db), before);
  } finally {
    await db.stop();
  }
});

Deno.test("masq rekey's errors about the key file never print its path or content, nor PII_VAULT_KEY_ID's value", async () => {
  const db = await startDatabase();
  try {
    const o = { databaseUrl: db.url, env: { PII_VAULT_KEY: VAULT_KEY_B64 } };
    // The key itself given where its file was meant.
    const byMistake = await masq(["rekey", "--to-key-file", NEW_KEY, "--to-key-id", "k2"], o);
    assertEquals(byMistake.code, 2);
    assertMatch(byMistake.stderr, /^masq: --to-key-file: cannot read the file it names: not readable/);
    assert(!byMistake.stderr.includes(NEW_KEY), byMistake.stderr);
    const secretPath = `secrets/${NEW_KEY}`;
    const unreadable = await masq(["rekey", "--to-key-file", `/root/${NEW_KEY}`, "--to-key-id", "k2"], o);
    assertEquals(unreadable.code, 2);
    assert(!unreadable.stderr.includes(NEW_KEY), unreadable.stderr);
    const missing = await masq(["rekey", "--to-key-file", secretPath, "--to-key-id", "k2"], o);
    assertEquals(missing.stderr, "masq: --to-key-file: cannot read the file it names: no such file\n");
    await withKeyFile(async (file, dir) => {
      const dirError = await masq(["rekey", "--to-key-file", dir, "--to-key-id", "k2"], {
        ...o,
        read: [dir],
      });
      assertEquals(dirError.code, 2);
      assert(!dirError.stderr.includes(dir), dirError.stderr);
      const badId = await masq(["rekey", "--to-key-file", file, "--to-key-id", "k2"], {
        ...o,
        env: { ...o.env, PII_VAULT_KEY_ID: NEW_KEY },
        read: [dir],
      });
      assertEquals(badId.code, 2);
      assertEquals(badId.stderr, "masq: PII_VAULT_KEY_ID: is not a key id (1-32 of A-Z a-z 0-9 . _ -)\n");
      const keyAsId = await masq([
        "rekey",
        "--to-key-file",
        file,
        "--to-key-id",
        "k2key-9f3a7c1e5b0d82a64f1c9e7b30",
      ], {
        ...o,
        read: [dir],
      });
      assertEquals(keyAsId.code, 2);
      assertMatch(keyAsId.stderr, /^masq: --to-key-id: is the new key itself/);
    }, "k2key-9f3a7c1e5b0d82a64f1c9e7b30");
  } finally {
    await db.stop();
  }
});

Deno.test("masq rekey with the wrong vault key, or a new id already naming another key's entries, changes nothing", async () => {
  const db = await startDatabase();
  try {
    await insertLogins(db, logins(30));
    await insertLogins(db, [{ userId: "k2-user", ip: "192.0.2.77", deviceId: null }], {
      hmacKey: "yet-another-hmac-key-named-k3-0123456789abcdef",
      keyId: "k3",
    });
    const before = await snapshot(db);
    await withKeyFile(async (file, dir) => {
      const wrong = await masq(["rekey", "--to-key-file", file, "--to-key-id", "k2"], {
        databaseUrl: db.url,
        env: { PII_VAULT_KEY: OTHER_VAULT_KEY_B64 },
        read: [dir],
      });
      assertEquals(wrong.code, 2, wrong.stderr);
      assertMatch(wrong.stderr, /^masq: PII_VAULT_KEY: the vault entry of .* does not decrypt/);
      assertEquals(await snapshot(db), before);
      const taken = await masq(["rekey", "--to-key-file", file, "--to-key-id", "k3"], {
        databaseUrl: db.url,
        env: { PII_VAULT_KEY: VAULT_KEY_B64 },
        read: [dir],
      });
      assertEquals(taken.code, 2, taken.stderr);
      assertMatch(
        taken.stderr,
        /^masq: --to-key-id: already names vault entries made under another HMAC key/,
      );
      assertEquals(await snapshot(db), before);
      const reasonless = await masq([
        "rekey",
        "--to-key-file",
        file,
        "--to-key-id",
        "k2",
        "--reason",
        "\u200b",
      ], {
        databaseUrl: db.url,
        env: { PII_VAULT_KEY: VAULT_KEY_B64 },
        read: [dir],
      });
      assertEquals(reasonless.code, 2);
      assertMatch(reasonless.stderr, /^masq: --reason: must hold at least 3 visible letters or digits/);
      assertEquals(await snapshot(db), before);
    });
  } finally {
    await db.stop();
  }
});

Deno.test("two masq rekeys at once share the work: every entry ends under the new key, none lost or doubled", async () => {
  const db = await startDatabase();
  try {
    await withKeyFile(async (file, dir) => {
      const seeded = logins(300);
      await insertLogins(db, seeded);
      const before = await consistency(db);
      const entries = await vaultCount(db);
      const o = { databaseUrl: db.url, env: { PII_VAULT_KEY: VAULT_KEY_B64 }, read: [dir] };
      const args = ["rekey", "--to-key-file", file, "--to-key-id", "k2", "--batch", "5"];
      const results = await Promise.all([collect(spawnLifecycle(args, o)), collect(spawnLifecycle(args, o))]);
      for (const r of results) assertEquals(r.code, 0, r.stderr);
      const done = results.map((r) => JSON.parse(r.stdout.trim()).entries as number);
      assertEquals(done[0] + done[1], before.k1);
      assertEquals(await consistency(db), { orphans: 0, k1: 0, k2: before.k1 });
      assertEquals(await vaultCount(db), entries);
      await assertAllUnderNewKey(db, seeded);
    });
  } finally {
    await db.stop();
  }
});
