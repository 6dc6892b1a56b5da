/**
 * Configuration: one table of settings, each resolved flag > environment > default and validated, and
 * buildConfig(), which resolves them with the keys (lib/secrets.ts: never from a flag).
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import type { LogFormat, LogLevel } from "./log.ts";
import {
  checkKeyId,
  checkKeyStrength,
  type FileMode,
  realFileMode,
  redactUrl,
  refuseSharedKey,
  resolveHmacKey,
  resolveVaultKey,
  secretParams,
} from "./secrets.ts";
import { defaultDlqUrl, queueNameOf, queueNameProblem } from "./source/queue_name.ts";

export type SqsProtocol = "json" | "query" | "auto";
/** Named prepared statements for the batch writes: see docs/postgres.md. */
export type NamedStatements = "auto" | "on" | "off";

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
  dbNamedStatements: NamedStatements;
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

function dlqUrl(text: string, name: string): string {
  queueUrl(text, name);
  const problem = queueNameProblem(queueNameOf(text));
  if (problem) throw new ConfigError(name, `${redactUrl(text)}: ${problem}`);
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

/**
 * Whether a host name is AWS's: amazonaws.com or amazonaws.com.cn (the China regions), or a name under
 * either. Such a queue URL leaves the endpoint to the SDK, and needs real credentials.
 * So `isAwsHost("sqs.eu-west-1.amazonaws.com")` and `isAwsHost("sqs.cn-north-1.amazonaws.com.cn")` are
 * true, `isAwsHost("localhost")` and `isAwsHost("amazonaws.com.evil.test")` false.
 */
export function isAwsHost(host: string): boolean {
  return ["amazonaws.com", "amazonaws.com.cn"].some((aws) => host === aws || host.endsWith(`.${aws}`));
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
    default: (c) => (isAwsHost(new URL(c.queueUrl!).hostname) ? undefined : new URL(c.queueUrl!).origin),
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
    default: (c) => defaultDlqUrl(c.queueUrl!),
    help: "dead-letter queue URL (created if missing)",
    defaultHelp: 'the queue URL + "-dlq" (for name.fifo: name-dlq.fifo)',
    parse: dlqUrl,
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
    // More receivers cost less CPU per message (each event-loop turn handles more answers at once), for a
    // little more latency (see bench/BENCHMARKS.md).
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
    key: "dbNamedStatements",
    flag: "db-named-statements",
    env: ["MASQ_DB_NAMED_STATEMENTS"],
    // Named statements save the server a parse and plan per write (bench/BENCHMARKS.md); a pooler in
    // transaction mode refuses them, which auto notices (docs/postgres.md).
    default: "auto",
    help: "named prepared statements for writes: on, off, or auto (on until a pooler refuses them)",
    defaultHelp: "auto",
    parse: oneOf<NamedStatements>("auto", "on", "off"),
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
    parse: checkKeyId,
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
  // The sealed vault's (lib/vault_keys.ts).
  "PII_VAULT_PUBLIC_KEY",
  "PII_VAULT_PUBLIC_KEY_FILE",
  "PII_VAULT_PRIVATE_KEY",
  "PII_VAULT_PRIVATE_KEY_FILE",
  "PII_KEYSTORE_URL",
];

export type Env = (name: string) => string | undefined;
export type ReadFile = (path: string) => string;

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
