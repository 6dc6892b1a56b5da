/**
 * The keys a lifecycle command needs beyond the settings table: the settings without the HMAC key (recover,
 * forget and redrive never mask anything), the vault key as a requirement, and the secrets of such a
 * configuration for the log redactor.
 *
 * @module
 */
import { buildConfig, type Config, type Env, type ReadFile } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { secretsOf } from "../secrets.ts";

/** The configuration's vault key, or a ConfigError saying the command needs it. */
export function requireVaultKey(config: { vaultKey?: Uint8Array }, command: string): Uint8Array {
  if (config.vaultKey === undefined) {
    // main.ts reads a variable it may not read as unset: say so rather than claim it is missing.
    const denied = Deno.permissions.querySync({ name: "env", variable: "PII_VAULT_KEY" }).state !== "granted";
    throw new ConfigError(
      "PII_VAULT_KEY",
      `not set; \`masq ${command}\` needs the vault key (PII_VAULT_KEY or PII_VAULT_KEY_FILE: 32 random bytes, base64)` +
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
