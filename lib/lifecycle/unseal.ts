/**
 * The privacy officer's side of the sealed vault (lib/seal.ts): opens a pii_vault entry or a dead letter's
 * original with the officer's private key, through the subject's data key in the key store (unwrapped with
 * its epoch's key, which the private key recomputes: lib/subject_keys.ts). Everything is
 * verified first: an entry, letter or key store row whose MAC does not verify under masq's HMAC key was not
 * sealed by masq and is refused (never opened, never returned). An entry whose subject key is gone was
 * erased (`forget`). Entries under the old symmetric key open with it while it is still configured.
 *
 * @module
 */
import { VaultError } from "../errors.ts";
import { subjectKeysById } from "../keystore.ts";
import {
  decodeEntry,
  decodeLetter,
  decryptWith,
  entryAad,
  entryMacParts,
  letterAad,
  letterMacParts,
  macEqual,
  type OfficerKeyring,
  openWith,
  type SealKey,
  sealMac,
} from "../seal.ts";
import { openSubjectKey, subjectKeyGenuine } from "../subject_keys.ts";
import type { Queryable } from "../sink/schema.ts";
import { vaultAad, type VaultCipher } from "../vault.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });

/** An entry or letter that masq did not seal (or that was altered): refused. */
export class RefusedSeal extends VaultError {
  constructor(message: string) {
    super(message);
    this.name = "RefusedSeal";
  }
}

/** What opening gave. */
export type Opened = { status: "ok"; original: string } | { status: "erased" };

export interface Unsealer {
  /** Opens a pii_vault row; RefusedSeal when masq did not seal it, VaultError when a key is missing. */
  entry(field: string, token: string, hmacKeyId: string, ciphertext: Uint8Array): Promise<Opened>;
  /** Opens a dead letter's `masq_sealed` attribute. */
  letter(messageId: string, attribute: string): Promise<Opened>;
  /** The recipient of a sealed pii_vault row ("" when it is under the old symmetric key). */
  recipientOf(ciphertext: Uint8Array): string;
  /** Loads the subject keys of these recipients in one query (optional; entry() loads what it lacks). */
  prefetch(recipients: readonly string[]): Promise<void>;
  /** What re-seals to `recipient` (rekey): its data key, or the officer's public key; null when erased. */
  sealKeyOf(recipient: string): Promise<SealKey | null>;
}

export interface UnsealerOptions {
  ring?: OfficerKeyring;
  /** sealMacKey() of each HMAC key the command holds, by key id. */
  macKeys: Map<string, Uint8Array>;
  /** The key store's database. */
  keystore: Queryable;
  /** The old symmetric key, while entries under it remain. */
  legacy?: VaultCipher;
}

/**
 * @example
 * ```ts
 * import pg from "pg";
 * import { createUnsealer, type Opened, RefusedSeal, type Unsealer } from "./unseal.ts";
 * import { generateOfficerKeys, parseOfficerPrivateKeys, sealMacKey } from "../seal.ts";
 * const db = new pg.Client({ connectionString: "postgres://postgres@127.0.0.1:5432/test" });
 * await db.connect();
 * const ring = await parseOfficerPrivateKeys((await generateOfficerKeys()).privateText, "PII_VAULT_PRIVATE_KEY");
 * const unsealer: Unsealer = createUnsealer({ ring, macKeys: new Map([["k1", sealMacKey("an HMAC key...")]]), keystore: db });
 * try {
 *   const opened: Opened = await unsealer.entry("ip", "ab".repeat(32), "k1", new Uint8Array(80));
 *   console.log(opened.status);
 * } catch (err) {
 *   console.log(err instanceof RefusedSeal);
 * }
 * ```
 */
export function createUnsealer(opts: UnsealerOptions): Unsealer {
  const subjectKeys = new Map<string, Promise<Uint8Array | null>>();
  const epochs = new Map<string, Promise<Uint8Array>>();

  function requireRing(): OfficerKeyring {
    if (opts.ring === undefined) {
      throw new VaultError(
        "is sealed; PII_VAULT_PRIVATE_KEY (the privacy officer's private key) is needed to open it",
      );
    }
    return opts.ring;
  }

  function macKeyFor(hmacKeyId: string): Uint8Array {
    const key = opts.macKeys.get(hmacKeyId);
    if (key === undefined) {
      throw new VaultError(
        `was sealed under HMAC key ${
          JSON.stringify(hmacKeyId)
        }, which this command does not hold (PII_HMAC_KEY / PII_HMAC_KEY_ID): it cannot be verified, so it is not opened`,
      );
    }
    return key;
  }

  async function load(keyIds: string[]): Promise<void> {
    const rows = await subjectKeysById(opts.keystore, keyIds);
    for (const id of keyIds) {
      const row = rows.get(id);
      subjectKeys.set(
        id,
        (async () => {
          if (row === undefined) return null; // erased
          const genuine = [...opts.macKeys.values()].some((k) => subjectKeyGenuine(row, k));
          if (!genuine) {
            throw new RefusedSeal(
              `subject key ${
                id.slice(0, 12)
              }… in the key store was not made by masq (its MAC does not verify)`,
            );
          }
          return await openSubjectKey(row, requireRing(), epochs);
        })(),
      );
      subjectKeys.get(id)!.catch(() => {});
    }
  }

  function officerKey(recipient: string): CryptoKey {
    const key = requireRing().privateKeys.get(recipient.slice(2));
    if (key === undefined) {
      throw new VaultError(
        `is sealed to the privacy officer's key ${
          recipient.slice(2)
        }, which PII_VAULT_PRIVATE_KEY does not hold`,
      );
    }
    return key;
  }

  async function dataKeyOf(recipient: string): Promise<Uint8Array | null> {
    requireRing();
    const id = recipient.slice(2);
    if (!subjectKeys.has(id)) await load([id]);
    return await subjectKeys.get(id)!;
  }

  /** Opens what `recipient` sealed: HPKE for the officer's key, AES-GCM for a data key; null when erased. */
  async function open(recipient: string, sealed: Uint8Array, aad: string): Promise<Uint8Array | null> {
    if (recipient.startsWith("o:")) return await openWith(officerKey(recipient), sealed, aad);
    const key = await dataKeyOf(recipient);
    if (key === null) return null;
    try {
      return decryptWith(key, sealed, aad);
    } catch (err) {
      if (!(err instanceof VaultError)) throw err;
      throw new RefusedSeal(
        "was not sealed by masq: it does not open under its subject's data key (altered, moved, or written by someone else)",
      );
    }
  }

  return {
    recipientOf(ciphertext) {
      return decodeEntry(ciphertext)?.recipient ?? "";
    },
    async sealKeyOf(recipient) {
      if (recipient.startsWith("o:")) {
        officerKey(recipient);
        return { recipient, publicKey: requireRing().current.key };
      }
      const dataKey = await dataKeyOf(recipient);
      return dataKey === null ? null : { recipient, dataKey };
    },
    async prefetch(recipients) {
      const ids = [...new Set(recipients.filter((r) => r.startsWith("s:")).map((r) => r.slice(2)))]
        .filter((id) => !subjectKeys.has(id));
      if (ids.length > 0) await load(ids);
    },
    async entry(field, token, hmacKeyId, ciphertext) {
      const e = decodeEntry(ciphertext);
      if (e === undefined) {
        if (opts.legacy === undefined) {
          throw new RefusedSeal(
            "is not a sealed entry of masq's, and PII_VAULT_KEY (the old symmetric key, for entries not yet converted) is not set",
          );
        }
        try {
          return {
            status: "ok",
            original: await opts.legacy.decrypt(ciphertext, vaultAad(field as "ip", token, hmacKeyId)),
          };
        } catch (err) {
          if (!(err instanceof VaultError)) throw err;
          throw new RefusedSeal(`is neither sealed by masq nor under the old vault key (${err.message})`);
        }
      }
      // An entry under a data key is authenticated by it (lib/seal.ts: SealedEntry); one sealed to the
      // officer's key by its MAC. Either way, only under an HMAC key this command holds.
      const macKey = macKeyFor(hmacKeyId);
      if (
        e.mac !== undefined &&
        !macEqual(sealMac(macKey, entryMacParts(field, token, hmacKeyId, e.recipient, e.sealed)), e.mac)
      ) {
        throw new RefusedSeal(
          "was not sealed by masq: its MAC does not verify (altered, moved, or written by someone else)",
        );
      }
      const plain = await open(e.recipient, e.sealed, entryAad(field, token, hmacKeyId, e.recipient));
      if (plain === null) return { status: "erased" };
      return { status: "ok", original: decoder.decode(plain) };
    },
    async letter(messageId, attribute) {
      const l = decodeLetter(attribute);
      if (l === undefined) throw new RefusedSeal("masq_sealed is not a sealed original of masq's shape");
      const mac = sealMac(
        macKeyFor(l.hmacKeyId),
        letterMacParts(messageId, l.hmacKeyId, l.recipient, l.sealed),
      );
      if (!macEqual(mac, l.mac)) {
        throw new RefusedSeal(
          "was not sealed by masq: its MAC does not verify (altered, or written by someone else)",
        );
      }
      const plain = await open(l.recipient, l.sealed, letterAad(messageId, l.recipient));
      if (plain === null) return { status: "erased" };
      return { status: "ok", original: decoder.decode(plain) };
    },
  };
}
