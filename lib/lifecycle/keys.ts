/**
 * The keys and identities the lifecycle commands need: the vault key (PII_VAULT_KEY or
 * PII_VAULT_KEY_FILE), the ids naming the HMAC key (PII_HMAC_KEY_ID) and the vault key
 * (PII_VAULT_KEY_ID), the OS user for the access log, and the settings table without the HMAC key
 * (recover, forget and redrive never mask anything).
 *
 * @module
 */
import { buildConfig, type Config, type Env, type ReadFile } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { parseVaultKey, VaultError } from "../vault.ts";

/** The HMAC key id when PII_HMAC_KEY_ID is unset. */
export const DEFAULT_HMAC_KEY_ID = "k1";
/** The vault key id when PII_VAULT_KEY_ID is unset (stored as masq_key_id on dead letters). */
export const DEFAULT_VAULT_KEY_ID = "v1";

const KEY_ID = /^[A-Za-z0-9._-]{1,32}$/;

function keyId(env: Env, name: string, fallback: string): string {
  const text = env(name);
  if (text === undefined || text === "") return fallback;
  if (!KEY_ID.test(text)) {
    throw new ConfigError(name, `${JSON.stringify(text)} is not a key id (1-32 of A-Z a-z 0-9 . _ -)`);
  }
  return text;
}

/** PII_HMAC_KEY_ID, default "k1": names the HMAC key that makes the tokens. */
export function resolveHmacKeyId(env: Env): string {
  return keyId(env, "PII_HMAC_KEY_ID", DEFAULT_HMAC_KEY_ID);
}

/** PII_VAULT_KEY_ID, default "v1": names the vault (AES-256-GCM) key. */
export function resolveVaultKeyId(env: Env): string {
  return keyId(env, "PII_VAULT_KEY_ID", DEFAULT_VAULT_KEY_ID);
}

/** The HMAC key id of a config (the privacy settings add `hmacKeyId`; "k1" until then). */
export function hmacKeyIdOf(config: object): string {
  const id = (config as { hmacKeyId?: unknown }).hmacKeyId;
  return typeof id === "string" && id !== "" ? id : DEFAULT_HMAC_KEY_ID;
}

/** Reads a key file, or a ConfigError naming the variable and why (never the content). */
export function readKeyFile(readFile: ReadFile, path: string, setting: string): string {
  try {
    return readFile(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? "no such file"
      : err instanceof Deno.errors.PermissionDenied || (err as Error).name === "NotCapable"
      ? "not readable (masq may read key files only under /run/secrets, /etc/masq or ./secrets)"
      : (err as Error).name;
    throw new ConfigError(setting, `cannot read ${JSON.stringify(path)}: ${why}`);
  }
}

/**
 * The vault key from PII_VAULT_KEY (base64) or PII_VAULT_KEY_FILE, or undefined when neither is set.
 * Both set, unreadable or not 32 bytes: a ConfigError naming the variable.
 *
 * @example
 * ```ts
 * import { resolveVaultKey } from "./keys.ts";
 * const key = resolveVaultKey((n) => n === "PII_VAULT_KEY" ? btoa("k".repeat(32)) : undefined, () => "");
 * key?.length; // 32
 * ```
 */
export function resolveVaultKey(env: Env, readFile: ReadFile): Uint8Array | undefined {
  const direct = env("PII_VAULT_KEY");
  const file = env("PII_VAULT_KEY_FILE");
  if (direct && file) {
    throw new ConfigError("PII_VAULT_KEY / PII_VAULT_KEY_FILE", "both are set; set exactly one");
  }
  const [text, setting] = direct
    ? [direct, "PII_VAULT_KEY"]
    : file
    ? [readKeyFile(readFile, file, "PII_VAULT_KEY_FILE"), "PII_VAULT_KEY_FILE"]
    : [undefined, ""];
  if (text === undefined) return undefined;
  try {
    return parseVaultKey(text);
  } catch (err) {
    if (err instanceof VaultError) throw new ConfigError(setting, err.message);
    throw err;
  }
}

/** The vault key, or a ConfigError saying the command needs it. */
export function requireVaultKey(env: Env, readFile: ReadFile, command: string): Uint8Array {
  const key = resolveVaultKey(env, readFile);
  if (key === undefined) {
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
  return key;
}

/** The secrets of the vault key's settings, for the log redactor. */
export function vaultSecrets(env: Env): string[] {
  const direct = env("PII_VAULT_KEY");
  return direct ? [direct.trim()] : [];
}

/**
 * The settings table (database URL, queue URLs, log format...) for a command that does not mask: the HMAC
 * key is not required, and not returned.
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
  );
  return rest;
}

/**
 * Who runs the command on this machine, for the access log: USER, LOGNAME or USERNAME, else the last part
 * of HOME, else "unknown" (a variable the process may not read counts as unset).
 */
export function osUser(env: Env): string {
  const home = env("HOME")?.replace(/[\\/]+$/, "").split(/[\\/]/).at(-1);
  return env("USER") || env("LOGNAME") || env("USERNAME") || home || "unknown";
}

/** A --reason flag: required, trimmed, at most 1000 characters. */
export function requireReason(value: string | boolean | undefined, command: string): string {
  const reason = typeof value === "string" ? value.trim() : "";
  if (reason === "") {
    throw new ConfigError(
      "--reason",
      `required: \`masq ${command}\` records why in pii_access_log (e.g. --reason "ticket 1234: fraud review")`,
    );
  }
  if (reason.length > 1000) throw new ConfigError("--reason", "is longer than 1000 characters");
  return reason;
}

/**
 * Test hook, harmless in production: with MASQ_TEST_PAUSE=<point> set, a command reaching that point
 * writes "masq: paused at <point>" to stderr and waits forever, so a test can SIGKILL it mid-transaction.
 * Points: `forget` (after the rows are deleted, before the vault and the commit) and `rekey` (after the
 * first batch committed, before the next).
 */
export async function pausePoint(env: Env, point: string): Promise<void> {
  if (env("MASQ_TEST_PAUSE") !== point) return;
  console.error(`masq: paused at ${point}`);
  // A timer keeps the event loop alive (a bare pending promise would end the process).
  await new Promise(() => setInterval(() => {}, 60_000));
}
