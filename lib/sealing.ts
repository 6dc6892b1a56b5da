/**
 * The ingest side of the sealed vault (lib/seal.ts): what `masq run` uses instead of a vault key. It
 * encrypts a login's originals and a dead letter's original under its subject's data key of the current
 * epoch (lib/subject_keys.ts; or, with no usable user_id, seals it to the privacy officer's key with HPKE),
 * and MACs each; it can open nothing made outside its own current epoch.
 *
 * A vault entry is written once per distinct (value, subject key), so the sealed entry is kept (bounded,
 * most recently used) and reused for the next message with the same pair.
 *
 * @module
 */
import { findAddress } from "./transform/address.ts";
import type { SubjectKeyStore } from "./keystore.ts";
import {
  encodeEntry,
  encodeLetter,
  encryptWith,
  entryAad,
  letterAad,
  letterMacParts,
  type OfficerPublicKey,
  SEALED_ATTRIBUTE,
  sealFor,
  type SealKey,
  sealMac,
} from "./seal.ts";
import type { VaultEntry } from "./types.ts";
import type { SubjectKey } from "./keystore.ts";

const encoder = new TextEncoder();

/** Seals originals on the ingest path (masq run); see the module comment. */
export interface SealingVault {
  readonly kind: "sealed";
  /** The officer key id (for logs). */
  readonly keyId: string;
  entry(
    field: VaultEntry["field"],
    token: string,
    hmacKeyId: string,
    subject: string,
    original: string,
  ): Promise<
    VaultEntry
  >;
  /** The attributes that carry a dead letter's sealed original. */
  letter(messageId: string, body: string): Promise<Record<string, string>>;
}

export interface SealingVaultOptions {
  officer: OfficerPublicKey;
  subjects: SubjectKeyStore;
  /** The store dead letters' keys come from (default: `subjects`), when theirs must commit durably. */
  letterSubjects?: SubjectKeyStore;
  /** sealMacKey() of the HMAC key, and that key's id. */
  macKey: Uint8Array;
  hmacKeyId: string;
  /** Seals kept for reuse. */
  cacheSize?: number;
}

/**
 * The user_id a dead letter's body names, when it names one usable as a subject: a JSON object whose
 * user_id is a string or number of 1 to 128 characters (as `forget --user-id` finds rejected rows), with no
 * address in it in any spelling: the key store keeps its subjects in the clear, so it holds only what a clear
 * column may (README, "Bad input"); a letter naming no such subject is sealed to the officer's key.
 */
export function subjectOf(body: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return undefined;
  const id = (parsed as Record<string, unknown>).user_id;
  if (typeof id !== "string" && typeof id !== "number") return undefined;
  const text = String(id);
  if (text.trim() === "" || [...text].length > 128 || !text.isWellFormed() || text.includes("\u0000")) {
    return undefined;
  }
  return findAddress(text) === null ? text : undefined;
}

/**
 * @example
 * ```ts
 * import pg from "pg";
 * import { createSubjectKeyStore } from "./keystore.ts";
 * import { generateOfficerKeys, parseOfficerPublicKey, sealMacKey } from "./seal.ts";
 * import { createSealingVault, subjectOf } from "./sealing.ts";
 * const pool = new pg.Pool({ connectionString: "postgres://postgres@127.0.0.1:5432/test" });
 * const officer = await parseOfficerPublicKey((await generateOfficerKeys()).publicText, "PII_VAULT_PUBLIC_KEY");
 * const macKey = sealMacKey("an HMAC key of 32 bytes or more......");
 * const vault = createSealingVault({ officer, subjects: createSubjectKeyStore(pool, officer, macKey), macKey, hmacKeyId: "k1" });
 * await vault.entry("ip", "ab".repeat(32), "k1", "user-42", "192.0.2.1");
 * subjectOf('{"user_id":"user-42"}'); // "user-42"
 * ```
 */
export function createSealingVault(opts: SealingVaultOptions): SealingVault {
  const cacheSize = opts.cacheSize ?? 20_000;
  const seals = new Map<string, VaultEntry>();

  function sealEntry(
    field: VaultEntry["field"],
    token: string,
    hmacKeyId: string,
    to: SubjectKey,
    original: string,
  ): VaultEntry {
    // Under the subject's data key: synchronous AES-GCM, authenticated by it (lib/seal.ts: SealedEntry).
    const sealed = encryptWith(
      to.dataKey,
      encoder.encode(original),
      entryAad(field, token, hmacKeyId, to.recipient),
    );
    return {
      field,
      token,
      keyId: hmacKeyId,
      subjectKeyId: to.recipient,
      ciphertext: encodeEntry({ recipient: to.recipient, sealed }),
    };
  }

  return {
    kind: "sealed",
    keyId: opts.officer.keyId,
    async entry(field, token, hmacKeyId, subject, original) {
      // The token names the value under the HMAC key: one seal per (token, subject key) serves every
      // message. Keyed by the subject's key of the current epoch, so a key destroyed by forget is not used
      // again after that epoch (lib/keystore.ts).
      const to = await opts.subjects.keyFor(subject);
      const key = `${field}\0${token}\0${hmacKeyId}\0${to.recipient}`;
      const hit = seals.get(key);
      if (hit !== undefined) {
        seals.delete(key);
        seals.set(key, hit);
        return hit;
      }
      const made = sealEntry(field, token, hmacKeyId, to, original);
      seals.set(key, made);
      if (seals.size > cacheSize) seals.delete(seals.keys().next().value!);
      return made;
    },
    async letter(messageId, body) {
      const subject = subjectOf(body);
      const to: SealKey = subject === undefined
        ? { recipient: `o:${opts.officer.keyId}`, publicKey: opts.officer.key }
        : await (opts.letterSubjects ?? opts.subjects).keyFor(subject);
      const sealed = await sealFor(to, encoder.encode(body), letterAad(messageId, to.recipient));
      const mac = sealMac(opts.macKey, letterMacParts(messageId, opts.hmacKeyId, to.recipient, sealed));
      return {
        [SEALED_ATTRIBUTE]: encodeLetter({ recipient: to.recipient, hmacKeyId: opts.hmacKeyId, sealed, mac }),
      };
    },
  };
}
