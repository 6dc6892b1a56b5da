/**
 * Recovering originals from the vault, through the database's own functions (schema version 3):
 * `masq_recover_request()` appends one `pii_access_log` line per token asked for (found or not_found) and
 * commits, and only then does `masq_recover()` hand out the ciphertexts those lines name; no role may read
 * `pii_vault.ciphertext` otherwise. A wrong vault key is an error after the read is on record, never
 * garbage.
 *
 * @module
 */
import type pg from "pg";
import { ConfigError, VaultError } from "../errors.ts";
import { vaultAad, type VaultCipher } from "../vault.ts";
import { RefusedSeal, type Unsealer } from "./unseal.ts";

export type PiiField = "ip" | "device_id";

/** Who asks, and why (for the access log). */
export interface Requester {
  osUser: string;
  reason: string;
}

/** One token's answer. */
export interface Recovered {
  token: string;
  /** The original value; undefined when the vault has no entry for the token (or it was erased). */
  original: string | undefined;
  /** The vault's entries of the token were all erased (their subject keys destroyed by forget). */
  erased?: boolean;
  /** Why an entry of the token was refused: masq did not seal it. Nothing is returned for the token. */
  refused?: string;
}

/** --field: ip or device_id. */
export function parseField(value: string | boolean | undefined): PiiField {
  if (value === "ip" || value === "device_id") return value;
  throw new ConfigError("--field", "must be ip or device_id");
}

/** A token as masq writes it: 64 lowercase hex digits (uppercase accepted and lowered). */
export function parseToken(text: string, where: string): string {
  const t = text.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(t)) throw new ConfigError(where, "is not a token (64 hex digits)");
  return t;
}

/**
 * Looks tokens up in the vault and decrypts them; every lookup is on record (committed) before any
 * ciphertext leaves the database. Must not run inside a transaction of the caller's (the fetch would find
 * no committed request, and refuse).
 *
 * @example
 * ```ts
 * import pg from "pg";
 * import { createVaultCipher } from "../vault.ts";
 * import { parseField, parseToken, type PiiField, type Recovered, recoverTokens } from "./recover.ts";
 * import { type Requester } from "./access.ts";
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
  vault: VaultCipher | Unsealer,
  field: PiiField,
  tokens: readonly string[],
  who: Requester,
): Promise<Recovered[]> {
  const unique = [...new Set(tokens)];
  const answers = new Map<string, string>();
  const erased = new Set<string>();
  const refused = new Map<string, string>();
  let failed: { token: string; keyId: string; error: VaultError } | undefined;
  for (let i = 0; i < unique.length; i += RECOVER_CHUNK) {
    const chunk = unique.slice(i, i + RECOVER_CHUNK);
    // Two statements, each its own transaction: the lines are committed before any ciphertext is read.
    await client.query("SELECT masq_recover_request($1, $2::text[], $3, $4)", [
      field,
      chunk,
      who.reason,
      who.osUser,
    ]);
    const res = await client.query<Row>(
      "SELECT token, ciphertext, key_id FROM masq_recover($1, $2::text[])",
      [field, chunk],
    );
    const rows = res.rows as Row[];
    if ("entry" in vault) {
      await vault.prefetch(rows.map((r) => vault.recipientOf(new Uint8Array(r.ciphertext))));
    }
    for (const row of rows) {
      try {
        if (!("entry" in vault)) {
          answers.set(
            row.token,
            await vault.decrypt(new Uint8Array(row.ciphertext), vaultAad(field, row.token, row.key_id)),
          );
          continue;
        }
        // One entry per (token, subject): any that opens gives the original; erased ones give nothing.
        const opened = await vault.entry(field, row.token, row.key_id, new Uint8Array(row.ciphertext));
        if (opened.status === "ok") answers.set(row.token, opened.original);
        else erased.add(row.token);
      } catch (err) {
        if (err instanceof RefusedSeal) {
          refused.set(row.token, err.message);
          continue;
        }
        if (!(err instanceof VaultError)) throw err;
        failed ??= { token: row.token, keyId: row.key_id, error: err };
      }
    }
    if (failed) break;
  }
  if (failed) {
    throw new ConfigError(
      "entry" in vault ? "PII_VAULT_PRIVATE_KEY" : "PII_VAULT_KEY",
      `the vault entry of ${field} token ${
        failed.token.slice(0, 12)
      }… (HMAC key ${failed.keyId}) ${failed.error.message}`,
    );
  }
  return tokens.map((token) => {
    const why = refused.get(token);
    // A token with an entry masq did not seal gets nothing: the forged entry might be the one that opens.
    if (why !== undefined) return { token, original: undefined, refused: why };
    const original = answers.get(token);
    return { token, original, ...(original === undefined && erased.has(token) ? { erased: true } : {}) };
  });
}

type Row = { token: string; ciphertext: Uint8Array; key_id: string };

/** Tokens per request: the lines of one request are committed before its fetch, well within the window. */
const RECOVER_CHUNK = 1000;
