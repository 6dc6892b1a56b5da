/**
 * The keys a lifecycle command needs beyond the settings table: the settings without the HMAC key (recover,
 * forget and redrive never mask anything), the vault key as a requirement, and the secrets of such a
 * configuration for the log redactor.
 *
 * @module
 */
import { buildConfig, type Config, type Env, type ReadFile } from "../config.ts";
import { ConfigError } from "../errors.ts";
import type pg from "pg";
import { resolveHmacKey, resolveVaultKeyId, secretsOf } from "../secrets.ts";
import { type OfficerPublicKey, sealMacKey } from "../seal.ts";
import { requireKeystore } from "../sink/schema.ts";
import { createVaultCipher, type VaultCipher } from "../vault.ts";
import { keystoreUrl, resolveOfficerPrivateKeys, separateKeystore } from "../vault_keys.ts";
import { connectDatabase } from "./db.ts";
import { createUnsealer, type Unsealer } from "./unseal.ts";

/** The configuration's vault key, or a ConfigError saying the command needs it. */
export function requireVaultKey(config: { vaultKey?: Uint8Array }, command: string): Uint8Array {
  if (config.vaultKey === undefined) {
    // main.ts reads a variable it may not read as unset: say so rather than claim it is missing.
    const denied = Deno.permissions.querySync({ name: "env", variable: "PII_VAULT_KEY" }).state !== "granted";
    throw new ConfigError(
      "PII_VAULT_KEY",
      `not set; \`masq ${command}\` needs the vault key: PII_VAULT_PRIVATE_KEY_FILE (the sealed vault, docs/vault.md), or PII_VAULT_KEY / PII_VAULT_KEY_FILE (the old symmetric key: 32 random bytes, base64)` +
        (denied
          ? " (this process may not read it: run with --allow-env=PII_VAULT_KEY,PII_VAULT_KEY_FILE)"
          : ""),
    );
  }
  return config.vaultKey;
}

/** The secrets of a lifecycle configuration (vault key, database password), for the log redactor. */
export function lifecycleSecrets(config: Omit<Config, "hmacKey">): string[] {
  return secretsOf({ ...config, hmacKey: "" }).filter((s) => s !== "");
}

/**
 * The settings table (database URL, queue URLs, log format...) for a command that does not mask: the HMAC
 * key is not required, and not returned.
 *
 * @example
 * ```ts
 * import { lifecycleSecrets, requireVaultKey, settingsWithoutHmacKey } from "./keys.ts";
 *
 * const env = (name: string) => Deno.env.get(name);
 * const config = settingsWithoutHmacKey({ "database-url": "postgres://postgres@127.0.0.1:5432/test" }, env, Deno.readTextFileSync);
 * const vaultKey = requireVaultKey(config, "recover"); // a ConfigError (exit 2) without PII_VAULT_KEY
 * console.log(vaultKey.length, lifecycleSecrets(config).length);
 * ```
 */
export function settingsWithoutHmacKey(
  values: Record<string, string | boolean | undefined>,
  env: Env,
  readFile: ReadFile,
): Omit<Config, "hmacKey"> {
  const { hmacKey: _unused, ...rest } = buildConfig(
    values,
    (name) => (name === "PII_HMAC_KEY" ? "not-used" : name === "PII_HMAC_KEY_FILE" ? undefined : env(name)),
    readFile,
    { allowPublicKey: true }, // the placeholder above masks nothing
  );
  return rest;
}

/** The secrets of the sealed vault's settings (the private key file's keys, the HMAC key), for the redactor. */
export function officerSecrets(env: Env, readFile: ReadFile): string[] {
  const out: string[] = [];
  for (
    const [name, file] of [["PII_VAULT_PRIVATE_KEY", "PII_VAULT_PRIVATE_KEY_FILE"], [
      "PII_HMAC_KEY",
      "PII_HMAC_KEY_FILE",
    ]]
  ) {
    let text = env(name) ?? "";
    try {
      if (text === "" && (env(file) ?? "") !== "") text = readFile(env(file)!);
    } catch { /* reported by whoever needs it */ }
    text = text.replace(/\r?\n$/, "");
    if (text === "") continue;
    out.push(text, ...text.split(/\s+/).filter((w) => w.length >= 40));
  }
  return out;
}

/**
 * What the privacy officer's commands open the vault with: the sealed vault's unsealer (the officer's
 * private key, the HMAC key to verify masq's MACs, the key store; the old symmetric key too while it is
 * set), or, without PII_VAULT_PRIVATE_KEY, the old symmetric key alone. A ConfigError when neither is set.
 * `keystore` is the key store's connection (the caller's own when it is the main database); close() ends it.
 */
export async function openVaultReader(
  config: Omit<Config, "hmacKey">,
  env: Env,
  readFile: ReadFile,
  command: string,
  main: pg.Client,
): Promise<
  {
    reader: VaultCipher | Unsealer;
    legacy?: VaultCipher;
    officer?: OfficerPublicKey;
    keystore: pg.Client;
    close(): Promise<void>;
  }
> {
  const privateKeys = await resolveOfficerPrivateKeys(env, readFile, config.warnings);
  const legacy = config.vaultKey === undefined
    ? undefined
    : await createVaultCipher(config.vaultKey, resolveVaultKeyId(env));
  if (privateKeys === undefined) {
    const key = requireVaultKey(config, command);
    return {
      reader: legacy ?? await createVaultCipher(key, resolveVaultKeyId(env)),
      keystore: main,
      close: () => Promise.resolve(),
    };
  }
  // masq's MACs are what tell its seals from anyone else's: no opening without the key that checks them.
  if ((env("PII_HMAC_KEY") ?? "") === "" && (env("PII_HMAC_KEY_FILE") ?? "") === "") {
    throw new ConfigError(
      "PII_HMAC_KEY",
      `not set; \`masq ${command}\` verifies that masq sealed what it opens with the HMAC key masq run uses (PII_HMAC_KEY_FILE, and PII_HMAC_KEY_ID)`,
    );
  }
  const hmac = resolveHmacKey(env, readFile);
  const macKeys = new Map<string, Uint8Array>([[config.hmacKeyId, sealMacKey(hmac)]]);
  const separate = separateKeystore(env, config.databaseUrl);
  const keystore = separate
    ? await connectDatabase(keystoreUrl(env, config.databaseUrl), command, env)
    : main;
  try {
    await requireKeystore(keystore);
  } catch (err) {
    if (separate) await keystore.end().catch(() => {});
    throw err;
  }
  return {
    reader: createUnsealer({ ring: privateKeys.ring, macKeys, keystore, ...(legacy ? { legacy } : {}) }),
    ...(legacy ? { legacy } : {}),
    officer: privateKeys.ring.current,
    keystore,
    close: () => (separate ? keystore.end().catch(() => {}) : Promise.resolve()),
  };
}
