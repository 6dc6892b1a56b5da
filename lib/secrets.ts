/**
 * Secrets: reading a key from NAME or the file NAME_FILE, how strong a key must be (key_strength.ts
 * estimates its information content), the ids that name keys, and redaction (the secrets of a
 * configuration, for the log redactor; URLs with their credentials replaced, for messages).
 *
 * @module
 */
import type { Config, Env, ReadFile } from "./config.ts";
import { ConfigError, VaultError } from "./errors.ts";
import { codePoints, estimateBits, MAX_KEY_BYTES, MIN_KEY_BITS } from "./key_strength.ts";
import { fromBase64, parseVaultKey, toBase64 } from "./vault.ts";

/** A file's permission bits, or null when they cannot be read (not a POSIX system, no such file). */
export type FileMode = (path: string) => number | null;

/** The file's mode from the file system. */
export const realFileMode: FileMode = (path) => {
  try {
    return Deno.statSync(path).mode;
  } catch {
    return null;
  }
};

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

/**
 * Reads a secret from `NAME` or from the file `NAME_FILE` (one trailing newline dropped), or undefined
 * when neither is set. Errors name the variable and the problem, never the value nor the path (a key
 * pasted into `NAME_FILE` by mistake must not be echoed). A file readable by group or others adds a
 * warning.
 */
export function resolveSecret(
  name: string,
  env: Env,
  readFile: ReadFile,
  fileMode: FileMode,
  warnings: string[],
): string | undefined {
  const fileVar = `${name}_FILE`;
  const direct = env(name);
  const file = env(fileVar);
  if (direct !== undefined && direct !== "" && file !== undefined && file !== "") {
    throw new ConfigError(`${name} / ${fileVar}`, "both are set; set exactly one");
  }
  if (direct !== undefined && direct !== "") return direct;
  if (file === undefined || file === "") return undefined;
  const text = readKeyFile(readFile, file, fileVar);
  const mode = fileMode(file);
  if (mode !== null && (mode & 0o077) !== 0) {
    warnings.push(
      `${fileVar}: the file is readable or writable by group or others (mode ${
        (mode & 0o777).toString(8)
      }); chmod 600 it, or 640 with a group only masq is in`,
    );
  }
  const value = text.replace(/\r?\n$/, "");
  if (value === "") throw new ConfigError(fileVar, "the file it names is empty");
  return value;
}

/** Bytes a production HMAC key must have at least. */
export const MIN_KEY_BYTES = 32;

/** The demo's key: public (it is in this repository), so never for real data; `run` refuses it. */
export const DEMO_HMAC_KEY = "masq-demo-key-NOT-SECRET-do-not-use-in-production";

/**
 * Keys published in this repository (the demo's, the benchmark's, the README's test-vector key, the
 * tracked placeholder's first line): anyone can recompute tokens made with them, so `run` refuses them.
 */
export const PUBLIC_KEYS: readonly string[] = [
  DEMO_HMAC_KEY,
  "masq-bench-key-not-secret",
  "example-key",
];

/**
 * Whether a key is, or contains, one of the public ones (repeating a public key hides nothing), or is the
 * tracked placeholder, which says NOT-A-KEY. Case does not help either.
 */
export function isPublicKey(key: string): boolean {
  const k = key.toLowerCase();
  return PUBLIC_KEYS.some((p) => k.includes(p.toLowerCase())) || k.includes("not-a-key");
}

const STRONG_KEY_HINT = "use 32 random bytes (openssl rand -hex 32)";

/**
 * Refuses a key unfit for production: shorter than 32 bytes or longer than 1024, all whitespace, public
 * (or containing a public key), or of too little information content (key_strength.ts: one symbol or one
 * piece repeated, runs like `abcdef`, a handful of distinct symbols). The error names the variable and the
 * rule, never the key.
 */
export function checkKeyStrength(key: string, name = "PII_HMAC_KEY"): void {
  if (key.trim() === "") {
    throw new ConfigError(name, `is only whitespace; ${STRONG_KEY_HINT}`);
  }
  if (isPublicKey(key)) {
    throw new ConfigError(
      name,
      `is or contains a public key (the demo's, the benchmark's, the test vectors' or the placeholder); anyone could recompute its tokens: ${STRONG_KEY_HINT}`,
    );
  }
  const bytes = new TextEncoder().encode(key).length;
  if (bytes < MIN_KEY_BYTES) {
    throw new ConfigError(
      name,
      `is ${bytes} bytes; at least ${MIN_KEY_BYTES} are required (openssl rand -hex 32)`,
    );
  }
  if (bytes > MAX_KEY_BYTES) {
    throw new ConfigError(
      name,
      `is ${bytes} bytes; at most ${MAX_KEY_BYTES} are accepted (${STRONG_KEY_HINT})`,
    );
  }
  if (estimateBits(codePoints(key)) < MIN_KEY_BITS) {
    throw new ConfigError(
      name,
      `has too little information content (estimated below ${MIN_KEY_BITS} bits: a symbol or a piece repeated, a run such as abcdef or 1234, or too few distinct symbols); ${STRONG_KEY_HINT}`,
    );
  }
}

/**
 * Refuses a vault key whose 32 bytes are not random-looking (all zeros, one byte repeated, a counting
 * sequence): the same estimate as checkKeyStrength(), over the bytes.
 */
export function checkVaultKeyStrength(key: Uint8Array, name = "PII_VAULT_KEY"): void {
  if (estimateBits(Array.from(key)) < MIN_KEY_BITS) {
    throw new ConfigError(
      name,
      `is not random (estimated below ${MIN_KEY_BITS} bits of information: zeros, a repeated byte or a sequence); use openssl rand -base64 32`,
    );
  }
}

/** The byte strings an HMAC key's text could stand for: its UTF-8 bytes, and its base64 and hex decodings. */
function readingsOf(text: string): Uint8Array[] {
  const t = text.trim();
  const out: Uint8Array[] = [new TextEncoder().encode(text), new TextEncoder().encode(t)];
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(t)) {
    try {
      const std = t.replaceAll("-", "+").replaceAll("_", "/");
      out.push(fromBase64(std.padEnd(Math.ceil(std.length / 4) * 4, "=")));
    } catch { /* not base64 after all */ }
  }
  if (/^(?:[0-9a-fA-F]{2})+$/.test(t)) out.push(Uint8Array.from(t.match(/../g)!, (h) => parseInt(h, 16)));
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Refuses an HMAC key that is the vault key in another spelling (its base64 text, its bytes, their hex):
 * one leaked secret must not open both the tokens and the originals.
 */
export function refuseSharedKey(
  hmacKey: string,
  vaultKey: Uint8Array,
  names = "PII_HMAC_KEY / PII_VAULT_KEY",
): void {
  if (readingsOf(hmacKey).some((r) => sameBytes(r, vaultKey))) {
    throw new ConfigError(names, "are the same key; each must be its own random key");
  }
}

/** Resolves the HMAC key from PII_HMAC_KEY or PII_HMAC_KEY_FILE (its strength is checked by the caller). */
export function resolveHmacKey(
  env: Env,
  readFile: ReadFile,
  fileMode: FileMode = () => null,
  warnings: string[] = [],
): string {
  const key = resolveSecret("PII_HMAC_KEY", env, readFile, fileMode, warnings);
  if (key !== undefined) return key;
  throw new ConfigError(
    "PII_HMAC_KEY",
    "not set; masq needs a secret key to mask PII (set PII_HMAC_KEY or PII_HMAC_KEY_FILE, e.g. 32 random bytes)",
  );
}

/** Resolves the optional vault key from PII_VAULT_KEY or PII_VAULT_KEY_FILE (32 bytes, base64). */
export function resolveVaultKey(
  env: Env,
  readFile: ReadFile,
  fileMode: FileMode = () => null,
  warnings: string[] = [],
): Uint8Array | undefined {
  const fromFile = (env("PII_VAULT_KEY") ?? "") === "" && (env("PII_VAULT_KEY_FILE") ?? "") !== "";
  const text = resolveSecret("PII_VAULT_KEY", env, readFile, fileMode, warnings);
  if (text === undefined) return undefined;
  const name = fromFile ? "PII_VAULT_KEY_FILE" : "PII_VAULT_KEY";
  let key: Uint8Array;
  try {
    key = parseVaultKey(text);
  } catch (err) {
    if (err instanceof VaultError) throw new ConfigError(name, err.message);
    throw err;
  }
  checkVaultKeyStrength(key, name);
  return key;
}

const KEY_ID = /^[A-Za-z0-9._-]{1,32}$/;

/** Whether `text` can name a key: 1 to 32 of A-Z a-z 0-9 . _ - (stored beside what the key made). */
export function isKeyId(text: string): boolean {
  return KEY_ID.test(text);
}

/**
 * `text` as a key id (PII_HMAC_KEY_ID, PII_VAULT_KEY_ID), or a ConfigError naming `name`: never the value,
 * since a key pasted there by mistake would be printed.
 */
export function checkKeyId(text: string, name: string): string {
  if (!isKeyId(text)) throw new ConfigError(name, "is not a key id (1-32 of A-Z a-z 0-9 . _ -)");
  return text;
}

/** The vault key id when PII_VAULT_KEY_ID is unset (stored as masq_key_id on dead letters). */
export const DEFAULT_VAULT_KEY_ID = "v1";

/**
 * PII_VAULT_KEY_ID, default "v1": names the vault (AES-256-GCM) key.
 *
 * @example
 * ```ts
 * import { checkKeyId, DEFAULT_VAULT_KEY_ID, isKeyId, readKeyFile, resolveVaultKeyId } from "./secrets.ts";
 * const env = (name: string) => Deno.env.get(name);
 * const keyId = resolveVaultKeyId(env); // DEFAULT_VAULT_KEY_ID unless PII_VAULT_KEY_ID is set
 * console.log(keyId === DEFAULT_VAULT_KEY_ID, isKeyId("k2"), checkKeyId("k2", "--to-key-id"));
 * const newKey = readKeyFile(Deno.readTextFileSync, "secrets/k2", "--to-key-file"); // a ConfigError naming --to-key-file
 * console.log(newKey.length);
 * ```
 */
export function resolveVaultKeyId(env: Env): string {
  const text = env("PII_VAULT_KEY_ID");
  return text === undefined || text === "" ? DEFAULT_VAULT_KEY_ID : checkKeyId(text, "PII_VAULT_KEY_ID");
}

/**
 * Query parameters that hold a secret (or, for sslkey, where one lies): PostgreSQL's, and those of a
 * presigned AWS URL.
 */
const SECRET_PARAMS = new Set([
  "password",
  "sslpassword",
  "sslkey",
  "x-amz-signature",
  "x-amz-credential",
  "x-amz-security-token",
  "signature",
  "awsaccesskeyid",
]);

/** The secret query parameters of a URL, as [name, value] pairs with non-empty values. */
export function secretParams(url: URL): Array<[string, string]> {
  return [...url.searchParams].filter(([k, v]) => SECRET_PARAMS.has(k.toLowerCase()) && v !== "");
}

/**
 * A URL with its secrets replaced by `***`, safe to print: the password of a PostgreSQL URL (its user
 * name is kept: it is the role), the whole user information of an http(s) URL (an SQS URL has none, so
 * whatever is there is a credential), and secret query parameters (`password`, `sslpassword`, `sslkey`,
 * a presigned URL's signature and credential).
 *
 * @example
 * ```ts
 * import { redactUrl } from "./secrets.ts";
 * redactUrl("postgres://app:s3cret@db:5432/logins"); // "postgres://app:***@db:5432/logins"
 * redactUrl("postgres://app@db/logins?sslpassword=x"); // "postgres://app@db/logins?sslpassword=***"
 * redactUrl("https://AKIA:s3cret@sqs.eu-west-1.amazonaws.com/1/q"); // "https://***@sqs.eu-west-1.amazonaws.com/1/q"
 * ```
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    const web = u.protocol === "http:" || u.protocol === "https:";
    if (web && (u.username !== "" || u.password !== "")) {
      u.username = "***";
      u.password = "";
    } else if (u.password !== "") u.password = "***";
    const secret = secretParams(u);
    if (secret.length > 0) {
      const names = new Set(secret.map(([k]) => k));
      const params = [...u.searchParams].map(([k, v]) =>
        `${encodeURIComponent(k)}=${names.has(k) ? "***" : encodeURIComponent(v)}`
      );
      u.search = params.join("&");
    }
    return u.toString();
  } catch {
    return "(unparseable URL)";
  }
}

/** Publicly known default passwords: scrubbing them would mangle every "postgres" in the log. */
const WELL_KNOWN_PASSWORDS = new Set(["postgres"]);

/**
 * The secrets in a config, for the log redactor: the HMAC key, the vault key (in the base64 forms it may
 * have been written in), and the database URL's password and secret query parameters.
 */
export function secretsOf(
  config:
    & Pick<Config, "databaseUrl" | "hmacKey">
    & Partial<Pick<Config, "queueUrl" | "dlqUrl" | "endpoint">>
    & { vaultKey?: Uint8Array },
): string[] {
  const out = [config.hmacKey];
  if (config.vaultKey !== undefined) {
    const b64 = toBase64(config.vaultKey);
    out.push(b64, b64.replace(/=+$/, ""), b64.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, ""));
  }
  for (const text of [config.databaseUrl, config.queueUrl, config.dlqUrl, config.endpoint]) {
    if (text === undefined) continue;
    try {
      const url = new URL(text);
      const web = url.protocol === "http:" || url.protocol === "https:";
      for (const pw of [url.password, web ? url.username : "", ...secretParams(url).map(([, v]) => v)]) {
        const plain = safeDecode(pw);
        if (plain !== "" && !WELL_KNOWN_PASSWORDS.has(plain)) out.push(plain);
      }
    } catch { /* unparseable URLs were rejected already */ }
  }
  return [...new Set(out.filter((s) => s.length > 0))];
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
