/**
 * Erasure. `forgetUser` deletes a person's rows (user_logins, and the rejected messages whose redacted
 * body names them) and every vault entry whose token no remaining row references; `forgetToken` deletes one
 * vault entry. Each runs in one transaction with its access-log line: a crash erases all of it or none.
 *
 * Crypto-shredding (schema version 4): the person's subject keys are deleted from the key store too, in the
 * same transaction when the key store is the main database, else committed just before the main
 * transaction (a failure there rolls the main one back; a crash between the two leaves rows whose
 * originals are already unreadable, and running forget again removes them). Every original sealed to
 * those keys becomes unreadable wherever a copy is: the vault, dead letters in the DLQ, backups of the main
 * database (and of the key store's, once its backups taken before the erasure have expired).
 *
 * The vault is locked against concurrent writers (SHARE ROW EXCLUSIVE) for the few milliseconds of the
 * erasure: otherwise a login committing meanwhile could reference a token whose entry is being removed.
 *
 * @module
 */
import type pg from "pg";
import type { Env } from "../config.ts";
import { asciiJson } from "../transform/redact.ts";
import { deleteSubjectKeys } from "../keystore.ts";
import { inTransaction, logAccess, pausePoint } from "./db.ts";
import type { PiiField } from "./recover.ts";
import type { Requester } from "./access.ts";

/** What forgetUser() removed. */
export interface ForgetUserResult {
  userLogins: number;
  rejected: number;
  vaultEntries: number;
  /** Distinct tokens of the person still referenced by other rows: their vault entries stay. */
  vaultEntriesKept: number;
  /** The person's subject keys destroyed in the key store (every original sealed to them is unreadable). */
  subjectKeys: number;
}

/** The message ids of rejected messages whose redacted body has this user_id. */
async function rejectedOf(client: pg.Client, userId: string): Promise<string[]> {
  // A cheap text filter first (the id as the body spells it), then an exact check of the parsed body.
  const res = await client.query<{ message_id: string; body_redacted: string }>(
    "SELECT message_id, body_redacted FROM user_logins_rejected WHERE strpos(body_redacted, $1) > 0",
    [asciiJson(JSON.stringify(userId)).slice(1, -1)],
  );
  const rows = res.rows as { message_id: string; body_redacted: string }[];
  return rows.filter((r) => {
    try {
      const body = JSON.parse(r.body_redacted);
      const id = body?.user_id;
      return (typeof id === "string" || typeof id === "number") && String(id) === userId;
    } catch {
      return false;
    }
  }).map((r) => r.message_id);
}

/**
 * Erases a person; see the module comment.
 *
 * @example
 * ```ts
 * import pg from "pg";
 * import { forgetToken, type ForgetTokenResult, forgetUser, type ForgetUserResult } from "./forget.ts";
 *
 * const client = new pg.Client({ connectionString: "postgres://postgres@127.0.0.1:5432/test" });
 * await client.connect();
 * const who = { osUser: "dpo", reason: "erasure request 7" };
 * const person: ForgetUserResult = await forgetUser(client, "user-42", who, (name) => Deno.env.get(name));
 * const entry: ForgetTokenResult = await forgetToken(client, "ip", "ab".repeat(32), who);
 * console.log(person.userLogins, person.vaultEntries, entry.rowsStillReferencing);
 * await client.end();
 * ```
 */
export async function forgetUser(
  client: pg.Client,
  userId: string,
  who: Requester,
  env: Env,
  /** The key store's connection when it is a database of its own (else the key store is `client`'s). */
  keystore?: pg.Client,
): Promise<ForgetUserResult> {
  return await inTransaction(client, async () => {
    await client.query("LOCK TABLE pii_vault IN SHARE ROW EXCLUSIVE MODE");
    const rows = await client.query<{ masked_ip: string | null; masked_device_id: string | null }>(
      "DELETE FROM user_logins WHERE user_id = $1 RETURNING masked_ip, masked_device_id",
      [userId],
    );
    const rejectedIds = await rejectedOf(client, userId);
    const rejected = rejectedIds.length === 0 ? 0 : (await client.query(
      "DELETE FROM user_logins_rejected WHERE message_id = ANY($1::text[])",
      [rejectedIds],
    )).rowCount ?? 0;
    await pausePoint(env, "forget");
    const deleted = rows.rows as { masked_ip: string | null; masked_device_id: string | null }[];
    const ips = [...new Set(deleted.flatMap((r) => r.masked_ip ?? []))];
    const devices = [...new Set(deleted.flatMap((r) => r.masked_device_id ?? []))];
    let vaultEntries = 0;
    for (
      const [field, column, tokens] of [["ip", "masked_ip", ips], ["device_id", "masked_device_id", devices]]
    ) {
      if (tokens.length === 0) continue;
      const res = await client.query(
        `DELETE FROM pii_vault v WHERE v.field = $1 AND v.token = ANY($2::text[])
           AND NOT EXISTS (SELECT 1 FROM user_logins u WHERE u.${column} = v.token)`,
        [field, tokens],
      );
      vaultEntries += res.rowCount ?? 0;
    }
    // The person's subject keys, and the entries sealed to them (a token another person shares has that
    // person's own entry, sealed to their key).
    const separate = keystore !== undefined && keystore !== client;
    let keyIds: string[] = [];
    if (separate) keyIds = await inTransaction(keystore, () => deleteSubjectKeys(keystore, userId));
    else {
      const here = await client.query<{ here: boolean }>(
        "SELECT to_regclass('masq_subject_keys') IS NOT NULL AS here",
      );
      if (here.rows[0].here) keyIds = await deleteSubjectKeys(client, userId);
    }
    if (keyIds.length > 0) {
      const res = await client.query("DELETE FROM pii_vault WHERE subject_key_id = ANY($1::text[])", [
        keyIds.map((k) => `s:${k}`),
      ]);
      vaultEntries += res.rowCount ?? 0;
    }
    const stillReferenced = await client.query<{ n: number }>(
      `SELECT (SELECT count(DISTINCT masked_ip) FROM user_logins WHERE masked_ip = ANY($1::text[]))::int +
              (SELECT count(DISTINCT masked_device_id) FROM user_logins WHERE masked_device_id = ANY($2::text[]))::int
              AS n`,
      [ips, devices],
    );
    const result = {
      userLogins: rows.rowCount ?? 0,
      rejected,
      vaultEntries,
      vaultEntriesKept: stillReferenced.rows[0].n,
      subjectKeys: keyIds.length,
    };
    await logAccess(client, [{
      action: "forget_user",
      osUser: who.osUser,
      reason: who.reason,
      userId,
      outcome: `removed user_logins=${result.userLogins} user_logins_rejected=${result.rejected} ` +
        `pii_vault=${result.vaultEntries} kept_shared=${result.vaultEntriesKept} subject_keys=${result.subjectKeys}`,
    }]);
    return result;
  });
}

/** What forgetToken() removed. */
export interface ForgetTokenResult {
  vaultEntries: number;
  /** Rows that still carry the token (now a pseudonym with no original anywhere). */
  rowsStillReferencing: number;
}

/** Erases one vault entry (the rows keep their token, which no longer leads to an original). */
export async function forgetToken(
  client: pg.Client,
  field: PiiField,
  token: string,
  who: Requester,
): Promise<ForgetTokenResult> {
  return await inTransaction(client, async () => {
    const res = await client.query("DELETE FROM pii_vault WHERE field = $1 AND token = $2", [field, token]);
    const column = field === "ip" ? "masked_ip" : "masked_device_id";
    const refs = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM user_logins WHERE ${column} = $1`,
      [token],
    );
    const result = { vaultEntries: res.rowCount ?? 0, rowsStillReferencing: refs.rows[0].n };
    await logAccess(client, [{
      action: "forget_token",
      osUser: who.osUser,
      reason: who.reason,
      field,
      token,
      outcome: result.vaultEntries ? "removed" : "not_found",
    }]);
    return result;
  });
}
