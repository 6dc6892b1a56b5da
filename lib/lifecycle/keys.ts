/**
 * What the lifecycle commands need beyond the settings table: the settings without the HMAC key (recover,
 * forget and redrive never mask anything), the vault key as a requirement, the id naming the vault key
 * (PII_VAULT_KEY_ID), the OS user for the access log, and the reason every access must give.
 *
 * @module
 */
import { findAddress } from "../transform/address.ts";
import { buildConfig, type Config, type Env, type ReadFile, secretsOf } from "../config.ts";
import { ConfigError } from "../errors.ts";

/** The vault key id when PII_VAULT_KEY_ID is unset (stored as masq_key_id on dead letters). */
export const DEFAULT_VAULT_KEY_ID = "v1";

const KEY_ID = /^[A-Za-z0-9._-]{1,32}$/;

function keyId(env: Env, name: string, fallback: string): string {
  const text = env(name);
  if (text === undefined || text === "") return fallback;
  // Never the value: a key pasted here by mistake would be printed.
  if (!KEY_ID.test(text)) throw new ConfigError(name, "is not a key id (1-32 of A-Z a-z 0-9 . _ -)");
  return text;
}

/** PII_VAULT_KEY_ID, default "v1": names the vault (AES-256-GCM) key. */
export function resolveVaultKeyId(env: Env): string {
  return keyId(env, "PII_VAULT_KEY_ID", DEFAULT_VAULT_KEY_ID);
}

/**
 * Reads a key file, or a ConfigError naming the setting and why: never the path (the key itself, given
 * where its file was meant) nor the content.
 */
export function readKeyFile(readFile: ReadFile, path: string, setting: string): string {
  try {
    return readFile(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? "no such file"
      : err instanceof Deno.errors.PermissionDenied || (err as Error).name === "NotCapable"
      ? "not readable (masq may read key files only under /run/secrets, /etc/masq or ./secrets)"
      : err instanceof Deno.errors.IsADirectory
      ? "it is a directory"
      : "it cannot be read";
    throw new ConfigError(setting, `cannot read the file it names: ${why}`);
  }
}

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
 * import {
 *   checkReason,
 *   DEFAULT_VAULT_KEY_ID,
 *   lifecycleSecrets,
 *   optionalReason,
 *   osUser,
 *   pausePoint,
 *   readKeyFile,
 *   requireReason,
 *   requireVaultKey,
 *   resolveVaultKeyId,
 *   settingsWithoutHmacKey,
 * } from "./keys.ts";
 *
 * const env = (name: string) => Deno.env.get(name);
 * const config = settingsWithoutHmacKey({ "database-url": "postgres://postgres@127.0.0.1:5432/test" }, env, Deno.readTextFileSync);
 * const vaultKey = requireVaultKey(config, "recover"); // a ConfigError (exit 2) without PII_VAULT_KEY
 * const reason = requireReason("ticket 42: fraud review", "recover");
 * console.log(checkReason(" audit 7 "), optionalReason(undefined, "HMAC key rotation to k2"));
 * const keyId = resolveVaultKeyId(env); // DEFAULT_VAULT_KEY_ID unless PII_VAULT_KEY_ID is set
 * console.log(vaultKey.length, reason, keyId === DEFAULT_VAULT_KEY_ID, osUser(env), lifecycleSecrets(config).length);
 * const newKey = readKeyFile(Deno.readTextFileSync, "secrets/k2", "--to-key-file");
 * await pausePoint(env, "rekey"); // returns at once unless MASQ_TEST_PAUSE=rekey
 * console.log(newKey.length);
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

/**
 * Who runs the command on this machine, for the access log: USER, LOGNAME or USERNAME, else the last part
 * of HOME, else "unknown" (a variable the process may not read counts as unset).
 */
export function osUser(env: Env): string {
  const home = env("HOME")?.replace(/[\\/]+$/, "").split(/[\\/]/).at(-1);
  return env("USER") || env("LOGNAME") || env("USERNAME") || home || "unknown";
}

/** The fewest letters or digits a --reason must show. */
export const MIN_REASON_LETTERS = 3;
/** The most characters (code points) of a --reason. */
export const MAX_REASON_LENGTH = 1000;

// Format characters (zero-width space, bidi marks), controls, whitespace and the characters Unicode says
// render as nothing (the Hangul fillers are letters by category): none of them is a visible reason.
const INVISIBLE = /[\p{Cf}\p{Cc}\p{White_Space}\p{Default_Ignorable_Code_Point}]/gu;
const LETTER_OR_DIGIT = /[\p{L}\p{N}]/gu;

/**
 * A --reason as stored in pii_access_log: trimmed and otherwise as given, at most 1000 characters, and
 * holding at least 3 visible letters or digits (so "\u200b", "..." or "  " are refused) and no IP address in
 * any spelling. The error never repeats the text.
 */
export function checkReason(value: string): string {
  const reason = value.trim();
  if (!reason.isWellFormed()) throw new ConfigError("--reason", "is not well-formed Unicode");
  if (reason.includes("\u0000")) {
    throw new ConfigError("--reason", "holds a NUL character, which PostgreSQL cannot store");
  }
  if ([...reason].length > MAX_REASON_LENGTH) {
    throw new ConfigError("--reason", `is longer than ${MAX_REASON_LENGTH} characters`);
  }
  const visible = reason.replace(INVISIBLE, "").match(LETTER_OR_DIGIT)?.length ?? 0;
  if (visible < MIN_REASON_LETTERS) {
    throw new ConfigError(
      "--reason",
      `must hold at least ${MIN_REASON_LETTERS} visible letters or digits (e.g. --reason "ticket 1234: fraud review")`,
    );
  }
  // The access log is read by every privacy officer: a reason is no place for the personal data it concerns.
  const address = findAddress(reason);
  if (address !== null) {
    throw new ConfigError(
      "--reason",
      `holds ${address}; pii_access_log keeps no personal data: name the ticket, not the address`,
    );
  }
  return reason;
}

/** A --reason flag that is required: checkReason(), or a ConfigError saying why it is needed. */
export function requireReason(value: string | boolean | undefined, command: string): string {
  if (typeof value !== "string") {
    throw new ConfigError(
      "--reason",
      `required: \`masq ${command}\` records why in pii_access_log (e.g. --reason "ticket 1234: fraud review")`,
    );
  }
  return checkReason(value);
}

/** A --reason flag that may be left out (then `fallback`); given, it obeys checkReason(). */
export function optionalReason(value: string | boolean | undefined, fallback: string): string {
  return typeof value === "string" ? checkReason(value) : fallback;
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
