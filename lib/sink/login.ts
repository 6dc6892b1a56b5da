/**
 * The login role `masq run` connects as (`migrate --writer-login NAME`): a LOGIN member of the writer
 * group, its password (from MASQ_WRITER_PASSWORD or MASQ_WRITER_PASSWORD_FILE, never a flag) sent to the
 * server only as a SCRAM-SHA-256 verifier, as psql's `\password` does, so the password itself never
 * appears in a statement (or a server log of statements), and its search_path set to masq's schema in
 * this database, so the URL needs no `options=-c search_path=...` (which PgBouncer refuses).
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import type { Env, ReadFile } from "../config.ts";

/** A role name migrate may create: a plain lowercase identifier (it is spliced into DDL). */
const LOGIN_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** SCRAM iterations: PostgreSQL's own default (scram_iterations, 4096). */
const ITERATIONS = 4096;

function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

async function hmac(key: Uint8Array<ArrayBuffer>, text: string): Promise<Uint8Array<ArrayBuffer>> {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, new TextEncoder().encode(text)));
}

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677, PostgreSQL's format:
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`), with a random salt. The password is
 * NFKC-normalised first (SASLprep's normalisation; for ASCII it changes nothing).
 */
export async function scramVerifier(password: string, salt?: Uint8Array<ArrayBuffer>): Promise<string> {
  const s = salt ?? crypto.getRandomValues(new Uint8Array(16));
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(password.normalize("NFKC")),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const salted = new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: "PBKDF2", hash: "SHA-256", salt: s, iterations: ITERATIONS },
      key,
      256,
    ),
  );
  const clientKey = await hmac(salted, "Client Key");
  const storedKey = new Uint8Array(await crypto.subtle.digest("SHA-256", clientKey));
  const serverKey = await hmac(salted, "Server Key");
  return `SCRAM-SHA-256$${ITERATIONS}:${base64(s)}$${base64(storedKey)}:${base64(serverKey)}`;
}

/** What `--writer-login` asks migrate to make. */
export interface WriterLogin {
  name: string;
  /** The SCRAM verifier of its password, or undefined to leave its password as it is. */
  verifier?: string;
}

/**
 * The writer login from `--writer-login` and MASQ_WRITER_PASSWORD / MASQ_WRITER_PASSWORD_FILE (exactly one
 * of them, or neither: the role's password is then left alone). A ConfigError names the setting at fault.
 */
export async function writerLoginFrom(
  name: string,
  groups: readonly string[],
  env: Env,
  readFile: ReadFile,
): Promise<WriterLogin> {
  if (!LOGIN_NAME.test(name)) {
    throw new ConfigError(
      "--writer-login",
      "is not a lowercase role name (a-z, 0-9, _; at most 63 characters)",
    );
  }
  if (groups.includes(name)) {
    throw new ConfigError(
      "--writer-login",
      `is ${name}, one of masq's NOLOGIN group roles; name a login of its own`,
    );
  }
  const value = env("MASQ_WRITER_PASSWORD");
  const file = env("MASQ_WRITER_PASSWORD_FILE");
  if (value && file) {
    throw new ConfigError("MASQ_WRITER_PASSWORD / MASQ_WRITER_PASSWORD_FILE", "set one of them, not both");
  }
  let password = value || undefined;
  if (file) {
    try {
      password = readFile(file).replace(/\r?\n$/, "");
    } catch (err) {
      const why = err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied
        ? "is outside the directories masq may read (/run/secrets, /etc/masq, ./secrets)"
        : err instanceof Deno.errors.NotFound
        ? "does not exist"
        : "cannot be read";
      throw new ConfigError("MASQ_WRITER_PASSWORD_FILE", `the file ${why}`);
    }
  }
  if (password === undefined) return { name };
  if (password.length < 12 || password.includes("\0")) {
    throw new ConfigError(
      file ? "MASQ_WRITER_PASSWORD_FILE" : "MASQ_WRITER_PASSWORD",
      "must be at least 12 characters and hold no NUL (e.g. openssl rand -base64 24)",
    );
  }
  return { name, verifier: await scramVerifier(password) };
}

/**
 * SQL (for migrate's transaction) that makes `login` a LOGIN role, a member of `writer`, with its password
 * set when a verifier is given, and its search_path in this database set to the current schema.
 */
export function writerLoginSql(writer: string, login: WriterLogin): string {
  if (!LOGIN_NAME.test(login.name)) throw new ConfigError("--writer-login", "is not a lowercase role name");
  if (
    login.verifier !== undefined &&
    !/^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/.test(login.verifier)
  ) {
    throw new Error("not a SCRAM verifier");
  }
  const password = login.verifier === undefined ? "" : ` PASSWORD '${login.verifier}'`;
  return `
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${login.name}') THEN
    CREATE ROLE ${login.name} LOGIN;
  END IF;
END $$;
ALTER ROLE ${login.name} LOGIN${password};
GRANT ${writer} TO ${login.name};
DO $$ BEGIN
  EXECUTE format('ALTER ROLE ${login.name} IN DATABASE %I SET search_path = %I', current_database(), current_schema());
END $$;
`;
}
