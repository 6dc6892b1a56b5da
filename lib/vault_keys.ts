/**
 * The sealed vault's settings: the privacy officer's public key (PII_VAULT_PUBLIC_KEY / _FILE: masq run),
 * its private key (PII_VAULT_PRIVATE_KEY / _FILE: recover, redrive, rekey, vault-convert only) and the key
 * store's database (PII_KEYSTORE_URL, default DATABASE_URL). Errors name the setting, never a key.
 *
 * @module
 */
import type { Env, ReadFile } from "./config.ts";
import { ConfigError } from "./errors.ts";
import {
  type OfficerKeyring,
  type OfficerPublicKey,
  parseOfficerPrivateKeys,
  parseOfficerPublicKey,
} from "./seal.ts";
import { type FileMode, realFileMode, resolveSecret } from "./secrets.ts";

/** The variables of this module (the task permissions cover them as PII_*). */
export const VAULT_ENV_VARS = [
  "PII_VAULT_PUBLIC_KEY",
  "PII_VAULT_PUBLIC_KEY_FILE",
  "PII_VAULT_PRIVATE_KEY",
  "PII_VAULT_PRIVATE_KEY_FILE",
  "PII_KEYSTORE_URL",
] as const;

function nameOf(env: Env, base: string): string {
  return (env(base) ?? "") === "" && (env(`${base}_FILE`) ?? "") !== "" ? `${base}_FILE` : base;
}

/** The officer's public key when one is configured (masq run). */
export async function resolveOfficerPublicKey(
  env: Env,
  readFile: ReadFile,
  warnings: string[] = [],
): Promise<OfficerPublicKey | undefined> {
  // A public key needs no secrecy: no file-mode warning.
  const text = resolveSecret("PII_VAULT_PUBLIC_KEY", env, readFile, () => null, warnings);
  if (text === undefined) return undefined;
  return await parseOfficerPublicKey(text, nameOf(env, "PII_VAULT_PUBLIC_KEY"));
}

/** The officer's private keys when configured; `masq run` refuses to start with them (see run.ts). */
export async function resolveOfficerPrivateKeys(
  env: Env,
  readFile: ReadFile,
  warnings: string[] = [],
  fileMode: FileMode = realFileMode,
): Promise<{ ring: OfficerKeyring; text: string } | undefined> {
  const text = resolveSecret("PII_VAULT_PRIVATE_KEY", env, readFile, fileMode, warnings);
  if (text === undefined) return undefined;
  return { ring: await parseOfficerPrivateKeys(text, nameOf(env, "PII_VAULT_PRIVATE_KEY")), text };
}

/** The officer's private keys, or a ConfigError saying the command needs them. */
export async function requireOfficerPrivateKeys(
  env: Env,
  readFile: ReadFile,
  command: string,
  warnings: string[] = [],
): Promise<{ ring: OfficerKeyring; text: string }> {
  const found = await resolveOfficerPrivateKeys(env, readFile, warnings);
  if (found === undefined) {
    throw new ConfigError(
      "PII_VAULT_PRIVATE_KEY",
      `not set; \`masq ${command}\` needs the privacy officer's private key (PII_VAULT_PRIVATE_KEY_FILE: the vault-private.key \`masq vault-keygen\` made)`,
    );
  }
  return found;
}

/** The key store's database URL: PII_KEYSTORE_URL, else the main database's. */
export function keystoreUrl(env: Env, databaseUrl: string): string {
  const text = env("PII_KEYSTORE_URL");
  if (text === undefined || text === "") return databaseUrl;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(
      "PII_KEYSTORE_URL",
      "is not a URL; expected postgres://user[:password]@host[:port]/database",
    );
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new ConfigError(
      "PII_KEYSTORE_URL",
      `has scheme ${JSON.stringify(url.protocol)}; expected postgres:`,
    );
  }
  return text;
}

/** Whether the key store is a database of its own (not the main one). */
export function separateKeystore(env: Env, databaseUrl: string): boolean {
  return keystoreUrl(env, databaseUrl) !== databaseUrl;
}
