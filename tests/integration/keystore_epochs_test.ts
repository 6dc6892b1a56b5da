/**
 * The key store's epochs against real PostgreSQL: the rows ingest inserts open with the officer's private key
 * (and with nothing else), one row per subject per epoch, and the relaxed commit of a key store in the main
 * database stays inside its own statement.
 */
import pg from "pg";
import { assert, assertEquals } from "../support/assert.ts";
import { startDatabase } from "../support/databases.ts";
import { createSubjectKeyStore, subjectKeysById } from "../../lib/keystore.ts";
import {
  generateOfficerKeys,
  parseOfficerPrivateKeys,
  parseOfficerPublicKey,
  sealMacKey,
} from "../../lib/seal.ts";
import { pgTypes } from "../../lib/sink/postgres.ts";
import { openSubjectKey, subjectKeyGenuine } from "../../lib/subject_keys.ts";
import { TEST_KEY } from "../support/processes.ts";

Deno.test("createSubjectKeyStore() stores data keys only the officer's key unwraps, one per subject per epoch", async () => {
  const db = await startDatabase();
  const pool = new pg.Pool({ connectionString: db.url, types: pgTypes, max: 1 });
  try {
    const pair = await generateOfficerKeys();
    const officer = await parseOfficerPublicKey(pair.publicText, "PII_VAULT_PUBLIC_KEY");
    const ring = await parseOfficerPrivateKeys(pair.privateText, "PII_VAULT_PRIVATE_KEY");
    const macKey = sealMacKey(TEST_KEY);
    let t = 0;
    const store = createSubjectKeyStore(pool, officer, macKey, {
      epochMs: 60_000,
      now: () => t,
      sameDatabaseAsEntries: true,
    });
    const [a, b] = await Promise.all([store.keyFor("alice"), store.keyFor("bob")]);
    assertEquals(await store.keyFor("alice"), a, "one key per subject in an epoch");
    t = 60_000;
    const a2 = await store.keyFor("alice");
    assert(a2.recipient !== a.recipient, "a new epoch, a new key");

    const rows = await subjectKeysById(pool, [a, b, a2].map((k) => k.recipient.slice(2)));
    assertEquals(rows.size, 3);
    const [ra, rb, ra2] = [a, b, a2].map((k) => rows.get(k.recipient.slice(2))!);
    assertEquals([ra.subject, rb.subject, ra2.subject], ["alice", "bob", "alice"]);
    assertEquals(ra.epochEnc, rb.epochEnc, "one encapsulation for the epoch");
    assert(ra.epochEnc.some((x, i) => x !== ra2.epochEnc[i]), "another for the next");
    for (const [row, key] of [[ra, a], [rb, b], [ra2, a2]] as const) {
      assert(subjectKeyGenuine(row, macKey));
      assertEquals(await openSubjectKey(row, ring), key.dataKey, "the officer unwraps the key ingest used");
      assert(!includes(row.wrappedKey, key.dataKey), "stored wrapped, never in the clear");
    }
    const stranger = await parseOfficerPrivateKeys((await generateOfficerKeys()).privateText, "k");
    stranger.privateKeys.set(officer.keyId, stranger.privateKeys.get(stranger.current.keyId)!);
    let opened = true;
    try {
      await openSubjectKey(ra, stranger);
    } catch {
      opened = false;
    }
    assert(!opened, "another private key does not unwrap it");
    // synchronous_commit off was the inserts' own (transaction-local), not the pooled connection's.
    assertEquals((await pool.query("SHOW synchronous_commit")).rows[0].synchronous_commit, "on");
  } finally {
    await pool.end();
    await db.stop();
  }
});

function includes(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}
