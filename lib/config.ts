/**
 * Configuration: one table of settings, each resolved flag > environment > default, validated, with
 * secrets kept out of flags and redacted from everything printed.
 */
import { parseArgs } from "node:util";
import { ConfigError } from "./errors.ts";
import type { LogFormat, LogLevel } from "./log.ts";
import { codePoints, estimateBits, MAX_KEY_BYTES, MIN_KEY_BITS } from "./key_strength.ts";
import { fromBase64, parseVaultKey, toBase64, VaultError } from "./vault.ts";

export type SqsProtocol = "json" | "query" | "auto";

/** Everything `masq run` needs, resolved and validated. */
export interface Config {
  queueUrl: string;
  /** SQS endpoint; undefined lets the SDK choose (real AWS). */
  endpoint: string | undefined;
  region: string;
  databaseUrl: string;
  dlqUrl: string;
  sqsProtocol: SqsProtocol;
  follow: boolean;
  concurrency: number;
  batchSize: number;
  waitSeconds: number;
  /** Visibility timeout to request and keep extending; undefined means the queue's own. */
  visibilityTimeout: number | undefined;
  dbPoolSize: number;
  maxBackoffMs: number;
  logFormat: LogFormat;
  logLevel: LogLevel;
  /** The HMAC key; never printed. */
  hmacKey: string;
  /** Names the HMAC key (`PII_HMAC_KEY_ID`), stored beside vault entries. */
  hmacKeyId: string;
  /** The vault key (32 bytes), when one is configured; never printed. */
  vaultKey?: Uint8Array;
  /** Things worth a warning at start-up (a key file others can read, say); never secret. */
  warnings: string[];
  /** Port of /metrics, /healthz and /readyz; undefined: not served. */
  metricsPort: number | undefined;
}

/** One row of the defaults table. */
interface Setting {
  key: keyof Config;
  flag?: string;
  env: readonly string[];
  /** Default as text, or computed from the settings resolved before it. */
  default?: string | ((c: Partial<Config>) => string | undefined);
  help: string;
  defaultHelp: string;
  parse: (text: string, name: string) => unknown;
}

const DEFAULT_QUEUE_URL = "http://localhost:4566/000000000000/login-queue";
const DEFAULT_DATABASE_URL = "postgres://postgres:postgres@localhost:5432/postgres";

// A URL may carry credentials (user:secret@host, a presigned query): errors show it only redacted, and
// an unparseable one not at all.
function httpUrl(text: string, name: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(name, "is not a URL; expected http(s)://host[:port]/...");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(
      name,
      `has scheme ${JSON.stringify(url.protocol.slice(0, 16))}; expected http: or https:`,
    );
  }
  return text;
}

function queueUrl(text: string, name: string): string {
  httpUrl(text, name);
  const path = new URL(text).pathname.split("/").filter(Boolean);
  if (path.length < 1) {
    throw new ConfigError(name, `${redactUrl(text)} has no queue name; expected .../<account>/<queue-name>`);
  }
  return text;
}

function databaseUrl(text: string, name: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(name, "is not a URL; expected postgres://user[:password]@host[:port]/database");
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new ConfigError(
      name,
      `has scheme ${JSON.stringify(url.protocol)}; expected postgres: or postgresql:`,
    );
  }
  return text;
}

function intIn(min: number, max: number) {
  return (text: string, name: string): number => {
    const n = Number(text);
    if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new ConfigError(name, `${JSON.stringify(text)} is not a whole number from ${min} to ${max}`);
    }
    return n;
  };
}

function oneOf<T extends string>(...allowed: T[]) {
  return (text: string, name: string): T => {
    if (!(allowed as string[]).includes(text)) {
      throw new ConfigError(name, `${JSON.stringify(text)} is not one of ${allowed.join(", ")}`);
    }
    return text as T;
  };
}

function isAwsHost(url: string): boolean {
  const host = new URL(url).hostname;
  return host === "amazonaws.com" || host.endsWith(".amazonaws.com") || host.endsWith(".amazonaws.com.cn");
}

/** The defaults table, in resolution order (later defaults may depend on earlier values). */
export const SETTINGS: readonly Setting[] = [
  {
    key: "queueUrl",
    flag: "queue-url",
    env: ["SQS_QUEUE_URL"],
    default: DEFAULT_QUEUE_URL,
    help: "source queue URL",
    defaultHelp: DEFAULT_QUEUE_URL,
    parse: queueUrl,
  },
  {
    key: "endpoint",
    flag: "endpoint",
    env: ["AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"],
    default: (c) => (isAwsHost(c.queueUrl!) ? undefined : new URL(c.queueUrl!).origin),
    help: "SQS endpoint",
    defaultHelp: "the queue URL's origin unless it is an amazonaws.com host; else the SDK's own",
    parse: httpUrl,
  },
  {
    key: "region",
    flag: "region",
    env: ["AWS_REGION"],
    default: "us-east-1",
    help: "AWS region",
    defaultHelp: "us-east-1",
    parse: (t, n) => {
      if (!/^[a-z0-9-]{2,32}$/.test(t)) throw new ConfigError(n, `${JSON.stringify(t)} is not a region name`);
      return t;
    },
  },
  {
    key: "databaseUrl",
    flag: "database-url",
    env: ["DATABASE_URL"],
    default: DEFAULT_DATABASE_URL,
    help: "PostgreSQL URL (a password only through the environment)",
    defaultHelp: redactUrl(DEFAULT_DATABASE_URL),
    parse: databaseUrl,
  },
  {
    key: "dlqUrl",
    flag: "dlq-url",
    env: ["SQS_DLQ_URL"],
    default: (c) => `${c.queueUrl!.replace(/\/+$/, "")}-dlq`,
    help: "dead-letter queue URL (created if missing)",
    defaultHelp: 'the queue URL + "-dlq"',
    parse: queueUrl,
  },
  {
    key: "sqsProtocol",
    flag: "sqs-protocol",
    env: ["MASQ_SQS_PROTOCOL"],
    default: "auto",
    help: "SQS wire protocol: json, query, or auto (json, falling back to query once)",
    defaultHelp: "auto",
    parse: oneOf<SqsProtocol>("json", "query", "auto"),
  },
  {
    key: "concurrency",
    flag: "concurrency",
    env: ["MASQ_CONCURRENCY"],
    // Measured (`deno task bench`): 32 receivers cost masq 1.0 to 1.2 times the bare loop's CPU per
    // message, 8 cost 1.3 to 1.5 (each event-loop turn handles more answers at once); latency rises a little.
    default: "32",
    help: "concurrent long-polling receivers",
    defaultHelp: "32",
    parse: intIn(1, 64),
  },
  {
    key: "batchSize",
    flag: "batch-size",
    env: ["MASQ_BATCH_SIZE"],
    default: "10",
    help: "messages per receive (SQS allows 1..10)",
    defaultHelp: "10",
    parse: intIn(1, 10),
  },
  {
    key: "waitSeconds",
    flag: "wait-seconds",
    env: ["MASQ_WAIT_SECONDS"],
    default: (c) => (c.follow ? "20" : "1"),
    help: "long-poll wait per receive",
    defaultHelp: "20 with --follow, else 1 (so a drained queue is noticed quickly)",
    parse: intIn(0, 20),
  },
  {
    key: "visibilityTimeout",
    flag: "visibility-timeout",
    env: ["MASQ_VISIBILITY_TIMEOUT"],
    default: undefined,
    help: "seconds a received message stays invisible (extended while in flight)",
    defaultHelp: "the queue's own VisibilityTimeout",
    parse: intIn(1, 43200),
  },
  {
    key: "dbPoolSize",
    flag: "db-pool-size",
    env: ["MASQ_DB_POOL_SIZE"],
    // Writes take at most WRITE_STATEMENTS (2) connections at once, ledger lookups and start-up checks one.
    default: "4",
    help: "PostgreSQL connections",
    defaultHelp: "4",
    parse: intIn(1, 100),
  },
  {
    key: "maxBackoffMs",
    flag: "max-backoff-ms",
    env: ["MASQ_MAX_BACKOFF_MS"],
    default: "10000",
    help: "cap of the exponential backoff between retries during outages",
    defaultHelp: "10000",
    parse: intIn(10, 600_000),
  },
  {
    key: "hmacKeyId",
    env: ["PII_HMAC_KEY_ID"],
    default: "k1",
    help: "names the HMAC key (kept beside vault entries, for key rotation)",
    defaultHelp: "k1",
    parse: (t, n) => {
      if (!/^[A-Za-z0-9_.-]{1,32}$/.test(t)) {
        throw new ConfigError(n, "is not 1 to 32 of the characters A-Z a-z 0-9 _ . -");
      }
      return t;
    },
  },
  {
    key: "logFormat",
    flag: "log-format",
    env: ["MASQ_LOG_FORMAT"],
    default: "text",
    help: "stderr log format: text or json",
    defaultHelp: "text",
    parse: oneOf<LogFormat>("text", "json"),
  },
  {
    key: "logLevel",
    flag: "log-level",
    env: ["MASQ_LOG_LEVEL"],
    default: "info",
    help: "debug, info, warn or error",
    defaultHelp: "info",
    parse: oneOf<LogLevel>("debug", "info", "warn", "error"),
  },
  {
    key: "metricsPort",
    flag: "metrics-port",
    env: ["MASQ_METRICS_PORT"],
    default: undefined,
    help: "serve /metrics (Prometheus), /healthz and /readyz on this port (all interfaces)",
    defaultHelp: "off",
    parse: intIn(1, 65535),
  },
];

/** Every environment variable masq itself reads (the task permissions list these). */
export const ENV_VARS: readonly string[] = [
  ...SETTINGS.flatMap((s) => s.env),
  "PII_HMAC_KEY",
  "PII_HMAC_KEY_FILE",
  "PII_VAULT_KEY",
  "PII_VAULT_KEY_FILE",
];

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
function secretParams(url: URL): Array<[string, string]> {
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
 * import { redactUrl } from "./config.ts";
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

export type Env = (name: string) => string | undefined;
export type ReadFile = (path: string) => string;

/** A file's permission bits, or null when they cannot be read (not a POSIX system, no such file). */
export type FileMode = (path: string) => number | null;

const realFileMode: FileMode = (path) => {
  try {
    return Deno.statSync(path).mode;
  } catch {
    return null;
  }
};

/**
 * Reads a secret from `NAME` or from the file `NAME_FILE` (one trailing newline dropped), or undefined
 * when neither is set. Errors name the variable and the problem, never the value nor the path (a key
 * pasted into `NAME_FILE` by mistake must not be echoed). A file readable by group or others adds a
 * warning.
 */
function resolveSecret(
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
  let text: string;
  try {
    text = readFile(file);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? "no such file"
      : err instanceof Deno.errors.PermissionDenied || (err as Error).name === "NotCapable"
      ? "not readable (masq may read key files only under /run/secrets, /etc/masq or ./secrets)"
      : err instanceof Deno.errors.IsADirectory
      ? "it is a directory"
      : "it cannot be read";
    throw new ConfigError(fileVar, `cannot read the file it names: ${why}`);
  }
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

/**
 * Keys published in this repository (the demo's, the benchmark's, the README's test-vector key, the
 * tracked placeholder's first line): anyone can recompute tokens made with them, so `run` refuses them.
 */
/** The demo's key: public (it is in this repository), so never for real data; `run` refuses it. */
export const DEMO_HMAC_KEY = "masq-demo-key-NOT-SECRET-do-not-use-in-production";

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

export interface Invocation {
  command: string;
  help: boolean;
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** What parseCommandLine() needs to know of a command: its own flags, and whether it takes the settings. */
export interface CommandFlags {
  flags?: Record<string, { type: "string" | "boolean" }>;
  settings?: boolean;
}

/**
 * Parses argv strictly for the command it names: the settings flags (when the command takes them), the
 * command's own flags and --help. An unknown flag is a ConfigError (exit 2).
 *
 * @example
 * ```ts
 * import { parseCommandLine } from "./config.ts";
 * const inv = parseCommandLine(["run", "--follow"], { run: { settings: true, flags: { follow: { type: "boolean" } } } });
 * inv.command; // "run"
 * ```
 */
export function parseCommandLine(
  args: readonly string[],
  commands: Readonly<Record<string, CommandFlags>> = {},
): Invocation {
  type Options = Record<string, { type: "string" | "boolean"; short?: string }>;
  const settingsFlags: Options = {};
  for (const s of SETTINGS) if (s.flag) settingsFlags[s.flag] = { type: "string" };
  const parse = (options: Options) => {
    try {
      return parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
    } catch (err) {
      const msg = (err as Error).message.split("\n")[0].replace(/\. To specify.*$/, "");
      throw new ConfigError("usage", `${msg} (see masq --help)`);
    }
  };
  // First find the command with every flag any command knows (so a flag's value is not taken for the
  // command), then parse again with only what that command accepts.
  const every: Options = { help: { type: "boolean", short: "h" }, ...settingsFlags };
  for (const c of Object.values(commands)) Object.assign(every, c.flags ?? {});
  const [command = ""] = parse(every).positionals;
  const spec = commands[command];
  const parsed = spec === undefined ? parse(every) : parse({
    help: { type: "boolean", short: "h" },
    ...(spec.settings ? settingsFlags : {}),
    ...spec.flags,
  });
  const [, ...positionals] = parsed.positionals;
  return { command, help: parsed.values.help === true, values: parsed.values, positionals };
}

/**
 * Builds the run configuration: each setting from its flag, else its first set environment variable,
 * else its default; then validates it. The HMAC key comes only from the environment.
 *
 * @example
 * ```ts
 * const cfg = buildConfig({ "queue-url": "http://localhost:4566/000000000000/q" }, (n) => Deno.env.get(n), Deno.readTextFileSync);
 * cfg.endpoint; // "http://localhost:4566"
 * ```
 */
export function buildConfig(
  flags: Record<string, string | boolean | undefined>,
  env: Env,
  readFile: ReadFile,
  opts: BuildOptions = {},
): Config {
  const warnings: string[] = [];
  const c: Partial<Config> & Record<string, unknown> = { follow: flags.follow === true, warnings };
  for (const s of SETTINGS) {
    let text: string | undefined;
    let name = "";
    const flagValue = s.flag ? flags[s.flag] : undefined;
    if (typeof flagValue === "string") {
      text = flagValue;
      name = `--${s.flag}`;
      if (s.key === "databaseUrl") refusePasswordInFlag(flagValue);
    } else {
      for (const e of s.env) {
        const val = env(e);
        if (val !== undefined && val !== "") {
          text = val;
          name = e;
          break;
        }
      }
    }
    if (text === undefined) {
      text = typeof s.default === "function" ? s.default(c) : s.default;
      name = `${s.flag ? `--${s.flag}` : s.env[0]} (default)`;
    }
    (c as Record<string, unknown>)[s.key] = text === undefined ? undefined : s.parse(text, name);
  }
  const fileMode = opts.fileMode ?? realFileMode;
  c.hmacKey = resolveHmacKey(env, readFile, fileMode, warnings);
  if (!opts.allowPublicKey) checkKeyStrength(c.hmacKey);
  const vaultKey = resolveVaultKey(env, readFile, fileMode, warnings);
  if (vaultKey !== undefined) {
    if (!opts.allowPublicKey) refuseSharedKey(c.hmacKey, vaultKey);
    c.vaultKey = vaultKey;
  }
  return c as Config;
}

/** How buildConfig() treats keys. */
export interface BuildOptions {
  /**
   * Accept a weak or public HMAC key: only for the demo and the benchmark, which use their published keys
   * on purpose against their own embedded data. `masq run` never sets it.
   */
  allowPublicKey?: boolean;
  /** How to read a key file's permission bits (tests replace it). */
  fileMode?: FileMode;
}

/**
 * A configuration from flag values alone (no environment), resolved through the same defaults table:
 * for the embedded demo and the benchmark.
 *
 * @example
 * ```ts
 * import { configFromFlags } from "./config.ts";
 * const cfg = configFromFlags({
 *   "queue-url": "http://127.0.0.1:4566/000000000000/q",
 *   "database-url": "postgres://postgres@127.0.0.1:5432/test",
 *   concurrency: "4",
 * }, "masq-demo-key-NOT-SECRET-do-not-use-in-production");
 * cfg.concurrency; // 4
 * ```
 */
export function configFromFlags(flags: Record<string, string>, hmacKey: string): Config {
  // The database URL travels as if from the environment: it may carry a password, which flags refuse.
  const { "database-url": databaseUrl, ...rest } = flags;
  const env: Record<string, string | undefined> = { PII_HMAC_KEY: hmacKey, DATABASE_URL: databaseUrl };
  return buildConfig(rest, (name) => env[name], () => "", { allowPublicKey: true });
}

function refusePasswordInFlag(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return; // validated later with a clearer message
  }
  const params = secretParams(parsed).map(([k]) => k);
  if (parsed.password !== "" || params.length > 0) {
    const what = parsed.password !== "" ? "a password" : `a secret query parameter (${params.join(", ")})`;
    throw new ConfigError(
      "--database-url",
      `contains ${what}; flags are visible to every user of the machine, so pass it in DATABASE_URL or PGPASSWORD`,
    );
  }
}

/** The text of `masq --help`, generated from the defaults table so it cannot drift. */
export function helpText(commandUsages: readonly string[] = []): string {
  const rows = SETTINGS.map((s) => {
    const flag = s.flag ? `--${s.flag}` : "";
    return `  ${flag.padEnd(22)} ${s.env.join(", ").padEnd(38)} ${s.help}\n  ${
      "".padEnd(61)
    } default: ${s.defaultHelp}`;
  });
  return `masq: mask PII in SQS login events and write them to PostgreSQL

Usage:
${commandUsages.map((u) => `  masq ${u}`).join("\n")}
  masq --help                   this text

Settings (flag, else environment variable, else default):
  ${"flag".padEnd(22)} ${"environment".padEnd(38)} meaning
${rows.join("\n")}
  --follow                                                      keep long-polling forever (service mode)
  ${"".padEnd(22)} ${
    "PII_HMAC_KEY or PII_HMAC_KEY_FILE".padEnd(38)
  } the masking key (required, at least 32 bytes,
  ${"".padEnd(61)} not a public one; never a flag)
  ${"".padEnd(22)} ${
    "PII_VAULT_KEY or PII_VAULT_KEY_FILE".padEnd(38)
  } optional: 32 random bytes, base64; keeps
  ${"".padEnd(61)} originals only AES-256-GCM encrypted
  ${"".padEnd(22)} ${"PII_VAULT_KEY_ID".padEnd(38)} names the vault key (default v1)

AWS credentials come from the SDK's default chain; against a local endpoint with none set, dummy ones are
used. Secrets are never accepted as flags and never printed.

Exit codes: 0 done, 2 bad usage or configuration, 1 fatal runtime error.
The last line on stdout of run and demo is a JSON summary.`;
}
