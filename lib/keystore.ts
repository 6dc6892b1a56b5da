/**
 * The key store (`masq_subject_keys`, in PII_KEYSTORE_URL's database, by default DATABASE_URL's): one
 * X25519 key pair per subject (user_id), its private half sealed to the privacy officer's key. Ingest reads
 * public halves only through `masq_subject_keys_of()` (it cannot list the store) and inserts new keys; the
 * privacy officer reads sealed private halves and deletes a person's keys (`forget`).
 *
 * Kept apart from the main database, the store is what makes erasure reach backups: a backup of the main
 * database holds only originals sealed to subject keys, which `forget` destroys in the store.
 *
 * @module
 */
import type { Queryable } from "./sink/schema.ts";
import {
  loadPublicKey,
  newSubjectKey,
  type OfficerPublicKey,
  subjectKeyGenuine,
  subjectKeyMac,
  type SubjectKeyRow,
} from "./seal.ts";

type DbRow = {
  key_id: string;
  subject: string;
  public_key: Uint8Array;
  sealed_private: Uint8Array;
  officer_key_id: string;
  mac: Uint8Array;
};

function toRow(r: DbRow): SubjectKeyRow {
  return {
    keyId: r.key_id,
    subject: r.subject,
    publicKey: new Uint8Array(r.public_key),
    sealedPrivate: new Uint8Array(r.sealed_private),
    officerKeyId: r.officer_key_id,
    mac: new Uint8Array(r.mac),
  };
}

/** A subject's current key, as ingest seals to it. */
export interface SubjectPublicKey {
  /** `s:<key id>`: what entries name as their recipient. */
  recipient: string;
  key: CryptoKey;
}

/** Ingest's view of the store: the key to seal a subject's originals to, made when first needed. */
export interface SubjectKeyStore {
  publicKeyFor(subject: string): Promise<SubjectPublicKey>;
}

export interface SubjectKeyStoreOptions {
  /** Subjects whose key stays in memory (most recently used first). */
  cacheSize?: number;
  /** How long a cached key is used before the store is asked again (so an erased key stops being used). */
  ttlMs?: number;
  now?: () => number;
  /** Told of a key store row whose MAC does not verify (it is never used). */
  onForged?: (keyId: string) => void;
}

/**
 * The ingest side of the store over `db` (a pool of the key store's database).
 *
 * @example
 * ```ts
 * import pg from "pg";
 * import { createSubjectKeyStore } from "./keystore.ts";
 * import { generateOfficerKeys, parseOfficerPublicKey, sealMacKey } from "./seal.ts";
 * const pool = new pg.Pool({ connectionString: "postgres://postgres@127.0.0.1:5432/test" });
 * const officer = await parseOfficerPublicKey((await generateOfficerKeys()).publicText, "PII_VAULT_PUBLIC_KEY");
 * const store = createSubjectKeyStore(pool, officer, sealMacKey("an HMAC key of 32 bytes or more......"));
 * const { recipient } = await store.publicKeyFor("user-42"); // "s:<32 hex>"
 * ```
 */
export function createSubjectKeyStore(
  db: Queryable,
  officer: OfficerPublicKey,
  macKey: Uint8Array,
  opts: SubjectKeyStoreOptions = {},
): SubjectKeyStore {
  const cacheSize = opts.cacheSize ?? 50_000;
  const ttlMs = opts.ttlMs ?? 5 * 60_000;
  const now = opts.now ?? (() => performance.now());
  const cache = new Map<string, { at: number; key: Promise<SubjectPublicKey> }>();

  // Subjects asked for in the same turn of the event loop (the records of a batch are made together) are
  // looked up in one query, and their new keys inserted in one statement: one commit per batch, not per
  // person.
  let pending = new Map<string, { resolve(k: SubjectPublicKey): void; reject(e: unknown): void }[]>();

  async function lookUpAll(subjects: string[]): Promise<Map<string, SubjectPublicKey>> {
    const out = new Map<string, SubjectPublicKey>();
    const res = await db.query(
      "SELECT key_id, subject, public_key, sealed_private, officer_key_id, mac FROM masq_subject_keys_of($1::text[])",
      [subjects],
    );
    for (const r of (res.rows as DbRow[]).map(toRow)) {
      if (out.has(r.subject) || !subjects.includes(r.subject)) continue;
      if (!subjectKeyGenuine(r, macKey)) {
        opts.onForged?.(r.keyId);
        continue;
      }
      out.set(r.subject, { recipient: `s:${r.keyId}`, key: await loadPublicKey(r.publicKey) });
    }
    const missing = subjects.filter((s) => !out.has(s));
    if (missing.length === 0) return out;
    const made = await Promise.all(missing.map((s) => newSubjectKey(s, officer, macKey)));
    const rows = made.map((m) => m.row);
    await db.query(
      `INSERT INTO masq_subject_keys (key_id, subject, public_key, sealed_private, officer_key_id, mac)
       SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::text[], $6::bytea[])
       ON CONFLICT DO NOTHING`, // a retried insert that had committed (random key ids never collide otherwise)
      [
        rows.map((r) => r.keyId),
        rows.map((r) => r.subject),
        rows.map((r) => r.publicKey),
        rows.map((r) => r.sealedPrivate),
        rows.map((r) => r.officerKeyId),
        rows.map((r) => r.mac),
      ],
    );
    made.forEach((m) => out.set(m.row.subject, { recipient: `s:${m.row.keyId}`, key: m.publicKey }));
    return out;
  }

  async function flush(): Promise<void> {
    const batch = pending;
    pending = new Map();
    const subjects = [...batch.keys()];
    for (let i = 0; i < subjects.length; i += 1000) {
      const chunk = subjects.slice(i, i + 1000);
      try {
        const found = await lookUpAll(chunk);
        for (const s of chunk) for (const w of batch.get(s)!) w.resolve(found.get(s)!);
      } catch (err) {
        for (const s of chunk) for (const w of batch.get(s)!) w.reject(err);
      }
    }
  }

  function lookUp(subject: string): Promise<SubjectPublicKey> {
    return new Promise((resolve, reject) => {
      if (pending.size === 0) queueMicrotask(() => void flush());
      const waiting = pending.get(subject);
      if (waiting) waiting.push({ resolve, reject });
      else pending.set(subject, [{ resolve, reject }]);
    });
  }

  return {
    publicKeyFor(subject) {
      const hit = cache.get(subject);
      const t = now();
      if (hit !== undefined && t - hit.at < ttlMs) {
        cache.delete(subject);
        cache.set(subject, hit);
        return hit.key;
      }
      const key = lookUp(subject);
      cache.set(subject, { at: t, key });
      key.catch(() => cache.delete(subject)); // a failed lookup is tried again next time
      while (cache.size > cacheSize) cache.delete(cache.keys().next().value!);
      return key;
    },
  };
}

/** The privacy officer's read: the rows of these key ids (missing ones were erased). */
export async function subjectKeysById(
  db: Queryable,
  keyIds: readonly string[],
): Promise<Map<string, SubjectKeyRow>> {
  const out = new Map<string, SubjectKeyRow>();
  if (keyIds.length === 0) return out;
  const res = await db.query(
    `SELECT key_id, subject, public_key, sealed_private, officer_key_id, mac FROM masq_subject_keys
     WHERE key_id = ANY($1::text[])`,
    [[...new Set(keyIds)]],
  );
  for (const r of res.rows as DbRow[]) out.set(r.key_id, toRow(r));
  return out;
}

/** forget: deletes every key of `subject`; returns their ids. */
export async function deleteSubjectKeys(db: Queryable, subject: string): Promise<string[]> {
  const res = await db.query("DELETE FROM masq_subject_keys WHERE subject = $1 RETURNING key_id", [subject]);
  return (res.rows as { key_id: string }[]).map((r) => r.key_id);
}

/**
 * rekey's last step: every key store row whose MAC verifies under `oldMacKey` gets its MAC under `newMacKey`
 * (masq run, holding the new HMAC key only, must recognise the keys it made). Idempotent; rows masq did not
 * make are left alone. Returns how many rows were re-MACed.
 */
export async function remacSubjectKeys(
  db: Queryable,
  oldMacKey: Uint8Array,
  newMacKey: Uint8Array,
): Promise<number> {
  const res = await db.query(
    "SELECT key_id, subject, public_key, sealed_private, officer_key_id, mac FROM masq_subject_keys",
  );
  const rows = (res.rows as DbRow[]).map(toRow).filter((r) =>
    !subjectKeyGenuine(r, newMacKey) && subjectKeyGenuine(r, oldMacKey)
  );
  for (let i = 0; i < rows.length; i += 1000) {
    const chunk = rows.slice(i, i + 1000);
    await db.query(
      `UPDATE masq_subject_keys k SET mac = m.mac FROM unnest($1::text[], $2::bytea[]) AS m(id, mac)
       WHERE k.key_id = m.id`,
      [chunk.map((r) => r.keyId), chunk.map((r) => subjectKeyMac(newMacKey, r))],
    );
  }
  return rows.length;
}
