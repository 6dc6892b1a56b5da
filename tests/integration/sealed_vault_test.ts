/**
 * The sealed vault (lib/seal.ts, lib/sealing.ts, lib/lifecycle/unseal.ts) end to end, over the real CLI,
 * real PostgreSQL (a key store in a database of its own, pg_dump) and the SQS wire protocol (fauxqs):
 * masq run holds the public key only; recover and redrive open with the private key; forget destroys a
 * person's subject key, after which a pg_dump and a copy of the DLQ taken before no longer open for them,
 * while everyone else's still do; entries masq did not seal are refused.
 */
import {
  ChangeMessageVisibilityCommand,
  type Message as SqsMessage,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import pg from "pg";
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { seedQueue } from "../../lib/demo.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";
import { createUnsealer, RefusedSeal } from "../../lib/lifecycle/unseal.ts";
import {
  decodeEntry,
  encodeEntry,
  encryptWith,
  generateOfficerKeys,
  loadPublicKey,
  openWith,
  parseOfficerPrivateKeys,
  parseOfficerPublicKey,
  SEALED_ATTRIBUTE,
  sealMacKey,
  sealTo,
} from "../../lib/seal.ts";
import { pgTypes } from "../../lib/sink/postgres.ts";
import { newSubjectKey, openEpoch } from "../../lib/subject_keys.ts";
import { migrateKeystore, roleNames } from "../../lib/sink/schema.ts";
import { startDatabase, type TestDatabase } from "../support/databases.ts";
import { createLogin, masq, NO_LOGIN_ROLES, tokensOf } from "../support/lifecycle.ts";
import { collect, runMasqCli, spawnWatched, TEST_KEY } from "../support/processes.ts";
import { receiveAll, sqsClient } from "../support/sqs.ts";

const login = (user: string, ip: string, device: string) =>
  JSON.stringify({
    user_id: user,
    device_type: "android",
    ip,
    device_id: device,
    locale: "en_US",
    app_version: "2.3.0",
    timestamp: 1_700_000_000,
  });

const ALICE_IP = "203.0.113.7";
const BOB_IP = "198.51.100.9";
const SHARED_IP = "192.0.2.55"; // alice and bob both logged in from it
const BODIES = [
  login("alice", ALICE_IP, "dev-alice"),
  login("alice", SHARED_IP, "dev-alice"),
  login("bob", BOB_IP, "dev-bob"),
  login("bob", SHARED_IP, "dev-bob"),
  // Dead letters: one of alice's, one of bob's, one that names nobody (not JSON: no subject).
  JSON.stringify({ user_id: "alice", ip: ALICE_IP, app_version: "bad" }),
  JSON.stringify({ user_id: "bob", ip: BOB_IP, app_version: "bad" }),
  `not json, but 10.9.8.7 is in it`,
];

/** A key store in a database of its own on the test server (the main schema's pg_dump does not hold it). */
async function startKeystore(db: TestDatabase): Promise<{ url: string; stop(): Promise<void> }> {
  const base = new URL(Deno.env.get("TEST_DATABASE_URL")!);
  const name = `masq_ks_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  await db.query(`CREATE DATABASE ${name}`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  const client = new pg.Client({ connectionString: url.toString(), types: pgTypes });
  await client.connect();
  await migrateKeystore(client, { rolePrefix: db.rolePrefix });
  await client.end();
  return {
    url: url.toString(),
    async stop() {
      await db.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/** Every message of a queue with its attributes, left visible again (a copy, as an operator would take). */
async function copyQueue(client: SQSClient, url: string): Promise<SqsMessage[]> {
  const out: SqsMessage[] = await receiveAll(client, url);
  for (const m of out) {
    await client.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: url,
        ReceiptHandle: m.ReceiptHandle!,
        VisibilityTimeout: 0,
      }),
    );
  }
  return out;
}

/** pg_dump's path; a missing one fails the test with a line saying what to install. */
function pgDump(): string {
  for (const p of ["/usr/bin/pg_dump", "/usr/lib/postgresql/15/bin/pg_dump"]) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch { /* next */ }
  }
  throw new Error("this test needs pg_dump (apt-get install postgresql-client)");
}

/** The pii_vault rows of a plain pg_dump of one schema (its COPY block). */
function vaultRowsOfDump(
  dump: string,
  schema: string,
): { field: string; token: string; ct: Uint8Array; keyId: string }[] {
  const lines = dump.split("\n");
  const start = lines.findIndex((l) => l.startsWith(`COPY ${schema}.pii_vault (`));
  assert(start >= 0, "the dump holds pii_vault");
  const cols = lines[start].slice(lines[start].indexOf("(") + 1, lines[start].indexOf(")")).split(", ");
  const rows = [];
  for (const line of lines.slice(start + 1)) {
    if (line === "\\.") break;
    const v = line.split("\t");
    const get = (c: string) => v[cols.indexOf(c)];
    const hex = get("ciphertext").replace(/^\\\\x/, "");
    rows.push({
      field: get("field"),
      token: get("token"),
      keyId: get("key_id"),
      ct: Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16)),
    });
  }
  return rows;
}

Deno.test({
  name:
    "masq run seals to subject keys with the public key only; after forget, a pg_dump and a DLQ copy taken before no longer open for that person, everyone else's do",
  ignore: NO_LOGIN_ROLES !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const ks = await startKeystore(db);
  const client = sqsClient(sqs);
  const ksClient = new pg.Client({ connectionString: ks.url, types: pgTypes });
  ksClient.on("error", () => {});
  try {
    const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "60" });
    const dlqUrl = sqs.createQueue("login-queue-dlq");
    await seedQueue(sqs.endpoint, queueUrl, BODIES);
    const keys = await generateOfficerKeys();
    const run = await runMasqCli(["run"], {
      queueUrl,
      databaseUrl: db.url,
      extra: { PII_VAULT_PUBLIC_KEY: keys.publicText, PII_KEYSTORE_URL: ks.url },
    });
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.summary?.received, BODIES.length);
    assertMatch(run.stderr, /sealing originals to the privacy officer's public key/);

    // Every entry is sealed, one per (value, person): the shared address has one for each of them.
    const entries = await db.query<
      { field: string; token: string; ciphertext: Uint8Array; subject_key_id: string }
    >(
      "SELECT field, token, ciphertext, subject_key_id FROM pii_vault ORDER BY field, token",
    );
    assertEquals(entries.length, 3 + 3, "ip: alice's, bob's, the shared one twice; device: one each");
    assert(entries.every((e) => decodeEntry(new Uint8Array(e.ciphertext))?.recipient === e.subject_key_id));
    await ksClient.connect();
    const subjects = async () =>
      (await ksClient.query<{ subject: string }>("SELECT subject FROM masq_subject_keys ORDER BY subject"))
        .rows
        .map((r: { subject: string }) => r.subject);
    assertEquals(await subjects(), ["alice", "bob"]);
    assertEquals(
      (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM masq_subject_keys"))[0].n,
      0,
      "the main database's own key store table is unused: the keys live in PII_KEYSTORE_URL's",
    );

    const tok = await tokensOf();
    const officer = {
      PII_VAULT_PRIVATE_KEY: keys.privateText,
      PII_HMAC_KEY: TEST_KEY,
      PII_KEYSTORE_URL: ks.url,
    };
    const recoverIp = (ip: string, env: Record<string, string> = officer) =>
      tok.ip(ip).then((t) =>
        masq(["recover", "--field", "ip", "--token", t, "--reason", "ticket 9"], { databaseUrl: db.url, env })
      );
    for (const ip of [ALICE_IP, BOB_IP, SHARED_IP]) {
      const r = await recoverIp(ip);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout.trim(), ip);
    }
    // Without the private key nothing opens (the public key is no use to recover).
    const noKey = await recoverIp(ALICE_IP, {
      PII_HMAC_KEY: TEST_KEY,
      PII_VAULT_PUBLIC_KEY: keys.publicText,
    });
    assertEquals(noKey.code, 2);
    assertMatch(noKey.stderr, /PII_VAULT_KEY: not set/);
    // Nor with it but without the HMAC key that tells masq's seals from anyone else's.
    const noMac = await recoverIp(ALICE_IP, {
      PII_VAULT_PRIVATE_KEY: keys.privateText,
      PII_KEYSTORE_URL: ks.url,
    });
    assertEquals(noMac.code, 2);
    assertMatch(noMac.stderr, /^masq: PII_HMAC_KEY: not set; `masq recover` verifies that masq sealed/);

    // The copies an attacker (or an old backup) would keep: the DLQ's letters and a pg_dump of the schema.
    const letters = await copyQueue(client, dlqUrl);
    assertEquals(letters.length, 3);
    assert(letters.every((l) => l.MessageAttributes?.[SEALED_ATTRIBUTE]?.StringValue), "sealed originals");
    assert(
      letters.every((l) => l.MessageAttributes?.masq_original === undefined),
      "nothing under a symmetric key",
    );
    const schema = new URL(db.url).searchParams.get("options")!.replace("-c search_path=", "");
    const dumpUrl = new URL(db.url);
    dumpUrl.search = "";
    const dump = await collect(
      spawnWatched(pgDump(), ["--no-owner", "-n", schema, dumpUrl.toString()]),
    );
    assertEquals(dump.code, 0, dump.stderr);
    const dumped = vaultRowsOfDump(dump.stdout, schema);
    assertEquals(dumped.length, entries.length);

    const forget = await masq(["forget", "--user-id", "alice", "--reason", "erasure request 12"], {
      databaseUrl: db.url,
      env: { PII_KEYSTORE_URL: ks.url },
    });
    assertEquals(forget.code, 0, forget.stderr);
    const removed = JSON.parse(forget.stdout.trim());
    assertEquals(removed.subjectKeys, 1);
    assertEquals(await subjects(), ["bob"]);

    // The privacy officer's key against the copies taken before the erasure.
    const ring = await parseOfficerPrivateKeys(keys.privateText, "PII_VAULT_PRIVATE_KEY");
    const unsealer = createUnsealer({
      ring,
      macKeys: new Map([["default", sealMacKey(TEST_KEY)]]),
      keystore: ksClient,
    });
    const keyIdOf =
      (await db.query<{ key_id: string }>("SELECT DISTINCT key_id FROM pii_vault"))[0]?.key_id ??
        dumped[0].keyId;
    const unsealerFor = keyIdOf === "default" ? unsealer : createUnsealer({
      ring,
      macKeys: new Map([[keyIdOf, sealMacKey(TEST_KEY)]]),
      keystore: ksClient,
    });
    const aliceTokens = new Set([await tok.ip(ALICE_IP), await tok.deviceId("dev-alice")]);
    const opened: Record<string, string[]> = { erased: [], ok: [] };
    for (const row of dumped) {
      const r = await unsealerFor.entry(row.field, row.token, row.keyId, row.ct);
      opened[r.status].push(r.status === "ok" ? r.original : row.token);
      // The officer's key alone opens no entry: each is sealed to a subject key.
      const e = decodeEntry(row.ct)!;
      let direct = true;
      try {
        await openWith(ring.privateKeys.get(ring.current.keyId)!, e.sealed, "any");
      } catch {
        direct = false;
      }
      assert(!direct, "an entry does not open with the officer's key directly");
    }
    assertEquals(opened.ok.sort(), [BOB_IP, SHARED_IP, "dev-bob"].sort(), "bob's entries still open");
    assertEquals(
      opened.erased.length,
      3,
      "alice's three entries (her IP, the shared IP, her device) are erased",
    );
    assert(opened.erased.filter((t) => aliceTokens.has(t)).length === 2);

    const fromLetters: Record<string, string[]> = { erased: [], ok: [] };
    for (const l of letters) {
      const id = l.MessageAttributes!.masq_message_id!.StringValue!;
      const r = await unsealerFor.letter(id, l.MessageAttributes![SEALED_ATTRIBUTE].StringValue!);
      fromLetters[r.status].push(r.status === "ok" ? r.original : id);
    }
    assertEquals(fromLetters.erased.length, 1, "alice's dead letter is erased");
    assertEquals(
      fromLetters.ok.sort(),
      [BODIES[5], BODIES[6]].sort(),
      "bob's and the one naming nobody open",
    );

    // recover says erased for alice; bob's address, and the shared one through bob's entry, still recover.
    const gone = await recoverIp(ALICE_IP);
    assertEquals(gone.code, 1);
    assertEquals(gone.stdout, "");
    assertMatch(gone.stderr, /1 of 1 ip tokens have no vault entry/);
    // forget deleted alice's entries from the live vault too; the dump's copy is what shows the erasure.
    const shared = await recoverIp(SHARED_IP);
    assertEquals(shared.code, 0, shared.stderr);
    assertEquals(shared.stdout.trim(), SHARED_IP);

    // redrive: alice's letter stays in the DLQ as erased, the others are replayed.
    const redrive = await masq(["redrive", "--reason", "producer fix"], {
      databaseUrl: db.url,
      env: { ...officer, SQS_QUEUE_URL: queueUrl, SQS_DLQ_URL: dlqUrl },
    });
    assertEquals(redrive.code, 0, redrive.stderr);
    const result = JSON.parse(redrive.stdout.trim());
    assertEquals(result.redriven, 2);
    assertEquals(result.left.erased, 1);
  } finally {
    await ksClient.end().catch(() => {});
    client.destroy();
    await ks.stop();
    await db.stop();
    await sqs.stop();
  }
});

Deno.test({
  name:
    "recover refuses, with a clear line, a vault row the writer login inserted that masq did not seal, and masq run refuses the private key",
  ignore: NO_LOGIN_ROLES !== undefined,
}, async () => {
  const db = await startDatabase();
  const writer = await createLogin(db, roleNames(db.rolePrefix).writer, "w");
  try {
    const keys = await generateOfficerKeys();
    const pub = await parseOfficerPublicKey(keys.publicText, "PII_VAULT_PUBLIC_KEY");
    const tok = await tokensOf();
    const token = await tok.ip("192.0.2.66");
    // What a writer login can make without masq's HMAC key: a real HPKE seal to the officer's public key
    // (it is public), in masq's envelope, with a MAC it has to guess.
    const recipient = `o:${pub.keyId}`;
    const sealed = await sealTo(
      pub.key,
      new TextEncoder().encode("6.6.6.6"),
      `pii_vault:ip:${token}:k1:${recipient}`,
    );
    const forged = encodeEntry({ recipient, mac: crypto.getRandomValues(new Uint8Array(32)), sealed });
    assertEquals(
      await writer.attempt(
        "INSERT INTO pii_vault (field, token, ciphertext, key_id, subject_key_id) VALUES ('ip', $1, $2, 'k1', $3) ON CONFLICT DO NOTHING",
        [token, forged, recipient],
      ),
      "ok",
    );
    await writer.client.query(
      "INSERT INTO pii_vault (field, token, ciphertext, key_id, subject_key_id) VALUES ('ip', $1, $2, 'k1', $3)",
      [token, forged, recipient],
    );
    // And a row in the old symmetric layout.
    const legacyToken = await tok.ip("192.0.2.67");
    await writer.client.query(
      "INSERT INTO pii_vault (field, token, ciphertext, key_id) VALUES ('ip', $1, $2, 'k1')",
      [legacyToken, crypto.getRandomValues(new Uint8Array(60))],
    );
    const env = { PII_VAULT_PRIVATE_KEY: keys.privateText, PII_HMAC_KEY: TEST_KEY, PII_HMAC_KEY_ID: "k1" };
    for (const t of [token, legacyToken]) {
      const r = await masq(["recover", "--field", "ip", "--token", t, "--reason", "ticket 10"], {
        databaseUrl: db.url,
        env,
      });
      assertEquals(r.code, 1, r.stderr);
      assertEquals(r.stdout, "", "nothing is returned for a forged entry");
      assertMatch(
        r.stderr,
        /refused: the vault entry of ip token [0-9a-f]{12}… (was not sealed by masq|is not a sealed entry)/,
      );
      assert(!r.stderr.includes("6.6.6.6"));
    }
    // A writer login can also insert into the key store: a data key of its own, wrapped under an epoch of its
    // own to the officer's (public) key, and an entry under it. Without masq's HMAC key the row's MAC is a
    // guess, so recover refuses the entry (an entry under a data key is as genuine as its key store row).
    const epoch = await openEpoch(pub);
    const own = newSubjectKey("victim", epoch, crypto.getRandomValues(new Uint8Array(32)));
    const dataToken = await tok.ip("192.0.2.68");
    const to = `s:${own.row.keyId}`;
    await writer.client.query(
      `INSERT INTO masq_subject_keys (key_id, subject, epoch_enc, wrapped_key, officer_key_id, mac)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [
        own.row.keyId,
        own.row.subject,
        own.row.epochEnc,
        own.row.wrappedKey,
        own.row.officerKeyId,
        own.row.mac,
      ],
    );
    const underOwn = encodeEntry({
      recipient: to,
      sealed: encryptWith(
        own.dataKey,
        new TextEncoder().encode("6.6.6.7"),
        `pii_vault:ip:${dataToken}:k1:${to}`,
      ),
    });
    await writer.client.query(
      "INSERT INTO pii_vault (field, token, ciphertext, key_id, subject_key_id) VALUES ('ip', $1, $2, 'k1', $3)",
      [dataToken, underOwn, to],
    );
    const ownKey = await masq(["recover", "--field", "ip", "--token", dataToken, "--reason", "ticket 10"], {
      databaseUrl: db.url,
      env,
    });
    assertEquals(ownKey.code, 1, ownKey.stderr);
    assertEquals(ownKey.stdout, "");
    assertMatch(ownKey.stderr, /was not made by masq/);
    assert(!ownKey.stderr.includes("6.6.6.7"));
    // The same forged entry with the right MAC would open: the refusal is the MAC's doing.
    const ring = await parseOfficerPrivateKeys(keys.privateText, "PII_VAULT_PRIVATE_KEY");
    const unsealer = createUnsealer({
      ring,
      macKeys: new Map([["k1", sealMacKey(TEST_KEY)]]),
      keystore: writer.client,
    });
    let refused = false;
    try {
      await unsealer.entry("ip", token, "k1", forged);
    } catch (err) {
      refused = err instanceof RefusedSeal;
    }
    assert(refused);
    assert((await loadPublicKey(pub.raw)) !== undefined);

    // masq run with the private key, or with the symmetric key beside the public one: exit 2, one line.
    for (
      const [extra, re] of [
        [{ PII_VAULT_PRIVATE_KEY: keys.privateText }, /^masq: PII_VAULT_PRIVATE_KEY: is set for masq run/],
        [
          { PII_VAULT_PUBLIC_KEY: keys.publicText, PII_VAULT_KEY: btoa("k".repeat(16) + "x".repeat(16)) },
          /PII_VAULT_KEY/,
        ],
        [{ PII_VAULT_PUBLIC_KEY: keys.privateText }, /^masq: PII_VAULT_PUBLIC_KEY: holds a private key/],
      ] as const
    ) {
      const r = await runMasqCli(["run"], {
        queueUrl: "http://127.0.0.1:9/000000000000/q",
        databaseUrl: db.url,
        extra: { ...extra },
      });
      assertEquals(r.code, 2, r.stderr);
      assertMatch(r.stderr, re);
      assert(!r.stderr.includes(keys.privateText.split(" ")[3]), "the private key is never printed");
    }
  } finally {
    await writer.drop();
    await db.stop();
  }
});

Deno.test({
  name:
    "masq rekey on the sealed vault re-seals every entry to the same person under the new token and HMAC key; recover opens them with the new key",
  ignore: NO_LOGIN_ROLES !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const dir = await Deno.makeTempDir({ prefix: "masq-sealed-rekey-" });
  try {
    const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "60" });
    sqs.createQueue("login-queue-dlq");
    await seedQueue(sqs.endpoint, queueUrl, BODIES.slice(0, 4));
    const keys = await generateOfficerKeys();
    // The key store in the main database this time (the default).
    const run = await runMasqCli(["run"], {
      queueUrl,
      databaseUrl: db.url,
      extra: { PII_VAULT_PUBLIC_KEY: keys.publicText },
    });
    assertEquals(run.code, 0, run.stderr);
    const before = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pii_vault");
    const subjectsBefore = await db.query<{ s: string }>(
      "SELECT subject_key_id AS s FROM pii_vault ORDER BY 1",
    );
    const newKey = "a-new-hmac-key-for-the-sealed-rotation-0123456789";
    await Deno.writeTextFile(`${dir}/k2`, newKey + "\n");
    const rekey = await masq(
      ["rekey", "--to-key-file", `${dir}/k2`, "--to-key-id", "k2", "--batch", "2", "--reason", "rotation"],
      {
        databaseUrl: db.url,
        env: { PII_VAULT_PRIVATE_KEY: keys.privateText, PII_HMAC_KEY: TEST_KEY },
        read: [dir],
      },
    );
    assertEquals(rekey.code, 0, rekey.stderr);
    assertEquals(JSON.parse(rekey.stdout.trim()).entries, before[0].n);
    const after = await db.query<{ key_id: string; s: string }>(
      "SELECT key_id, subject_key_id AS s FROM pii_vault ORDER BY 2",
    );
    assertEquals(
      after.map((r) => r.s),
      subjectsBefore.map((r) => r.s),
      "each entry stays sealed to its person",
    );
    assert(after.every((r) => r.key_id === "k2"));
    const tok = await tokensOf(newKey);
    for (const ip of [ALICE_IP, BOB_IP, SHARED_IP]) {
      const r = await masq(["recover", "--field", "ip", "--token", await tok.ip(ip), "--reason", "check"], {
        databaseUrl: db.url,
        env: { PII_VAULT_PRIVATE_KEY: keys.privateText, PII_HMAC_KEY: newKey, PII_HMAC_KEY_ID: "k2" },
      });
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout.trim(), ip);
    }
    // (recover, holding the new HMAC key only, opened the data keys above: rekey re-MACed them.) A new run
    // process opens an epoch of its own: alice gets a data key of this epoch, nobody else a new one.
    const keysBefore =
      (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM masq_subject_keys"))[0].n;
    await seedQueue(sqs.endpoint, queueUrl, [login("alice", "203.0.113.99", "dev-alice-2")]);
    const again = await runMasqCli(["run"], {
      queueUrl,
      databaseUrl: db.url,
      extra: { PII_VAULT_PUBLIC_KEY: keys.publicText, PII_HMAC_KEY: newKey, PII_HMAC_KEY_ID: "k2" },
    });
    assertEquals(again.code, 0, again.stderr);
    assert(!again.stderr.includes("did not make"), again.stderr);
    assertEquals(
      (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM masq_subject_keys"))[0].n,
      keysBefore + 1,
    );
    const fresh = await masq(
      ["recover", "--field", "ip", "--token", await tok.ip("203.0.113.99"), "--reason", "check"],
      {
        databaseUrl: db.url,
        env: { PII_VAULT_PRIVATE_KEY: keys.privateText, PII_HMAC_KEY: newKey, PII_HMAC_KEY_ID: "k2" },
      },
    );
    assertEquals(fresh.code, 0, fresh.stderr);
    assertEquals(fresh.stdout.trim(), "203.0.113.99");
  } finally {
    await Deno.remove(dir, { recursive: true });
    await db.stop();
    await sqs.stop();
  }
});
