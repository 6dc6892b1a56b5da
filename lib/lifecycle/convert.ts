/**
 * `masq vault-convert`: the vault under the old symmetric key (PII_VAULT_KEY) becomes the sealed vault
 * (lib/seal.ts), in batches. Each batch is put on record first (`masq_convert_request()`, committed), then
 * one transaction reads up to a batch of old entries through `masq_convert_batch()` (FOR UPDATE SKIP
 * LOCKED), decrypts each, seals it to the subject key of every person whose rows carry its token (or, when
 * no row does, to the privacy officer's key), stores the sealed entries, deletes the old one and commits.
 * A batch commits whole or not at all, and the entries left under the old key are exactly the work left:
 * a crash is resumed by running the command again, and no entry is converted twice. Until the last batch
 * commits the old key still opens what is left; once no entry is left under it, it can be retired.
 *
 * @module
 */
import type pg from "pg";
import type { Env } from "../config.ts";
import { ConfigError, VaultError } from "../errors.ts";
import type { SubjectKeyStore } from "../keystore.ts";
import { type OfficerPublicKey, sealEntry, type SealKey } from "../seal.ts";
import { vaultAad, type VaultCipher } from "../vault.ts";
import { inTransaction, pausePoint } from "./db.ts";
import type { Requester } from "./access.ts";

export interface ConvertOptions {
  /** The old symmetric key. */
  legacy: VaultCipher;
  officer: OfficerPublicKey;
  /** The key store, over a connection that may insert subject keys (the privacy officer's). */
  subjects: SubjectKeyStore;
  /** sealMacKey() of the HMAC key, and its id: only entries under that HMAC key id are converted. */
  macKey: Uint8Array;
  hmacKeyId: string;
  batchSize: number;
  who: Requester;
  env: Env;
  onProgress?: (done: number, total: number) => void;
}

export interface ConvertResult {
  /** Old entries converted by this run. */
  converted: number;
  /** Sealed entries written (one per person sharing a value, one to the officer for a value no row has). */
  sealed: number;
  batches: number;
  /** Entries still under the old key (0 when done: PII_VAULT_KEY can be retired). */
  left: number;
}

type Row = { field: "ip" | "device_id"; token: string; ciphertext: Uint8Array; key_id: string };

/**
 * Converts every entry under the old key; see the module comment.
 *
 * @example
 * ```ts
 * import pg from "pg";
 * import { convertVault, type ConvertOptions, type ConvertResult } from "./convert.ts";
 * declare const client: pg.Client;
 * declare const opts: ConvertOptions;
 * const result: ConvertResult = await convertVault(client, opts);
 * console.log(result.converted, result.left);
 * ```
 */
export async function convertVault(client: pg.Client, opts: ConvertOptions): Promise<ConvertResult> {
  const count = async () =>
    (await client.query<{ n: number }>("SELECT count(*)::int AS n FROM pii_vault WHERE subject_key_id = ''"))
      .rows[0].n as number;
  const total = await count();
  let converted = 0;
  let sealed = 0;
  let batches = 0;
  opts.onProgress?.(0, total);
  for (;;) {
    if ((await count()) === 0) break;
    const id = (await client.query<{ id: string }>("SELECT masq_convert_request($1, $2, $3) AS id", [
      opts.batchSize,
      opts.who.reason,
      opts.who.osUser,
    ])).rows[0].id;
    const done = await inTransaction(client, async () => {
      // forget's lock waits for this batch, instead of deleting what the batch is about to re-seal.
      await client.query("LOCK TABLE pii_vault IN ROW EXCLUSIVE MODE");
      const rows = (await client.query<Row>(
        "SELECT field, token, ciphertext, key_id FROM masq_convert_batch($1)",
        [id],
      )).rows as Row[];
      if (rows.length === 0) return { rows: 0, sealed: 0 };
      const out: { field: string; token: string; ct: Uint8Array; keyId: string; to: string }[] = [];
      for (const r of rows) {
        if (r.key_id !== opts.hmacKeyId) {
          throw new ConfigError(
            "PII_HMAC_KEY_ID",
            `vault entries were made under HMAC key ${r.key_id}, not ${opts.hmacKeyId}; convert with that key (or rekey first); this batch was not changed`,
          );
        }
        let original: string;
        try {
          original = await opts.legacy.decrypt(
            new Uint8Array(r.ciphertext),
            vaultAad(r.field, r.token, r.key_id),
          );
        } catch (err) {
          if (!(err instanceof VaultError)) throw err;
          throw new ConfigError(
            "PII_VAULT_KEY",
            `the vault entry of ${r.field} token ${
              r.token.slice(0, 12)
            }… ${err.message}; this batch was not changed`,
          );
        }
        const column = r.field === "ip" ? "masked_ip" : "masked_device_id";
        const people = (await client.query<{ user_id: string }>(
          `SELECT DISTINCT user_id FROM user_logins WHERE ${column} = $1 AND user_id IS NOT NULL ORDER BY 1`,
          [r.token],
        )).rows.map((p: { user_id: string }) => p.user_id);
        const recipients: SealKey[] = people.length === 0
          ? [{ recipient: `o:${opts.officer.keyId}`, publicKey: opts.officer.key }]
          : await Promise.all(people.map((p: string) => opts.subjects.keyFor(p)));
        for (const to of recipients) {
          out.push({
            field: r.field,
            token: r.token,
            keyId: r.key_id,
            to: to.recipient,
            ct: await sealEntry(to, r.field, r.token, r.key_id, original, opts.macKey),
          });
        }
      }
      await client.query(
        `INSERT INTO pii_vault (field, token, ciphertext, key_id, subject_key_id)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::text[])
         ON CONFLICT DO NOTHING`,
        [
          out.map((o) => o.field),
          out.map((o) => o.token),
          out.map((o) => o.ct),
          out.map((o) => o.keyId),
          out.map((o) => o.to),
        ],
      );
      const del = await client.query(
        `DELETE FROM pii_vault v USING unnest($1::text[], $2::text[]) AS o(f, t)
         WHERE v.field = o.f AND v.token = o.t AND v.subject_key_id = ''`,
        [rows.map((r) => r.field), rows.map((r) => r.token)],
      );
      if ((del.rowCount ?? 0) !== rows.length) {
        throw new Error("vault-convert: an old entry vanished mid-batch; rolled back");
      }
      return { rows: rows.length, sealed: out.length };
    });
    if (done.rows === 0) break;
    converted += done.rows;
    sealed += done.sealed;
    batches++;
    opts.onProgress?.(converted, total);
    if (batches === 1) await pausePoint(opts.env, "convert");
  }
  return { converted, sealed, batches, left: await count() };
}
