/**
 * `masq recover`: originals for the few who hold the vault key, every lookup on record, a wrong key or a
 * moved ciphertext an error (never another person's data).
 */
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { startDatabase } from "../support/databases.ts";
import {
  insertLogins,
  masq,
  OTHER_VAULT_KEY_B64,
  tokensOf,
  VAULT_KEY,
  VAULT_KEY_B64,
  vaultCount,
} from "../support/lifecycle.ts";
import { createPostgresSink } from "../../lib/sink/postgres.ts";
import { roleNames } from "../../lib/sink/schema.ts";
import { silentLogger } from "../../lib/log.ts";
import type { LoginRecord } from "../../lib/types.ts";
import { createVaultCipher, vaultAad } from "../../lib/vault.ts";
import { writeOne } from "../support/fakes.ts";

const vaultEnv = { PII_VAULT_KEY: VAULT_KEY_B64 };

interface LogRow {
  action: string;
  field: string;
  token: string;
  reason: string;
  outcome: string;
  os_user: string;
  db_role: string;
}

async function accessLog(db: { query<T>(sql: string): Promise<T[]> }): Promise<LogRow[]> {
  return await db.query<LogRow>(
    "SELECT action, field, token, reason, outcome, os_user, db_role FROM pii_access_log ORDER BY id",
  );
}

Deno.test("masq recover prints the original of a token and logs who asked, why, and what was found", async () => {
  const db = await startDatabase();
  try {
    await insertLogins(db, [{ userId: "u1", ip: "203.0.113.7", deviceId: "dev-7" }]);
    const tok = await tokensOf();
    const ipToken = await tok.ip("203.0.113.7");
    const entries = await vaultCount(db);
    const res = await masq(
      ["recover", "--field", "ip", "--token", ipToken, "--reason", "ticket 42: fraud review"],
      { databaseUrl: db.url, env: vaultEnv },
    );
    assertEquals(res.code, 0, res.stderr);
    assertEquals(res.stdout, "203.0.113.7\n");
    assert(!res.stderr.includes("203.0.113.7"), "the original goes to stdout only");
    const log = await accessLog(db);
    assertEquals(log.length, 1);
    assertEquals(log[0].action, "recover");
    assertEquals(log[0].field, "ip");
    assertEquals(log[0].token, ipToken);
    assertEquals(log[0].reason, "ticket 42: fraud review");
    assertEquals(log[0].outcome, "found");
    assertEquals(log[0].os_user, "dpo-test");
    assertEquals(log[0].db_role, (await db.query<{ u: string }>("SELECT current_user AS u"))[0].u);

    const dev = await masq(
      ["recover", "--field", "device_id", "--token", await tok.deviceId("dev-7"), "--reason", "ticket 42"],
      { databaseUrl: db.url, env: vaultEnv },
    );
    assertEquals(dev.stdout, "dev-7\n", dev.stderr);
    assertEquals(await vaultCount(db), entries, "recover changes no vault entry");
  } finally {
    await db.stop();
  }
});

Deno.test("masq recover reads many tokens from stdin and logs each lookup, found or not", async () => {
  const db = await startDatabase();
  try {
    const ips = ["198.51.100.1", "198.51.100.2", "2001:db8::1"];
    await insertLogins(db, ips.map((ip, i) => ({ userId: `u${i}`, ip, deviceId: null })));
    const tok = await tokensOf();
    const tokens = await Promise.all(ips.map((ip) => tok.ip(ip)));
    const unknown = "f".repeat(64);
    const res = await masq(["recover", "--field", "ip", "--reason", "  audit 7 : vérification\u200b "], {
      databaseUrl: db.url,
      env: vaultEnv,
      stdin: [...tokens, "", unknown.toUpperCase()].join("\n") + "\n",
    });
    assertEquals(res.code, 1, "one token is not in the vault");
    assertEquals(res.stdout.split("\n").slice(0, -1), [
      ...tokens.map((t, i) => `${t}\t${ips[i]}`),
      `${unknown}\t`,
    ]);
    assertMatch(res.stderr, /1 of 4 ip tokens have no vault entry/);
    const log = await accessLog(db);
    assertEquals(log.map((l) => l.outcome), ["found", "found", "found", "not_found"]);
    assertEquals(log.map((l) => l.token), [...tokens, unknown]);
    assertEquals(
      new Set(log.map((l) => l.reason)),
      new Set(["audit 7 : vérification\u200b"]),
      "trimmed, else as given",
    );
  } finally {
    await db.stop();
  }
});

Deno.test("masq recover refuses without a reason or a vault key, or with a malformed token, and logs nothing", async () => {
  const db = await startDatabase();
  try {
    const token = "a".repeat(64);
    const noReason = await masq(["recover", "--field", "ip", "--token", token], {
      databaseUrl: db.url,
      env: vaultEnv,
    });
    assertEquals(noReason.code, 2);
    assertMatch(noReason.stderr, /^masq: --reason: required/);
    const blank = await masq(["recover", "--field", "ip", "--token", token, "--reason", "  "], {
      databaseUrl: db.url,
      env: vaultEnv,
    });
    assertEquals(blank.code, 2);
    // Reasons that show nothing: zero-width and bidi characters, a Hangul filler, controls, punctuation.
    for (
      const reason of [
        "\u200b",
        "\u200b\u200b\u200b\u200b",
        "\u3164\u3164\u3164",
        "\u202e\u2066\t",
        "...",
        "ab",
        "a\u200bb",
      ]
    ) {
      const invisible = await masq(["recover", "--field", "ip", "--token", token, "--reason", reason], {
        databaseUrl: db.url,
        env: vaultEnv,
      });
      assertEquals(invisible.code, 2, JSON.stringify(reason));
      assertEquals(
        invisible.stderr,
        'masq: --reason: must hold at least 3 visible letters or digits (e.g. --reason "ticket 1234: fraud review")\n',
      );
    }
    const long = await masq(["recover", "--field", "ip", "--token", token, "--reason", "x".repeat(1001)], {
      databaseUrl: db.url,
      env: vaultEnv,
    });
    assertEquals(long.code, 2);
    assertMatch(long.stderr, /^masq: --reason: is longer than 1000 characters/);
    const noKey = await masq(["recover", "--field", "ip", "--token", token, "--reason", "ticket 9"], {
      databaseUrl: db.url,
    });
    assertEquals(noKey.code, 2);
    assertMatch(noKey.stderr, /^masq: PII_VAULT_KEY: not set/);
    const shortKey = await masq(["recover", "--field", "ip", "--token", token, "--reason", "ticket 9"], {
      databaseUrl: db.url,
      env: { PII_VAULT_KEY: btoa("too short") },
    });
    assertEquals(shortKey.code, 2);
    assertMatch(shortKey.stderr, /^masq: PII_VAULT_KEY: decodes to 9 bytes; expected 32/);
    const badToken = await masq(["recover", "--field", "ip", "--token", "10.0.0.1", "--reason", "ticket 9"], {
      databaseUrl: db.url,
      env: vaultEnv,
    });
    assertEquals(badToken.code, 2);
    assertMatch(badToken.stderr, /^masq: --token: is not a token \(64 hex digits\)/);
    assert(!badToken.stderr.includes("10.0.0.1"), "the error does not echo what may be a raw value");
    const badField = await masq(["recover", "--field", "email", "--token", token, "--reason", "ticket 9"], {
      databaseUrl: db.url,
      env: vaultEnv,
    });
    assertEquals(badField.code, 2);
    assertEquals(badField.stderr, "masq: --field: must be ip or device_id\n", "never the value given");
    const secretId = "s3cr3t/not-an-id";
    const badKeyId = await masq(["recover", "--field", "ip", "--token", token, "--reason", "ticket 9"], {
      databaseUrl: db.url,
      env: { ...vaultEnv, PII_VAULT_KEY_ID: secretId },
    });
    assertEquals(badKeyId.code, 2);
    assertEquals(badKeyId.stderr, "masq: PII_VAULT_KEY_ID: is not a key id (1-32 of A-Z a-z 0-9 . _ -)\n");
    assertEquals(await accessLog(db), []);
  } finally {
    await db.stop();
  }
});

Deno.test("masq recover with the wrong vault key, or a ciphertext moved to another token, is a clear error and prints nothing", async () => {
  const db = await startDatabase();
  try {
    await insertLogins(db, [
      { userId: "u1", ip: "192.0.2.10", deviceId: null },
      { userId: "u2", ip: "192.0.2.20", deviceId: null },
    ]);
    const tok = await tokensOf();
    const [a, b] = [await tok.ip("192.0.2.10"), await tok.ip("192.0.2.20")];
    const wrong = await masq(["recover", "--field", "ip", "--token", a, "--reason", "ticket 9"], {
      databaseUrl: db.url,
      env: { PII_VAULT_KEY: OTHER_VAULT_KEY_B64 },
    });
    assertEquals(wrong.code, 2);
    assertEquals(wrong.stdout, "");
    assertMatch(wrong.stderr, /^masq: PII_VAULT_KEY: the vault entry of ip token .* does not decrypt/);

    // Someone with write access copies b's ciphertext over a's: a must not turn into b's address.
    await db.query(
      "UPDATE pii_vault SET ciphertext = (SELECT ciphertext FROM pii_vault WHERE token = $2) WHERE token = $1",
      [a, b],
    );
    const moved = await masq(["recover", "--field", "ip", "--token", a, "--reason", "ticket 9"], {
      databaseUrl: db.url,
      env: vaultEnv,
    });
    assertEquals(moved.code, 2);
    assertEquals(moved.stdout, "");
    assert(!moved.stderr.includes("192.0.2.20"));
    // Both ciphertexts left the database: on record as found before any decryption was tried.
    assertEquals((await accessLog(db)).map((l) => l.outcome), ["found", "found"]);
  } finally {
    await db.stop();
  }
});

Deno.test("masq recover decrypts what the sink's batch statement stored in pii_vault, written as the writer role", async () => {
  const db = await startDatabase();
  const login = `${db.rolePrefix}w`;
  let url = db.url;
  try {
    if (db.kind === "postgresql") {
      await db.query(`CREATE ROLE ${login} LOGIN IN ROLE ${roleNames(db.rolePrefix).writer}`);
      const u = new URL(db.url);
      u.username = login;
      url = u.toString();
    }
    const tok = await tokensOf();
    const vault = await createVaultCipher(VAULT_KEY, "v1");
    const ip = "203.0.113.200";
    const token = await tok.ip(ip);
    const sink = createPostgresSink(url, { poolSize: 1, log: silentLogger });
    try {
      await sink.checkSchema();
      const record = (messageId: string): LoginRecord => ({
        kind: "login",
        messageId,
        userId: "u1",
        deviceType: "ios",
        maskedIp: token,
        maskedDeviceId: null,
        locale: null,
        appVersion: 1,
        createDate: "2026-11-23",
        vault: [{ field: "ip", token, keyId: "k1", ciphertext: new Uint8Array(0) }],
      });
      const a = record("m1");
      a.vault![0].ciphertext = await vault.encrypt(ip, vaultAad("ip", token, "k1"));
      const b = record("m2"); // the same value again: stored once, the first copy kept
      b.vault![0].ciphertext = await vault.encrypt(ip, vaultAad("ip", token, "k1"));
      assertEquals((await writeOne(sink, [a])).inserted, 1);
      assertEquals((await writeOne(sink, [b])).inserted, 1);
    } finally {
      await sink.close();
    }
    assertEquals((await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pii_vault"))[0].n, 1);
    const res = await masq(["recover", "--field", "ip", "--token", token, "--reason", "end to end"], {
      databaseUrl: db.url,
      env: vaultEnv,
    });
    assertEquals(res.stdout, `${ip}\n`, res.stderr);
  } finally {
    if (db.kind === "postgresql") await db.query(`DROP ROLE IF EXISTS ${login}`).catch(() => {});
    await db.stop();
  }
});
