/**
 * Recovering originals from the vault: one transaction reads the entries and appends one
 * `pii_access_log` line per token asked for (found, not found or undecryptable), so no read escapes the
 * record. A wrong vault key is an error after the attempt is logged, never garbage.
 *
 * @module
 */
import type pg from "pg";
import { ConfigError } from "../errors.ts";
import { vaultAad, type VaultCipher, VaultError } from "../vault.ts";
import { type AccessEntry, inTransaction, logAccess } from "./db.ts";

export type PiiField = "ip" | "device_id";

/** Who asks, and why (for the access log). */
export interface Requester {
  osUser: string;
  reason: string;
}

/** One token's answer. */
export interface Recovered {
  token: string;
  /** The original value; undefined when the vault has no entry for the token. */
  original: string | undefined;
}

/** --field: ip or device_id. */
export function parseField(value: string | boolean | undefined): PiiField {
  if (value === "ip" || value === "device_id") return value;
  throw new ConfigError("--field", `${JSON.stringify(value ?? "")} is not ip or device_id`);
}

/** A token as masq writes it: 64 lowercase hex digits (uppercase accepted and lowered). */
export function parseToken(text: string, where: string): string {
  const t = text.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(t)) throw new ConfigError(where, "is not a token (64 hex digits)");
  return t;
}

/**
 * Looks tokens up in the vault and decrypts them; every lookup is logged in the same transaction.
 *
 * @example
 * ```ts
 * import pg from "pg";
 * import { createVaultCipher } from "../vault.ts";
 * import { parseField, parseToken, type PiiField, type Recovered, recoverTokens, type Requester } from "./recover.ts";
 *
 * const client = new pg.Client({ connectionString: "postgres://postgres@127.0.0.1:5432/test" });
 * await client.connect();
 * const vault = await createVaultCipher(crypto.getRandomValues(new Uint8Array(32)), "v1");
 * const field: PiiField = parseField("ip");
 * const who: Requester = { osUser: "dpo", reason: "ticket 1" };
 * const tokens = [parseToken("AB".repeat(32), "--token")];
 * const answers: Recovered[] = await recoverTokens(client, vault, field, tokens, who);
 * console.log(answers[0].original ?? "not in the vault");
 * await client.end();
 * ```
 */
export async function recoverTokens(
  client: pg.Client,
  vault: VaultCipher,
  field: PiiField,
  tokens: readonly string[],
  who: Requester,
): Promise<Recovered[]> {
  const unique = [...new Set(tokens)];
  const { answers, failed } = await inTransaction(client, async () => {
    const res = await client.query<{ token: string; ciphertext: Uint8Array; key_id: string }>(
      "SELECT token, ciphertext, key_id FROM pii_vault WHERE field = $1 AND token = ANY($2::text[])",
      [field, unique],
    );
    type Row = { token: string; ciphertext: Uint8Array; key_id: string };
    const byToken = new Map((res.rows as Row[]).map((r) => [r.token, r]));
    const answers = new Map<string, string | undefined>();
    const entries: AccessEntry[] = [];
    let failed: { token: string; keyId: string; error: VaultError } | undefined;
    for (const token of unique) {
      const row = byToken.get(token);
      let outcome = "not_found";
      if (row) {
        try {
          answers.set(
            token,
            await vault.decrypt(new Uint8Array(row.ciphertext), vaultAad(field, token, row.key_id)),
          );
          outcome = "found";
        } catch (err) {
          if (!(err instanceof VaultError)) throw err;
          outcome = "undecryptable";
          failed ??= { token, keyId: row.key_id, error: err };
        }
      }
      entries.push({ action: "recover", osUser: who.osUser, reason: who.reason, outcome, field, token });
    }
    await logAccess(client, entries);
    return { answers, failed };
  });
  if (failed) {
    throw new ConfigError(
      "PII_VAULT_KEY",
      `the vault entry of ${field} token ${
        failed.token.slice(0, 12)
      }… (HMAC key ${failed.keyId}) ${failed.error.message}`,
    );
  }
  return tokens.map((token) => ({ token, original: answers.get(token) }));
}
