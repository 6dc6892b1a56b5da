import { assert, assertEquals, assertMatch, assertThrows } from "./assert.ts";
import {
  buildConfig,
  type Env,
  ENV_VARS,
  helpText,
  parseCommandLine,
  type ReadFile,
  redactUrl,
  resolveHmacKey,
  secretsOf,
  SETTINGS,
} from "../lib/config.ts";
import { ConfigError } from "../lib/errors.ts";

/** A fake environment: only these variables are set. */
function envOf(vars: Record<string, string>): Env {
  return (name) => (Object.hasOwn(vars, name) ? vars[name] : undefined);
}

const noFile: ReadFile = (path) => {
  throw new Deno.errors.NotFound(`no ${path}`);
};

const KEYED = { PII_HMAC_KEY: "test-key" };

function build(
  flags: Record<string, string | boolean | undefined> = {},
  vars: Record<string, string> = {},
  readFile: ReadFile = noFile,
) {
  return buildConfig(flags, envOf({ ...KEYED, ...vars }), readFile);
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
    concurrency: 8,
    batchSize: 10,
    waitSeconds: 1,
    visibilityTimeout: undefined,
    dbPoolSize: 8,
    maxBackoffMs: 10000,
    logFormat: "text",
    logLevel: "info",
    hmacKey: "test-key",
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
    ["concurrency", "MASQ_CONCURRENCY", "3", "5", "concurrency", 8],
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
  assertEquals(build({}, { MASQ_CONCURRENCY: "" }).concurrency, 8);
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

Deno.test("buildConfig() waits 1 s per receive by default, 20 s with --follow", () => {
  assertEquals(build().waitSeconds, 1);
  assertEquals(build({ follow: true }).waitSeconds, 20);
  assertEquals(build({ follow: true }).follow, true);
  assertEquals(build({ follow: true, "wait-seconds": "5" }).waitSeconds, 5);
  assertEquals(build({}, { MASQ_WAIT_SECONDS: "0" }).waitSeconds, 0);
});

Deno.test("buildConfig() defaults the pool size to the concurrency", () => {
  assertEquals(build({ concurrency: "3" }).dbPoolSize, 3);
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

Deno.test("buildConfig() does not print a bad DATABASE_URL, which may hold a password", () => {
  const err = configError(() => build({}, { DATABASE_URL: "mysql://app:hunter2@db/logins" }));
  assert(!err.message.includes("hunter2"), err.message);
});

Deno.test("parseCommandLine() reads the command, flags and positionals", () => {
  const inv = parseCommandLine([
    "run",
    "--follow",
    "--queue-url",
    "http://h:1/0/q",
    "--concurrency=4",
    "extra",
  ], { run: { settings: true, flags: { follow: { type: "boolean" } } } });
  assertEquals(inv.command, "run");
  assertEquals(inv.help, false);
  assertEquals(inv.values.follow, true);
  assertEquals(inv.values["queue-url"], "http://h:1/0/q");
  assertEquals(inv.values.concurrency, "4");
  assertEquals(inv.positionals, ["extra"]);
  assertEquals(parseCommandLine(["-h"]).help, true);
  assertEquals(parseCommandLine([]).command, "");
  // A command's own flag is refused by another command.
  configError(() =>
    parseCommandLine(["demo", "--follow"], { run: { flags: { follow: { type: "boolean" } } }, demo: {} })
  );
});

Deno.test("parseCommandLine() rejects an unknown flag with a ConfigError", () => {
  const err = configError(() => parseCommandLine(["run", "--queue", "http://h/0/q"]));
  assertEquals(err.setting, "usage");
  assertMatch(err.message, /--queue/);
  assertMatch(err.message, /masq --help/);
  // Secrets are never flags.
  configError(() => parseCommandLine(["run", "--pii-hmac-key", "k"]));
  // A string flag without its value.
  configError(() => parseCommandLine(["run", "--queue-url"]));
});

Deno.test("resolveHmacKey() requires exactly one of PII_HMAC_KEY and PII_HMAC_KEY_FILE", () => {
  const missing = configError(() => resolveHmacKey(envOf({}), noFile));
  assertEquals(missing.setting, "PII_HMAC_KEY");
  assertMatch(missing.message, /not set/);
  assertEquals(
    configError(() => resolveHmacKey(envOf({ PII_HMAC_KEY: "" }), noFile)).setting,
    "PII_HMAC_KEY",
  );
  const both = configError(() =>
    resolveHmacKey(envOf({ PII_HMAC_KEY: "a", PII_HMAC_KEY_FILE: "/k" }), noFile)
  );
  assertMatch(both.message, /both are set/);
  assertEquals(resolveHmacKey(envOf({ PII_HMAC_KEY: "direct key" }), noFile), "direct key");
  // buildConfig refuses to start without one.
  assertEquals(configError(() => buildConfig({}, envOf({}), noFile)).setting, "PII_HMAC_KEY");
});

Deno.test("resolveHmacKey() reads the key file, dropping one trailing newline", async () => {
  const path = await Deno.makeTempFile({ prefix: "masq_key_" });
  try {
    await Deno.writeTextFile(path, "file-key with spaces \n");
    const env = envOf({ PII_HMAC_KEY_FILE: path });
    assertEquals(resolveHmacKey(env, Deno.readTextFileSync), "file-key with spaces ");
    await Deno.writeTextFile(path, "crlf-key\r\n");
    assertEquals(resolveHmacKey(env, Deno.readTextFileSync), "crlf-key");
    await Deno.writeTextFile(path, "no-newline");
    assertEquals(buildConfig({}, env, Deno.readTextFileSync).hmacKey, "no-newline");
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("resolveHmacKey() refuses an empty or missing key file", async () => {
  const path = await Deno.makeTempFile({ prefix: "masq_key_" });
  try {
    const env = envOf({ PII_HMAC_KEY_FILE: path });
    for (const content of ["", "\n"]) {
      await Deno.writeTextFile(path, content);
      const err = configError(() => resolveHmacKey(env, Deno.readTextFileSync));
      assertEquals(err.setting, "PII_HMAC_KEY_FILE");
      assertMatch(err.message, /is empty/);
    }
  } finally {
    await Deno.remove(path);
  }
  const err = configError(() => resolveHmacKey(envOf({ PII_HMAC_KEY_FILE: path }), Deno.readTextFileSync));
  assertEquals(err.setting, "PII_HMAC_KEY_FILE");
  assertMatch(err.message, /no such file/);
});

Deno.test("redactUrl() hides the password and nothing else", () => {
  assertEquals(redactUrl("postgres://app:s3cret@db:5432/logins"), "postgres://app:***@db:5432/logins");
  assertEquals(redactUrl("postgres://app@db:5432/logins"), "postgres://app@db:5432/logins");
  assert(!redactUrl("postgres://app:p%40ss@db/x").includes("p%40ss"));
  assertEquals(redactUrl("not a url"), "(unparseable URL)");
});

Deno.test("secretsOf() lists the HMAC key and the database password, but not a well-known one", () => {
  assertEquals(secretsOf({ databaseUrl: "postgres://app:s3cret@db/x", hmacKey: "k3y" }), ["k3y", "s3cret"]);
  assertEquals(secretsOf({ databaseUrl: "postgres://app:p%40ss@db/x", hmacKey: "k3y" }), ["k3y", "p@ss"]);
  assertEquals(secretsOf({ databaseUrl: "postgres://postgres:postgres@db/x", hmacKey: "k3y" }), ["k3y"]);
  assertEquals(secretsOf({ databaseUrl: "postgres://app@db/x", hmacKey: "k3y" }), ["k3y"]);
});

Deno.test("helpText() mentions every flag and environment variable", () => {
  const help = helpText();
  for (const s of SETTINGS) {
    if (s.flag) assert(help.includes(`--${s.flag}`), `--${s.flag}`);
    for (const e of s.env) assert(help.includes(e), e);
  }
  for (const e of ENV_VARS) assert(help.includes(e), e);
  for (const word of ["--follow", "PII_HMAC_KEY_FILE", "run", "demo", "bench"]) {
    assert(help.includes(word), word);
  }
  assert(!help.includes(":postgres@"), "the default database password is redacted");
});
