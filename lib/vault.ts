/**
 * The vault key: AES-256-GCM (Web Crypto) for the few places masq keeps an original personal value
 * (the encrypted copy of a dead-lettered body; the `pii_vault` table). Every ciphertext is bound to its
 * context by additional authenticated data, so a ciphertext moved to another row or field fails to
 * decrypt instead of returning the wrong person's data, and a wrong key is an error, never garbage.
 *
 * Layout of a ciphertext: 12-byte random IV, then the AES-GCM output (ciphertext and 16-byte tag).
 *
 * @module
 */

import { VaultError } from "./errors.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Bytes in a vault key (AES-256). */
export const VAULT_KEY_BYTES = 32;
const IV_BYTES = 12;

/** Encrypts and decrypts originals under one vault key. */
export interface VaultCipher {
  /** Names the key (stored beside each ciphertext, so rotation can tell old from new). */
  readonly keyId: string;
  encrypt(plaintext: string, aad: string): Promise<Uint8Array>;
  /** Throws a VaultError when the key is wrong, the data was altered or the context differs. */
  decrypt(ciphertext: Uint8Array, aad: string): Promise<string>;
}

/**
 * Decodes a vault key given as base64 (standard or URL-safe, padding optional); it must be exactly 32
 * bytes. The error names the problem, never the key.
 *
 * @example
 * ```ts
 * import { parseVaultKey } from "./vault.ts";
 * const key = parseVaultKey(btoa(String.fromCharCode(...new Uint8Array(32).fill(7))));
 * key.length; // 32
 * ```
 */
export function parseVaultKey(text: string): Uint8Array {
  const clean = text.trim().replaceAll("-", "+").replaceAll("_", "/");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) {
    throw new VaultError("is not base64; expected 32 random bytes, base64-encoded (openssl rand -base64 32)");
  }
  let bytes: Uint8Array;
  try {
    const bin = atob(clean.padEnd(Math.ceil(clean.length / 4) * 4, "="));
    bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    throw new VaultError("is not base64; expected 32 random bytes, base64-encoded (openssl rand -base64 32)");
  }
  if (bytes.length !== VAULT_KEY_BYTES) {
    throw new VaultError(
      `decodes to ${bytes.length} bytes; expected ${VAULT_KEY_BYTES} (openssl rand -base64 32)`,
    );
  }
  return bytes;
}

/**
 * Imports a 32-byte key (non-extractable) and returns its cipher.
 *
 * @example
 * ```ts
 * import { createVaultCipher } from "./vault.ts";
 * const vault = await createVaultCipher(crypto.getRandomValues(new Uint8Array(32)), "v1");
 * const ct = await vault.encrypt("199.172.111.135", "ip:68d4…");
 * await vault.decrypt(ct, "ip:68d4…"); // "199.172.111.135"
 * ```
 */
export async function createVaultCipher(key: Uint8Array, keyId: string): Promise<VaultCipher> {
  if (key.length !== VAULT_KEY_BYTES) throw new VaultError(`key must be ${VAULT_KEY_BYTES} bytes`);
  const cryptoKey = await crypto.subtle.importKey("raw", key as Uint8Array<ArrayBuffer>, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
  return {
    keyId,
    async encrypt(plaintext, aad) {
      const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
      const ct = new Uint8Array(
        await crypto.subtle.encrypt(
          { name: "AES-GCM", iv, additionalData: encoder.encode(aad) },
          cryptoKey,
          encoder.encode(plaintext),
        ),
      );
      const out = new Uint8Array(IV_BYTES + ct.length);
      out.set(iv);
      out.set(ct, IV_BYTES);
      return out;
    },
    async decrypt(ciphertext, aad) {
      if (ciphertext.length < IV_BYTES + 16) {
        throw new VaultError("ciphertext is too short to be one of masq's");
      }
      let plain: ArrayBuffer;
      try {
        plain = await crypto.subtle.decrypt(
          { name: "AES-GCM", iv: ciphertext.slice(0, IV_BYTES), additionalData: encoder.encode(aad) },
          cryptoKey,
          ciphertext.slice(IV_BYTES),
        );
      } catch {
        throw new VaultError(
          `does not decrypt under vault key ${
            JSON.stringify(keyId)
          }: wrong key, altered data or another context`,
        );
      }
      return decoder.decode(plain);
    },
  };
}

/** What the ingest path encrypts originals with: the old symmetric key, or the sealed vault (public keys). */
export type IngestVault = VaultCipher | import("./sealing.ts").SealingVault;

/** Base64 of bytes (for message attributes). */
export function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

/** Bytes of base64 text. */
export function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/**
 * The additional data a `pii_vault` ciphertext is bound to: its field, its token and the id of the HMAC
 * key that made the token. A ciphertext copied to another row does not decrypt.
 *
 * @example
 * ```ts
 * import { vaultAad } from "./vault.ts";
 * vaultAad("ip", "68d4", "k1"); // "pii_vault:ip:68d4:k1"
 * ```
 */
export function vaultAad(field: "ip" | "device_id", token: string, keyId: string): string {
  return `pii_vault:${field}:${token}:${keyId}`;
}
