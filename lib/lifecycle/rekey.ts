/**
 * Re-tokenising under a new HMAC key from the vault. Work is counted in vault entries. Each batch is put
 * on record first (`masq_rekey_request()`, committed), then one transaction reads up to a batch of entries
 * made under other keys through `masq_rekey_batch()` (locked FOR UPDATE SKIP LOCKED: concurrent rekeys
 * share the work), decrypts them, computes their tokens under the new key, stores the new entries,
 * rewrites the rows that carried the old tokens, deletes the old entries and commits. A batch commits
 * whole or not at all, and the entries left under old keys are exactly the work left, so a crash is
 * resumed by running the command again.
 *
 * The safety rule: no entry is deleted before its replacement is stored under a different token. Before
 * any change, one entry of each old key is tried: a new key that gives an entry its current token is the
 * same key under another id, and is refused (so is a new key id that already names entries of another
 * key, and a vault key that does not open the entries); each batch checks it again, and deletes an old
 * entry only when its replacement is present, or changes nothing.
 *
 * On the sealed vault (schema version 4, `vault` an Unsealer): each entry is opened with the privacy
 * officer's key through its subject's key, verified under the old HMAC key's MAC, and sealed again to the
 * same subject data key (an entry sealed to the officer's key, to the current one) under the new token, with a
 * MAC under the new HMAC key. Entries are matched by (field, token, subject_key_id), so the entries of one
 * value held by several people may fall in different batches. Entries under the old symmetric key must be
 * converted first (`vault-convert`); an entry whose subject key is gone (erased) is dropped.
 *
 * @module
 */
import type pg from "pg";
import type { Env } from "../config.ts";
import { ConfigError, VaultError } from "../errors.ts";
import { recordKeyUse } from "../sink/schema.ts";
import { createMasker } from "../transform/mask.ts";
import { vaultAad, type VaultCipher } from "../vault.ts";
import { remacSubjectKeys } from "../keystore.ts";
import { type OfficerPublicKey, sealEntry, type SealKey, sealMacKey } from "../seal.ts";
import type { Queryable } from "../sink/schema.ts";
import { RefusedSeal, type Unsealer } from "./unseal.ts";
import { inTransaction, pausePoint } from "./db.ts";
import type { PiiField } from "./recover.ts";
import type { Requester } from "./access.ts";

export interface RekeyOptions {
  /** The new HMAC key and its id. */
  newKey: string;
  newKeyId: string;
  /** The old symmetric vault key (a vault not yet converted); unused with `sealed`. */
  vault?: VaultCipher;
  /** The sealed vault: opens entries (with the old HMAC key's MAC key) and re-seals them. */
  sealed?: { unsealer: Unsealer; officer: OfficerPublicKey; keystore: Queryable; oldMacKey: Uint8Array };
  batchSize: number;
  who: Requester;
  env: Env;
  /** Called after each committed batch. */
  onProgress?: (done: number, total: number) => void;
}

export interface RekeyResult {
  /** Vault entries re-tokenised by this run. */
  entries: number;
  /** user_logins rows rewritten by this run (a row with both tokens rewritten counts twice). */
  rowsUpdated: number;
  batches: number;
  /** Rows still carrying a token with no vault entry under the new key: not re-tokenised. */
  rowsWithoutOriginal: { maskedIp: number; maskedDeviceId: number };
}

type Row = { field: PiiField; token: string; ciphertext: Uint8Array; key_id: string };

/**
 * Re-tokenises every vault entry not made under `newKeyId`, and the rows that reference them.
 *
 * @example
 * ```ts
 * import pg from "pg";
 * import { createVaultCipher } from "../vault.ts";
 * import { rekey, type RekeyOptions, type RekeyResult } from "./rekey.ts";
 *
 * const client = new pg.Client({ connectionString: "postgres://postgres@127.0.0.1:5432/test" });
 * await client.connect();
 * const opts: RekeyOptions = {
 *   newKey: Deno.readTextFileSync("secrets/k2").trim(),
 *   newKeyId: "k2",
 *   vault: await createVaultCipher(crypto.getRandomValues(new Uint8Array(32)), "v1"),
 *   batchSize: 500,
 *   who: { osUser: "dpo", reason: "yearly rotation" },
 *   env: (name) => Deno.env.get(name),
 *   onProgress: (done, total) => console.error(`${done}/${total}`),
 * };
 * const result: RekeyResult = await rekey(client, opts);
 * console.log(result.entries, result.rowsWithoutOriginal);
 * await client.end();
 * ```
 */
export async function rekey(client: pg.Client, opts: RekeyOptions): Promise<RekeyResult> {
  const masker = await createMasker(opts.newKey);
  const newToken = async (field: PiiField, original: string) =>
    field === "ip" ? await masker.ip(original) : await masker.deviceId(original);
  const decrypt = async (r: Row) => {
    try {
      return await opts.vault!.decrypt(new Uint8Array(r.ciphertext), vaultAad(r.field, r.token, r.key_id));
    } catch (err) {
      if (!(err instanceof VaultError)) throw err;
      throw new ConfigError(
        "PII_VAULT_KEY",
        `the vault entry of ${r.field} token ${r.token.slice(0, 12)}… (HMAC key ${r.key_id}) ${err.message}`,
      );
    }
  };
  const newMacKey = sealMacKey(opts.newKey);
  /** The original of an entry, and who it is sealed to ("" under the old key); null when erased. */
  const open = async (r: Row): Promise<{ original: string; recipient: string } | null> => {
    if (opts.sealed === undefined) return { original: await decrypt(r), recipient: "" };
    const ct = new Uint8Array(r.ciphertext);
    const recipient = opts.sealed.unsealer.recipientOf(ct);
    if (recipient === "") {
      throw new ConfigError(
        "PII_VAULT_KEY",
        "entries under the old symmetric vault key are left: run `masq vault-convert` before rekey; nothing was changed in this batch",
      );
    }
    try {
      const opened = await opts.sealed.unsealer.entry(r.field, r.token, r.key_id, ct);
      return opened.status === "ok" ? { original: opened.original, recipient } : null;
    } catch (err) {
      if (!(err instanceof VaultError)) throw err;
      throw new ConfigError(
        err instanceof RefusedSeal ? "pii_vault" : "PII_VAULT_PRIVATE_KEY",
        `the vault entry of ${r.field} token ${r.token.slice(0, 12)}… (HMAC key ${r.key_id}) ${err.message}` +
          (err instanceof RefusedSeal ? "; erase it (masq forget --field --token) and rekey again" : "") +
          "; nothing was changed in this batch",
      );
    }
  };
  /** The entry re-made under the new token: sealed again to its recipient, or under the old key. */
  const remake = async (field: PiiField, token: string, original: string, recipient: string) => {
    if (opts.sealed === undefined) {
      return { ct: await opts.vault!.encrypt(original, vaultAad(field, token, opts.newKeyId)), to: "" };
    }
    let to: SealKey;
    if (recipient.startsWith("o:")) {
      to = { recipient: `o:${opts.sealed.officer.keyId}`, publicKey: opts.sealed.officer.key };
    } else {
      const found = await opts.sealed.unsealer.sealKeyOf(recipient);
      if (found === null) {
        throw new Error(`rekey: subject key ${recipient.slice(2, 14)}… vanished mid-batch; rolled back`);
      }
      to = found;
    }
    return { ct: await sealEntry(to, field, token, opts.newKeyId, original, newMacKey), to: to.recipient };
  };
  // Puts a batch on record and commits it: the database hands out nothing without a committed request.
  const request = async (fromKeyId: string | null, limit: number): Promise<string> =>
    (await client.query<{ id: string }>("SELECT masq_rekey_request($1, $2, $3, $4, $5) AS id", [
      opts.newKeyId,
      fromKeyId,
      limit,
      opts.who.reason,
      opts.who.osUser,
    ])).rows[0].id;
  const readBatch = async (id: string) =>
    (await client.query<Row>("SELECT field, token, ciphertext, key_id FROM masq_rekey_batch($1)", [id]))
      .rows as Row[];

  const oldKeys = (await client.query<{ key_id: string }>(
    "SELECT DISTINCT key_id FROM pii_vault WHERE key_id <> $1 ORDER BY key_id",
    [opts.newKeyId],
  )).rows.map((r: { key_id: string }) => r.key_id);
  const total = oldKeys.length === 0 ? 0 : (await client.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pii_vault WHERE key_id = ANY($1::text[])",
    [oldKeys],
  )).rows[0].n as number;

  const newIdInUse = (await client.query<{ used: boolean }>(
    "SELECT EXISTS (SELECT 1 FROM pii_vault WHERE key_id = $1) AS used",
    [opts.newKeyId],
  )).rows[0].used;
  // Before any change: one entry of each old key (and of the new id, if it names some already) is tried.
  for (const keyId of newIdInUse ? [...oldKeys, opts.newKeyId] : oldKeys) {
    const id = await request(keyId, 1);
    await client.query("BEGIN");
    try {
      const [entry] = await readBatch(id);
      const opened = entry === undefined ? null : await open(entry);
      if (entry !== undefined && opened !== null) {
        const same = (await newToken(entry.field, opened.original)) === entry.token;
        if (keyId !== opts.newKeyId && same) {
          throw new ConfigError(
            "--to-key-file",
            `the new key makes the same tokens as HMAC key ${keyId}: it is the same key (under a new id); nothing was changed`,
          );
        }
        if (keyId === opts.newKeyId && !same) {
          throw new ConfigError(
            "--to-key-id",
            "already names vault entries made under another HMAC key; choose a new id; nothing was changed",
          );
        }
      }
    } finally {
      await client.query("ROLLBACK").catch(() => {});
    }
  }

  await recordKeyUse(client, opts.newKeyId);
  let entries = 0;
  let rowsUpdated = 0;
  let batches = 0;
  opts.onProgress?.(0, total);
  for (;;) {
    const left = await client.query<{ left: boolean }>(
      "SELECT EXISTS (SELECT 1 FROM pii_vault WHERE key_id <> $1) AS left",
      [opts.newKeyId],
    );
    if (!left.rows[0].left) break;
    const id = await request(null, opts.batchSize);
    const done = await inTransaction(client, async () => {
      // The lock forget takes waits for this whole batch (or this for forget), instead of deadlocking on
      // an entry both want.
      await client.query("LOCK TABLE pii_vault IN ROW EXCLUSIVE MODE");
      const rows = await readBatch(id);
      if (rows.length === 0) return 0;
      const mapped: {
        field: PiiField;
        old: string;
        new: string;
        ct: Uint8Array;
        from: string;
        to: string;
      }[] = [];
      const erased: { field: PiiField; token: string; from: string }[] = [];
      for (const r of rows) {
        const opened = await open(r);
        if (opened === null) {
          // Its subject key is destroyed (forget): nobody can open it; it goes.
          erased.push({
            field: r.field,
            token: r.token,
            from: opts.sealed!.unsealer.recipientOf(new Uint8Array(r.ciphertext)),
          });
          continue;
        }
        const original = opened.original;
        const token = await newToken(r.field, original);
        if (token === r.token) {
          throw new ConfigError(
            "--to-key-file",
            `the new key makes the same tokens as HMAC key ${r.key_id}: it is the same key (under a new id); this batch was not changed`,
          );
        }
        const made = await remake(r.field, token, original, opened.recipient);
        mapped.push({
          field: r.field,
          old: r.token,
          new: token,
          ct: made.ct,
          from: opened.recipient,
          to: made.to,
        });
      }
      if (erased.length > 0) {
        await client.query(
          `DELETE FROM pii_vault v USING unnest($1::text[], $2::text[], $3::text[]) AS o(f, t, s)
           WHERE v.field = o.f AND v.token = o.t AND v.subject_key_id = o.s`,
          [erased.map((e) => e.field), erased.map((e) => e.token), erased.map((e) => e.from)],
        );
      }
      await client.query(
        `INSERT INTO pii_vault (field, token, ciphertext, key_id, subject_key_id)
         SELECT f, t, c, $4, s FROM unnest($1::text[], $2::text[], $3::bytea[], $5::text[]) AS v(f, t, c, s)
         ON CONFLICT DO NOTHING`,
        [
          mapped.map((m) => m.field),
          mapped.map((m) => m.new),
          mapped.map((m) => m.ct),
          opts.newKeyId,
          mapped.map((m) => m.to),
        ],
      );
      let updated = 0;
      for (const [field, column] of [["ip", "masked_ip"], ["device_id", "masked_device_id"]] as const) {
        const these = mapped.filter((m) => m.field === field);
        if (these.length === 0) continue;
        const upd = await client.query(
          `UPDATE user_logins u SET ${column} = m.new
           FROM unnest($1::text[], $2::text[]) AS m(old, new) WHERE u.${column} = m.old`,
          [these.map((m) => m.old), these.map((m) => m.new)],
        );
        updated += upd.rowCount ?? 0;
      }
      // An old entry goes only when its replacement, under another token, is there.
      const del = await client.query(
        `DELETE FROM pii_vault v USING unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
           AS o(f, old, new, s_old, s_new)
         WHERE v.field = o.f AND v.token = o.old AND v.subject_key_id = o.s_old AND o.new <> o.old
           AND EXISTS (SELECT 1 FROM pii_vault n WHERE n.field = o.f AND n.token = o.new AND n.subject_key_id = o.s_new)`,
        [
          mapped.map((m) => m.field),
          mapped.map((m) => m.old),
          mapped.map((m) => m.new),
          mapped.map((m) => m.from),
          mapped.map((m) => m.to),
        ],
      );
      if ((del.rowCount ?? 0) !== mapped.length) {
        throw new Error(
          `rekey: ${
            mapped.length - (del.rowCount ?? 0)
          } vault entries of this batch have no replacement; the batch was rolled back`,
        );
      }
      rowsUpdated += updated;
      return mapped.length + erased.length;
    });
    if (done === 0) break;
    entries += done;
    batches++;
    opts.onProgress?.(entries, total);
    if (batches === 1) await pausePoint(opts.env, "rekey");
  }
  // Last (and again on every run, so a crash here is resumed): the key store's MACs under the new key.
  if (opts.sealed) await remacSubjectKeys(opts.sealed.keystore, opts.sealed.oldMacKey, newMacKey);
  const left = await client.query<{ ip: number; dev: number }>(
    `SELECT
       count(*) FILTER (WHERE masked_ip IS NOT NULL AND NOT EXISTS (
         SELECT 1 FROM pii_vault v WHERE v.field = 'ip' AND v.token = u.masked_ip AND v.key_id = $1))::int AS ip,
       count(*) FILTER (WHERE masked_device_id IS NOT NULL AND NOT EXISTS (
         SELECT 1 FROM pii_vault v WHERE v.field = 'device_id' AND v.token = u.masked_device_id
           AND v.key_id = $1))::int AS dev
     FROM user_logins u`,
    [opts.newKeyId],
  );
  const l = left.rows[0] as { ip: number; dev: number };
  return { entries, rowsUpdated, batches, rowsWithoutOriginal: { maskedIp: l.ip, maskedDeviceId: l.dev } };
}
