/**
 * The key store (lib/keystore.ts, lib/ingest_vault.ts) on a throwaway cluster of its own, stopped with
 * `pg_ctl stop -m fast` while masq run seals new people's originals, kept down a few seconds and started
 * again: masq waits it out (logged), finishes, and every login is stored with its sealed entries.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { isBadIndex, synthetic } from "../../bench/synthetic.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";
import { decodeEntry, generateOfficerKeys } from "../../lib/seal.ts";
import { migrateKeystore } from "../../lib/sink/schema.ts";
import { pgTypes } from "../../lib/sink/postgres.ts";
import pg from "pg";
import { collect, hasExited, spawnMasq } from "../support/processes.ts";
import { scratchPostgresUnavailable, startDatabase, startScratchPostgres } from "../support/databases.ts";

const MESSAGES = 3_000;
const BAD_EVERY = 50;
const SKIP = scratchPostgresUnavailable();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test({
  name: `the key store stopped mid-run: masq run waits it out and stores every login sealed${
    SKIP ? ` (skipped: ${SKIP})` : ""
  }`,
  ignore: SKIP !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const db = await startDatabase();
  const cluster = await startScratchPostgres();
  const sqs = await startEmbeddedSqs();
  try {
    const admin = new pg.Client({ connectionString: cluster.url, types: pgTypes });
    await admin.connect();
    await migrateKeystore(admin, { rolePrefix: db.rolePrefix });
    await admin.end();
    const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "10" });
    sqs.createQueue("login-queue-dlq");
    for (let i = 0; i < MESSAGES; i++) sqs.send("login-queue", synthetic(i, BAD_EVERY));
    let good = 0;
    for (let i = 0; i < MESSAGES; i++) if (!isBadIndex(i, BAD_EVERY)) good++;
    const keys = await generateOfficerKeys();
    const masq = spawnMasq(["run"], {
      queueUrl,
      databaseUrl: db.url,
      extra: {
        PII_VAULT_PUBLIC_KEY: keys.publicText,
        PII_KEYSTORE_URL: cluster.url,
        MASQ_CONCURRENCY: "2",
        MASQ_MAX_BACKOFF_MS: "1000",
        MASQ_LOG_FORMAT: "json",
        MASQ_WAIT_SECONDS: "1",
      },
    }, { timeoutMs: 180_000 });
    const result = collect(masq);
    const deadline = Date.now() + 60_000;
    for (;;) {
      assert(Date.now() < deadline, "no rows within 60 s");
      assert(!hasExited(masq), "masq ended before the outage");
      const [{ n }] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins");
      if (n > 0) break;
      await sleep(20);
    }
    await cluster.stop();
    const [{ n: atStop }] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins");
    await sleep(4_000);
    assert(!hasExited(masq), "masq waits for the key store instead of ending");
    await cluster.start();
    const res = await result;
    assertEquals(res.code, 0, res.stderr.slice(-3000));
    assert(atStop < good, "the outage came before the end");
    assert(res.stderr.includes("key store query failed, retrying"), "the wait is logged");
    const [{ n }] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins");
    assertEquals(n, good, "every login stored once");
    const vault = await db.query<{ ciphertext: Uint8Array; subject_key_id: string }>(
      "SELECT ciphertext, subject_key_id FROM pii_vault",
    );
    assert(vault.length >= good, "an entry per login's address at least");
    assert(vault.every((v) => decodeEntry(new Uint8Array(v.ciphertext))?.recipient === v.subject_key_id));
    const ks = new pg.Client({ connectionString: cluster.url, types: pgTypes });
    await ks.connect();
    const ids = new Set(
      (await ks.query<{ key_id: string }>("SELECT key_id FROM masq_subject_keys")).rows.map((
        r: { key_id: string },
      ) => `s:${r.key_id}`),
    );
    await ks.end();
    assert(vault.every((v) => ids.has(v.subject_key_id)), "every entry's subject key is in the key store");
  } finally {
    await sqs.stop();
    await cluster.destroy();
    await db.stop();
  }
});
