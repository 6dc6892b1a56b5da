import { assert, assertEquals, assertMatch, assertThrows } from "./support/assert.ts";
import { buildConfig, type Env, ENV_VARS, isAwsHost, type ReadFile } from "../lib/config.ts";
import { DEMO_HMAC_KEY, isPublicKey, PUBLIC_KEYS } from "../lib/secrets.ts";
import { ConfigError } from "../lib/errors.ts";
import { toBase64 } from "../lib/vault.ts";
import { expandedTask } from "../scripts/permissions.ts";

/** A fake environment: only these variables are set. */
function envOf(vars: Record<string, string>): Env {
  return (name) => (Object.hasOwn(vars, name) ? vars[name] : undefined);
}

const noFile: ReadFile = (path) => {
  throw new Deno.errors.NotFound(`no ${path}`);
};

/** A strong test key (64 random hex characters); public, but not on the refused list. */
const TEST_KEY = "9c4e1b7f02a85d36e19f4c7a0b2d8e653f71a9c04e6b28d5137f0ae94c6b2d81";
const KEYED = { PII_HMAC_KEY: TEST_KEY };

function build(
  flags: Record<string, string | boolean | undefined> = {},
  vars: Record<string, string> = {},
  readFile: ReadFile = noFile,
) {
  return buildConfig(flags, envOf({ ...KEYED, ...vars }), readFile, { fileMode: () => null });
}

/** The ConfigError a build throws. */
function configError(fn: () => unknown): ConfigError {
  const err = assertThrows(fn, ConfigError);
  return err as ConfigError;
}

Deno.test("buildConfig() uses the documented defaults", () => {
  assertEquals(build(), {
    queueUrl: "http://localhost:4566/000000000000/login-queue",
    endpoint: "http://localhost:4566",
    region: "us-east-1",
    databaseUrl: "postgres://postgres:postgres@localhost:5432/postgres",
    dlqUrl: "http://localhost:4566/000000000000/login-queue-dlq",
    sqsProtocol: "auto",
    follow: false,
    concurrency: 32,
    batchSize: 10,
    waitSeconds: 1,
    visibilityTimeout: undefined,
    dbPoolSize: 4,
    dbNamedStatements: "auto",
    maxBackoffMs: 10000,
    logFormat: "text",
    logLevel: "info",
    hmacKey: TEST_KEY,
    hmacKeyId: "k1",
    warnings: [],
    metricsPort: undefined,
  });
});

Deno.test("buildConfig() takes a flag over the environment over the default", () => {
  const cases: Array<
    [flag: string, env: string, flagValue: string, envValue: string, key: string, def: unknown]
  > = [
    [
      "queue-url",
      "SQS_QUEUE_URL",
      "http://f:1/0/q-flag",
      "http://e:1/0/q-env",
      "queueUrl",
      "http://localhost:4566/000000000000/login-queue",
    ],
    ["region", "AWS_REGION", "eu-west-1", "ap-south-1", "region", "us-east-1"],
    ["concurrency", "MASQ_CONCURRENCY", "3", "5", "concurrency", 32],
    ["batch-size", "MASQ_BATCH_SIZE", "2", "7", "batchSize", 10],
    ["log-format", "MASQ_LOG_FORMAT", "json", "text", "logFormat", "text"],
    ["log-level", "MASQ_LOG_LEVEL", "debug", "warn", "logLevel", "info"],
    ["sqs-protocol", "MASQ_SQS_PROTOCOL", "query", "json", "sqsProtocol", "auto"],
    ["visibility-timeout", "MASQ_VISIBILITY_TIMEOUT", "60", "90", "visibilityTimeout", undefined],
    ["max-backoff-ms", "MASQ_MAX_BACKOFF_MS", "500", "700", "maxBackoffMs", 10000],
    ["metrics-port", "MASQ_METRICS_PORT", "9464", "9090", "metricsPort", undefined],
    [
      "dlq-url",
      "SQS_DLQ_URL",
      "http://f:1/0/dlq-flag",
      "http://e:1/0/dlq-env",
      "dlqUrl",
      "http://localhost:4566/000000000000/login-queue-dlq",
    ],
  ];
  for (const [flag, env, flagValue, envValue, key, def] of cases) {
    const value = (c: object) => (c as Record<string, unknown>)[key];
    const parsed = (
      text: string,
    ) => (typeof def === "number" || key === "visibilityTimeout" || key === "metricsPort"
      ? Number(text)
      : text);
    assertEquals(
      value(build({ [flag]: flagValue }, { [env]: envValue })),
      parsed(flagValue),
      `--${flag} wins`,
    );
    assertEquals(value(build({}, { [env]: envValue })), parsed(envValue), `${env} over the default`);
    assertEquals(value(build()), def, `default of ${key}`);
  }
});

Deno.test("buildConfig() treats an empty environment variable as unset", () => {
  assertEquals(build({}, { AWS_REGION: "" }).region, "us-east-1");
  assertEquals(build({}, { MASQ_CONCURRENCY: "" }).concurrency, 32);
});

Deno.test("buildConfig() reads the database URL from a flag without a password, else DATABASE_URL", () => {
  assertEquals(
    build({ "database-url": "postgres://app@db:5432/logins" }, { DATABASE_URL: "postgres://u:pw@h/d" })
      .databaseUrl,
    "postgres://app@db:5432/logins",
  );
  assertEquals(build({}, { DATABASE_URL: "postgresql://u:pw@h/d" }).databaseUrl, "postgresql://u:pw@h/d");
});

Deno.test("buildConfig() refuses a password in --database-url", () => {
  const err = configError(() => build({ "database-url": "postgres://app:s3cret@db:5432/logins" }));
  assertEquals(err.setting, "--database-url");
  assertMatch(err.message, /contains a password/);
  assert(!err.message.includes("s3cret"), "the refusal does not print the password");
});

Deno.test("buildConfig() defaults the endpoint to the queue URL's origin unless it is an AWS host", () => {
  assertEquals(
    build({ "queue-url": "http://127.0.0.1:9324/000000000000/q" }).endpoint,
    "http://127.0.0.1:9324",
  );
  assertEquals(
    build({}, { SQS_QUEUE_URL: "http://localstack:4566/000000000000/q" }).endpoint,
    "http://localstack:4566",
  );
  assertEquals(
    build({ "queue-url": "https://sqs.eu-west-1.amazonaws.com/123456789012/q" }).endpoint,
    undefined,
  );
  assertEquals(
    build({ "queue-url": "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q" }).endpoint,
    undefined,
  );
  // An explicit endpoint wins, AWS_ENDPOINT_URL_SQS before AWS_ENDPOINT_URL.
  const q = { "queue-url": "https://sqs.eu-west-1.amazonaws.com/123456789012/q" };
  assertEquals(build(q, { AWS_ENDPOINT_URL: "http://b:2" }).endpoint, "http://b:2");
  assertEquals(
    build(q, { AWS_ENDPOINT_URL: "http://b:2", AWS_ENDPOINT_URL_SQS: "http://a:1" }).endpoint,
    "http://a:1",
  );
  assertEquals(
    build({ ...q, endpoint: "http://c:3" }, { AWS_ENDPOINT_URL_SQS: "http://a:1" }).endpoint,
    "http://c:3",
  );
});

Deno.test("buildConfig() defaults the dead-letter queue to the queue URL + -dlq", () => {
  assertEquals(build({ "queue-url": "http://h:1/0/logins" }).dlqUrl, "http://h:1/0/logins-dlq");
  assertEquals(build({ "queue-url": "http://h:1/0/logins/" }).dlqUrl, "http://h:1/0/logins-dlq");
  assertEquals(build({}, { SQS_QUEUE_URL: "http://h:1/0/from-env" }).dlqUrl, "http://h:1/0/from-env-dlq");
});

Deno.test("buildConfig() defaults a FIFO queue's dead-letter queue to name-dlq.fifo", () => {
  assertEquals(
    build({ "queue-url": "http://h:1/0/login-queue.fifo" }).dlqUrl,
    "http://h:1/0/login-queue-dlq.fifo",
  );
});

Deno.test("buildConfig() refuses a dead-letter queue name SQS refuses, naming --dlq-url", () => {
  assertThrows(
    () => build({ "dlq-url": "http://h:1/0/login-queue.fifo-dlq" }),
    ConfigError,
    "--dlq-url: http://h:1/0/login-queue.fifo-dlq: queue name may hold only letters",
  );
  assertThrows(
    () => build({ "queue-url": `http://h:1/0/${"q".repeat(78)}` }),
    ConfigError,
    "--dlq-url (default): ",
  );
});

Deno.test("buildConfig() waits 1 s per receive by default, 20 s with --follow", () => {
  assertEquals(build().waitSeconds, 1);
  assertEquals(build({ follow: true }).waitSeconds, 20);
  assertEquals(build({ follow: true }).follow, true);
  assertEquals(build({ follow: true, "wait-seconds": "5" }).waitSeconds, 5);
  assertEquals(build({}, { MASQ_WAIT_SECONDS: "0" }).waitSeconds, 0);
});

Deno.test("buildConfig() defaults the pool size to 4 whatever the concurrency", () => {
  assertEquals(build({ concurrency: "3" }).dbPoolSize, 4);
  assertEquals(build({ concurrency: "64" }).dbPoolSize, 4);
  assertEquals(build({ concurrency: "3", "db-pool-size": "9" }).dbPoolSize, 9);
});

Deno.test("buildConfig() names the setting at fault in a ConfigError", () => {
  const cases: Array<[flags: Record<string, string>, vars: Record<string, string>, setting: string]> = [
    [{ "queue-url": "not a url" }, {}, "--queue-url"],
    [{ "queue-url": "ftp://h/0/q" }, {}, "--queue-url"],
    [{ "queue-url": "http://h:1/" }, {}, "--queue-url"],
    [{}, { SQS_QUEUE_URL: "::" }, "SQS_QUEUE_URL"],
    [{ endpoint: "localhost:4566" }, {}, "--endpoint"],
    [{}, { AWS_ENDPOINT_URL: "nope" }, "AWS_ENDPOINT_URL"],
    [{ region: "EU WEST" }, {}, "--region"],
    [{}, { DATABASE_URL: "mysql://u@h/d" }, "DATABASE_URL"],
    [{ "database-url": "not a url" }, {}, "--database-url"],
    [{ concurrency: "0" }, {}, "--concurrency"],
    [{ concurrency: "65" }, {}, "--concurrency"],
    [{}, { MASQ_CONCURRENCY: "eight" }, "MASQ_CONCURRENCY"],
    [{ "batch-size": "11" }, {}, "--batch-size"],
    [{ "batch-size": "2.5" }, {}, "--batch-size"],
    [{ "wait-seconds": "-1" }, {}, "--wait-seconds"],
    [{ "wait-seconds": "21" }, {}, "--wait-seconds"],
    [{}, { MASQ_VISIBILITY_TIMEOUT: "0" }, "MASQ_VISIBILITY_TIMEOUT"],
    [{ "max-backoff-ms": "1e4" }, {}, "--max-backoff-ms"],
    [{ "log-format": "xml" }, {}, "--log-format"],
    [{}, { MASQ_LOG_LEVEL: "verbose" }, "MASQ_LOG_LEVEL"],
    [{ "sqs-protocol": "JSON" }, {}, "--sqs-protocol"],
  ];
  for (const [flags, vars, setting] of cases) {
    const err = configError(() => build(flags, vars));
    assertEquals(err.setting, setting, JSON.stringify([flags, vars]));
    assert(err.message.startsWith(`${setting}: `), err.message);
  }
});

Deno.test("buildConfig() never echoes credentials of a bad queue URL or endpoint", () => {
  const cases: Array<[Record<string, string>, Record<string, string>]> = [
    [{ "queue-url": "https://AKIAEXAMPLE:qsecret-1@sqs.eu-west-1.amazonaws.com/" }, {}],
    [{}, { SQS_QUEUE_URL: "ftp://user:qsecret-2@host/1/q" }],
    [{}, { SQS_QUEUE_URL: "qsecret-3 is not a url" }],
    [{ endpoint: "gopher://u:qsecret-4@h" }, {}],
    [{ "dlq-url": "http://u:qsecret-5@h:1/" }, {}],
  ];
  for (const [flags, vars] of cases) {
    const err = configError(() => build(flags, vars));
    assert(!/qsecret|AKIAEXAMPLE/.test(err.message), err.message);
  }
});

Deno.test("buildConfig() does not print a bad DATABASE_URL, which may hold a password", () => {
  const err = configError(() => build({}, { DATABASE_URL: "mysql://app:hunter2@db/logins" }));
  assert(!err.message.includes("hunter2"), err.message);
});

Deno.test("buildConfig() refuses short, blank and public HMAC keys with a ConfigError naming the rule", () => {
  const refused: Array<[string, RegExp]> = [
    ["k", /is 1 bytes; at least 32/],
    ["x".repeat(31), /is 31 bytes/],
    [" ".repeat(40), /only whitespace/],
    ["\t\n ", /only whitespace/],
    ["example-key", /public key/],
    [DEMO_HMAC_KEY, /public key/],
    ["masq-bench-key-not-secret", /public key/],
    [
      Deno.readTextFileSync(new URL("../secrets/pii_hmac_key.example", import.meta.url)).replace(/\n$/, ""),
      /public key/,
    ],
  ];
  for (const [key, why] of refused) {
    const err = configError(() => build({}, { PII_HMAC_KEY: key }));
    assertEquals(err.setting, "PII_HMAC_KEY");
    assertMatch(err.message, why);
    if (key.trim() !== "") assert(!err.message.includes(key), "the key is not echoed");
  }
  // 32 bytes is enough, counted in UTF-8 bytes, not characters.
  const ascii = "q7Vx2Lm9Kp4Rt8Wz1Bn6Hc3Jf5Dg0Ys!";
  assertEquals(build({}, { PII_HMAC_KEY: ascii }).hmacKey, ascii);
  const twoByte = "üéößçñåøæþðłąęśźżčřž";
  assertEquals(build({}, { PII_HMAC_KEY: twoByte }).hmacKey, twoByte);
  assertMatch(configError(() => build({}, { PII_HMAC_KEY: twoByte.slice(5) })).message, /is 30 bytes/);
});

Deno.test("buildConfig() refuses a vault key that is not random, or that is the HMAC key", () => {
  for (
    const bytes of [
      new Uint8Array(32),
      new Uint8Array(32).fill(7),
      Uint8Array.from({ length: 32 }, (_, i) => i),
    ]
  ) {
    const err = configError(() => build({}, { PII_VAULT_KEY: toBase64(bytes) }));
    assertEquals(err.setting, "PII_VAULT_KEY");
    assertMatch(err.message, /not random/);
  }
  const vault = crypto.getRandomValues(new Uint8Array(32));
  const b64 = toBase64(vault);
  const hex = Array.from(vault, (x) => x.toString(16).padStart(2, "0")).join("");
  for (const hmac of [b64, hex, ` ${b64}`, b64.replace(/=+$/, "")]) {
    const err = configError(() => build({}, { PII_HMAC_KEY: hmac, PII_VAULT_KEY: b64 }));
    assertEquals(err.setting, "PII_HMAC_KEY / PII_VAULT_KEY");
    assert(!err.message.includes(b64.slice(0, 20)), "no key echoed");
  }
  assertEquals(build({}, { PII_VAULT_KEY: b64 }).vaultKey, vault);
});

Deno.test("buildConfig() accepts a public key only when asked to (the demo and the benchmark)", () => {
  const cfg = buildConfig({}, envOf({ PII_HMAC_KEY: DEMO_HMAC_KEY }), noFile, { allowPublicKey: true });
  assertEquals(cfg.hmacKey, DEMO_HMAC_KEY);
  assert(PUBLIC_KEYS.includes(DEMO_HMAC_KEY) && isPublicKey(` ${DEMO_HMAC_KEY}\n`));
  assert(!isPublicKey(TEST_KEY));
});

Deno.test("buildConfig() warns when a key file is readable by group or others", async () => {
  const path = await Deno.makeTempFile({ prefix: "masq_key_" });
  try {
    await Deno.writeTextFile(path, TEST_KEY);
    const env = envOf({ PII_HMAC_KEY_FILE: path });
    await Deno.chmod(path, 0o600);
    assertEquals(buildConfig({}, env, Deno.readTextFileSync).warnings, []);
    await Deno.chmod(path, 0o644);
    const [warning, ...rest] = buildConfig({}, env, Deno.readTextFileSync).warnings;
    assertEquals(rest, []);
    assertMatch(warning, /PII_HMAC_KEY_FILE: .*group or others \(mode 644\)/);
    assert(!warning.includes(path) && !warning.includes(TEST_KEY));
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("buildConfig() validates PII_HMAC_KEY_ID", () => {
  assertEquals(build({}, { PII_HMAC_KEY_ID: "2026-11.a_b" }).hmacKeyId, "2026-11.a_b");
  for (const bad of ["has space", "x".repeat(33), "k/1", "ключ"]) {
    assertEquals(configError(() => build({}, { PII_HMAC_KEY_ID: bad })).setting, "PII_HMAC_KEY_ID");
  }
});

Deno.test("buildConfig() reads the vault key from PII_VAULT_KEY or PII_VAULT_KEY_FILE, never echoing it", async () => {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const b64 = toBase64(bytes);
  assertEquals(build().vaultKey, undefined);
  assertEquals(build({}, { PII_VAULT_KEY: b64 }).vaultKey, bytes);
  const path = await Deno.makeTempFile({ prefix: "masq_vault_" });
  try {
    await Deno.writeTextFile(path, b64 + "\n");
    assertEquals(build({}, { PII_VAULT_KEY_FILE: path }, Deno.readTextFileSync).vaultKey, bytes);
    const both = configError(() =>
      build({}, { PII_VAULT_KEY: b64, PII_VAULT_KEY_FILE: path }, Deno.readTextFileSync)
    );
    assertMatch(both.message, /both are set/);
  } finally {
    await Deno.remove(path);
  }
  const short = toBase64(bytes.subarray(0, 16));
  const err = configError(() => build({}, { PII_VAULT_KEY: short }));
  assertEquals(err.setting, "PII_VAULT_KEY");
  assertMatch(err.message, /16 bytes; expected 32/);
  assert(!err.message.includes(short));
  const notB64 = configError(() => build({}, { PII_VAULT_KEY: "not base64 at all!" }));
  assert(!notB64.message.includes("not base64 at all!"));
  const missing = configError(() => build({}, { PII_VAULT_KEY_FILE: b64 }));
  assertEquals(missing.setting, "PII_VAULT_KEY_FILE");
  assert(!missing.message.includes(b64));
});

Deno.test("buildConfig() refuses a password, sslpassword or sslkey in --database-url's query string", () => {
  for (const q of ["password=pw", "sslpassword=spw", "sslkey=/k/client.key", "PassWord=pw"]) {
    const err = configError(() => build({ "database-url": `postgres://app@db/x?sslmode=require&${q}` }));
    assertEquals(err.setting, "--database-url");
    assert(!err.message.includes(q.split("=")[1]), err.message);
  }
  // Through the environment they are accepted (and redacted by secretsOf).
  assertEquals(
    build({}, { DATABASE_URL: "postgres://app@db/x?password=pw" }).databaseUrl,
    "postgres://app@db/x?password=pw",
  );
});

Deno.test("ENV_VARS are all readable under the tasks' --allow-env lists", () => {
  const config = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));
  // Every task loads the permission set masq (-P=masq): its list is the one list.
  for (const task of ["masq", "start", "demo", "bench"]) {
    const allow = /--allow-env=(\S+)/.exec(expandedTask(config, task))![1].split(",");
    for (const name of ENV_VARS) {
      const ok = allow.some((a) => a.endsWith("*") ? name.startsWith(a.slice(0, -1)) : a === name);
      assert(ok, `${task} cannot read ${name}`);
    }
  }
});

Deno.test("isAwsHost() takes amazonaws.com and amazonaws.com.cn and the names under them, nothing else", () => {
  for (
    const host of [
      "amazonaws.com",
      "sqs.eu-west-1.amazonaws.com",
      "amazonaws.com.cn",
      "sqs.cn-north-1.amazonaws.com.cn",
    ]
  ) assert(isAwsHost(host), host);
  for (
    const host of [
      "localhost",
      "127.0.0.1",
      "notamazonaws.com",
      "amazonaws.com.evil.test",
      "amazonaws.cn",
      "",
    ]
  ) assert(!isAwsHost(host), host);
  // The same rule picks the endpoint: the SDK's own for an AWS queue, the queue's origin otherwise.
  assertEquals(build({ "queue-url": "https://sqs.cn-north-1.amazonaws.com.cn/1/q" }).endpoint, undefined);
  assertEquals(build({ "queue-url": "https://amazonaws.com.cn/1/q" }).endpoint, undefined);
  assertEquals(build({ "queue-url": "http://elasticmq:9324/1/q" }).endpoint, "http://elasticmq:9324");
});
