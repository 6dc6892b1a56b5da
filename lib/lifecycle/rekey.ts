/**
 * Re-tokenising under a new HMAC key from the vault. Work is counted in vault entries: each batch, in one
 * transaction, decrypts entries made under an older key, computes their tokens under the new key, stores
 * the new entries, rewrites the rows that carried the old tokens, deletes the old entries and logs the
 * access. A batch commits whole or not at all, and the entries left under old keys are exactly the work
 * left, so a crash is resumed by running the command again.
 *
 * @module
 */
import type pg from "pg";
import type { Env } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { recordKeyUse } from "../sink/schema.ts";
import { createMasker } from "../transform/mask.ts";
import { vaultAad, type VaultCipher, VaultError } from "../vault.ts";
import { inTransaction, logAccess } from "./db.ts";
import { pausePoint } from "./keys.ts";
import type { PiiField, Requester } from "./recover.ts";

export interface RekeyOptions {
  /** The new HMAC key and its id. */
  newKey: string;
  newKeyId: string;
  vault: VaultCipher;
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
  await recordKeyUse(client, opts.newKeyId);
  const oldKeys = (await client.query<{ key_id: string }>(
    "SELECT DISTINCT key_id FROM pii_vault WHERE key_id <> $1",
    [opts.newKeyId],
  )).rows.map((r: { key_id: string }) => r.key_id);
  const total = oldKeys.length === 0 ? 0 : (await client.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pii_vault WHERE key_id = ANY($1::text[])",
    [oldKeys],
  )).rows[0].n as number;
  let entries = 0;
  let rowsUpdated = 0;
  let batches = 0;
  opts.onProgress?.(0, total);
  while (oldKeys.length > 0) {
    const done = await inTransaction(client, async () => {
      // SKIP LOCKED: two rekeys at once share the work instead of waiting for each other.
      const res = await client.query(
        `SELECT field, token, ciphertext, key_id FROM pii_vault WHERE key_id = ANY($1::text[])
         ORDER BY field, token LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [oldKeys, opts.batchSize],
      );
      const rows = res.rows as Row[];
      if (rows.length === 0) return 0;
      const mapped: { field: PiiField; old: string; new: string; ct: Uint8Array }[] = [];
      for (const r of rows) {
        let original: string;
        try {
          original = await opts.vault.decrypt(
            new Uint8Array(r.ciphertext),
            vaultAad(r.field, r.token, r.key_id),
          );
        } catch (err) {
          if (!(err instanceof VaultError)) throw err;
          throw new ConfigError(
            "PII_VAULT_KEY",
            `the vault entry of ${r.field} token ${
              r.token.slice(0, 12)
            }… (HMAC key ${r.key_id}) ${err.message}`,
          );
        }
        const token = await newToken(r.field, original);
        mapped.push({
          field: r.field,
          old: r.token,
          new: token,
          ct: await opts.vault.encrypt(original, vaultAad(r.field, token, opts.newKeyId)),
        });
      }
      await client.query(
        `INSERT INTO pii_vault (field, token, ciphertext, key_id)
         SELECT f, t, c, $4 FROM unnest($1::text[], $2::text[], $3::bytea[]) AS v(f, t, c)
         ON CONFLICT (field, token) DO NOTHING`,
        [mapped.map((m) => m.field), mapped.map((m) => m.new), mapped.map((m) => m.ct), opts.newKeyId],
      );
      for (const [field, column] of [["ip", "masked_ip"], ["device_id", "masked_device_id"]] as const) {
        const these = mapped.filter((m) => m.field === field);
        if (these.length === 0) continue;
        const upd = await client.query(
          `UPDATE user_logins u SET ${column} = m.new
           FROM unnest($1::text[], $2::text[]) AS m(old, new) WHERE u.${column} = m.old`,
          [these.map((m) => m.old), these.map((m) => m.new)],
        );
        rowsUpdated += upd.rowCount ?? 0;
      }
      await client.query(
        `DELETE FROM pii_vault v USING unnest($1::text[], $2::text[]) AS o(f, t)
         WHERE v.field = o.f AND v.token = o.t`,
        [mapped.map((m) => m.field), mapped.map((m) => m.old)],
      );
      await logAccess(client, [{
        action: "rekey",
        osUser: opts.who.osUser,
        reason: opts.who.reason,
        outcome: `re-tokenised ${mapped.length} vault entries to HMAC key ${opts.newKeyId}`,
      }]);
      return mapped.length;
    });
    if (done === 0) break;
    entries += done;
    batches++;
    opts.onProgress?.(entries, total);
    if (batches === 1) await pausePoint(opts.env, "rekey");
  }
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
