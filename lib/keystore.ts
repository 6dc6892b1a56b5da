/**
 * The key store (`masq_subject_keys`, in PII_KEYSTORE_URL's database, by default DATABASE_URL's): per subject
 * (user_id) and epoch, a data key wrapped under that epoch (lib/subject_keys.ts). Ingest inserts the keys it
 * makes and reads nothing (it has no SELECT); the privacy officer reads rows and deletes a person's keys
 * (`forget`).
 *
 * Kept apart from the main database, the store is what makes erasure reach backups: a backup of the main
 * database holds only originals under data keys, which `forget` destroys in the store.
 *
 * @module
 */
import type { Queryable } from "./sink/schema.ts";
import type { OfficerPublicKey } from "./seal.ts";
import {
  type Epoch,
  newSubjectKey,
  openEpoch,
  subjectKeyGenuine,
  subjectKeyMac,
  type SubjectKeyRow,
} from "./subject_keys.ts";

type DbRow = {
  key_id: string;
  subject: string;
  epoch_enc: Uint8Array;
  wrapped_key: Uint8Array;
  officer_key_id: string;
  mac: Uint8Array;
};

const COLUMNS = "key_id, subject, epoch_enc, wrapped_key, officer_key_id, mac";

function toRow(r: DbRow): SubjectKeyRow {
  return {
    keyId: r.key_id,
    subject: r.subject,
    epochEnc: new Uint8Array(r.epoch_enc),
    wrappedKey: new Uint8Array(r.wrapped_key),
    officerKeyId: r.officer_key_id,
    mac: new Uint8Array(r.mac),
  };
}

/** A subject's data key in the current epoch, as ingest encrypts with it. */
export interface SubjectKey {
  /** `s:<key id>`: what entries name as their recipient. */
  recipient: string;
  dataKey: Uint8Array;
}

/** Ingest's view of the store: the key to encrypt a subject's originals with, made when first needed. */
export interface SubjectKeyStore {
  keyFor(subject: string): Promise<SubjectKey>;
}

export interface SubjectKeyStoreOptions {
  /** Subjects whose key stays in memory (most recently used first). */
  cacheSize?: number;
  /**
   * How long an epoch lasts: then a new one is opened and every data key of the old one forgotten (so what
   * a compromised process can unwrap is its own current epoch's keys, and a key destroyed by forget stops
   * being used within this time).
   */
  epochMs?: number;
  now?: () => number;
  /**
   * The key store is the main database: its inserts commit without waiting for the WAL flush
   * (synchronous_commit off, for that transaction only). Safe there: an entry naming a key commits after the
   * key's insert, on the same server, and a synchronous commit flushes the WAL written before it. Not for
   * keys of dead letters, which no later commit follows.
   */
  sameDatabaseAsEntries?: boolean;
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
 * const { recipient } = await store.keyFor("user-42"); // "s:<32 hex>"
 * ```
 */
export function createSubjectKeyStore(
  db: Queryable,
  officer: OfficerPublicKey,
  macKey: Uint8Array,
  opts: SubjectKeyStoreOptions = {},
): SubjectKeyStore {
  const cacheSize = opts.cacheSize ?? 50_000;
  const epochMs = opts.epochMs ?? 5 * 60_000;
  const now = opts.now ?? (() => performance.now());
  const relaxed = opts.sameDatabaseAsEntries
    ? "WITH relaxed AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true)) "
    : "";
  let epoch: { at: number; epoch: Promise<Epoch> } | undefined;
  const cache = new Map<string, Promise<SubjectKey>>();

  function currentEpoch(): Promise<Epoch> {
    const t = now();
    if (epoch === undefined || t - epoch.at >= epochMs) {
      cache.clear(); // the old epoch's data keys go with it
      const next = openEpoch(officer);
      epoch = { at: t, epoch: next };
      next.catch(() => epoch?.epoch === next && (epoch = undefined));
    }
    return epoch.epoch;
  }

  // New subjects' keys are inserted together, one statement in flight at a time: those of one turn of the
  // event loop (a batch's records are made together) and those met while the previous insert ran (the
  // other batches in flight), so the key store commits a few times per round trip, not once per batch.
  let pending = new Map<string, { resolve(k: SubjectKey): void; reject(e: unknown): void }[]>();

  async function makeAll(subjects: string[], of: Promise<Epoch>): Promise<Map<string, SubjectKey>> {
    const e = await of;
    const made = subjects.map((s) => newSubjectKey(s, e, macKey));
    const rows = made.map((m) => m.row);
    // One epoch per call: its enc and officer key id are sent once, not per row.
    await db.query(
      `${relaxed}INSERT INTO masq_subject_keys (${COLUMNS})
       SELECT k.id, k.subject, $3::bytea, k.wrapped, $5::text, k.mac
       FROM unnest($1::text[], $2::text[], $4::bytea[], $6::bytea[]) AS k(id, subject, wrapped, mac)${
        relaxed ? ", relaxed" : ""
      }
       ON CONFLICT DO NOTHING`, // a retried insert that had committed (random key ids never collide otherwise)
      [
        rows.map((r) => r.keyId),
        rows.map((r) => r.subject),
        e.enc,
        rows.map((r) => r.wrappedKey),
        e.officerKeyId,
        rows.map((r) => r.mac),
      ],
    );
    return new Map(made.map((m) => [m.row.subject, { recipient: `s:${m.row.keyId}`, dataKey: m.dataKey }]));
  }

  let flushing = false;

  async function drain(): Promise<void> {
    try {
      while (pending.size > 0) await flush(currentEpoch());
    } finally {
      flushing = false;
    }
  }

  async function flush(of: Promise<Epoch>): Promise<void> {
    const batch = pending;
    pending = new Map();
    const subjects = [...batch.keys()];
    for (let i = 0; i < subjects.length; i += 1000) {
      const chunk = subjects.slice(i, i + 1000);
      try {
        const made = await makeAll(chunk, of);
        for (const s of chunk) for (const w of batch.get(s)!) w.resolve(made.get(s)!);
      } catch (err) {
        for (const s of chunk) for (const w of batch.get(s)!) w.reject(err);
      }
    }
  }

  function make(subject: string): Promise<SubjectKey> {
    return new Promise((resolve, reject) => {
      if (!flushing) {
        flushing = true;
        queueMicrotask(() => void drain());
      }
      const waiting = pending.get(subject);
      if (waiting) waiting.push({ resolve, reject });
      else pending.set(subject, [{ resolve, reject }]);
    });
  }

  return {
    keyFor(subject) {
      currentEpoch(); // a new epoch forgets the old one's keys
      const hit = cache.get(subject);
      if (hit !== undefined) {
        cache.delete(subject);
        cache.set(subject, hit);
        return hit;
      }
      const key = make(subject);
      cache.set(subject, key);
      key.catch(() => cache.get(subject) === key && cache.delete(subject)); // tried again next time
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
    `SELECT ${COLUMNS} FROM masq_subject_keys WHERE key_id = ANY($1::text[])`,
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
    `SELECT ${COLUMNS} FROM masq_subject_keys`,
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
