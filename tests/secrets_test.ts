import { assert, assertEquals, assertMatch, assertThrows } from "./support/assert.ts";
import fc from "fast-check";
import { buildConfig, type Env, type ReadFile } from "../lib/config.ts";
import {
  checkKeyId,
  checkKeyStrength,
  isKeyId,
  readKeyFile,
  redactUrl,
  resolveHmacKey,
  resolveVaultKeyId,
  secretsOf,
} from "../lib/secrets.ts";
import { ConfigError } from "../lib/errors.ts";
import { toBase64 } from "../lib/vault.ts";

/** A fake environment: only these variables are set. */
function envOf(vars: Record<string, string>): Env {
  return (name) => (Object.hasOwn(vars, name) ? vars[name] : undefined);
}

const noFile: ReadFile = (path) => {
  throw new Deno.errors.NotFound(`no ${path}`);
};

/** A strong test key (64 random hex characters); public, but not on the refused list. */
const TEST_KEY = "9c4e1b7f02a85d36e19f4c7a0b2d8e653f71a9c04e6b28d5137f0ae94c6b2d81";

/** The ConfigError a build throws. */
function configError(fn: () => unknown): ConfigError {
  const err = assertThrows(fn, ConfigError);
  return err as ConfigError;
}

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
    await Deno.writeTextFile(path, TEST_KEY);
    await Deno.chmod(path, 0o600);
    assertEquals(buildConfig({}, env, Deno.readTextFileSync).hmacKey, TEST_KEY);
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
      assert(!err.message.includes(path), "the path is not echoed");
    }
  } finally {
    await Deno.remove(path);
  }
  const err = configError(() => resolveHmacKey(envOf({ PII_HMAC_KEY_FILE: path }), Deno.readTextFileSync));
  assertEquals(err.setting, "PII_HMAC_KEY_FILE");
  assertMatch(err.message, /no such file/);
  assert(!err.message.includes(path), "the path is not echoed");
});

Deno.test("resolveHmacKey() never echoes a key pasted into PII_HMAC_KEY_FILE by mistake", () => {
  const err = configError(() => resolveHmacKey(envOf({ PII_HMAC_KEY_FILE: TEST_KEY }), noFile));
  assertEquals(err.setting, "PII_HMAC_KEY_FILE");
  assert(!err.message.includes(TEST_KEY), err.message);
});

Deno.test("checkKeyStrength() refuses keys of little information content, whatever their length", () => {
  const weak: Array<[string, string]> = [
    ["a".repeat(32), "32 times one letter"],
    ["a".repeat(64), "64 times one letter"],
    ["0".repeat(64), "all zeros"],
    [" ".repeat(31) + "x", "31 spaces and a letter"],
    ["\u{1F600}".repeat(8), "8 times one emoji"],
    ["\u{1F600}\u{1F601}\u{1F602}\u{1F923}\u{1F603}\u{1F604}\u{1F605}\u{1F606}", "8 different emoji"],
    ["example-key".repeat(3), "a public key repeated"],
    ["EXAMPLE-KEY-and-some-more-text-here", "a public key in another case"],
    ["0123456789abcdef0123456789abcdef", "a sequence, twice"],
    ["abcdefghijklmnopqrstuvwxyz012345", "a run"],
    ["Password123!Password123!Password123!x", "one piece repeated"],
    ["ab".repeat(40), "two symbols alternating"],
  ];
  for (const [key, what] of weak) {
    const err = configError(() => checkKeyStrength(key));
    assertEquals(err.setting, "PII_HMAC_KEY", what);
    if (key.trim().length > 3) assert(!err.message.includes(key.trim()), `${what}: the key is not echoed`);
  }
  configError(() => checkKeyStrength("x".repeat(2000)));
});

Deno.test("checkKeyStrength() accepts every key openssl rand -hex 32, -base64 32 and -hex 16 make", () => {
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
      checkKeyStrength(hex(bytes));
      checkKeyStrength(toBase64(bytes));
      checkKeyStrength(hex(bytes.subarray(0, 16)));
    }),
    { numRuns: 2000 },
  );
  // fast-check favours small and repeated values; real randomness too.
  for (let i = 0; i < 2000; i++) checkKeyStrength(hex(crypto.getRandomValues(new Uint8Array(16))));
});

Deno.test("redactUrl() hides the password and nothing else", () => {
  assertEquals(redactUrl("postgres://app:s3cret@db:5432/logins"), "postgres://app:***@db:5432/logins");
  assertEquals(redactUrl("postgres://app@db:5432/logins"), "postgres://app@db:5432/logins");
  assert(!redactUrl("postgres://app:p%40ss@db/x").includes("p%40ss"));
  assertEquals(redactUrl("not a url"), "(unparseable URL)");
});

Deno.test("redactUrl() hides the whole user information of an http(s) URL and presigned query secrets", () => {
  assertEquals(
    redactUrl("https://AKIAEXAMPLE:s3cret@sqs.eu-west-1.amazonaws.com/1/q"),
    "https://***@sqs.eu-west-1.amazonaws.com/1/q",
  );
  assertEquals(redactUrl("http://token@localhost:4566/0/q"), "http://***@localhost:4566/0/q");
  const presigned = redactUrl("https://h/1/q?X-Amz-Signature=sig1&X-Amz-Credential=cred1&Action=x");
  assert(!/sig1|cred1/.test(presigned), presigned);
  assertMatch(presigned, /Action=x/);
});

Deno.test("secretsOf() lists credentials in the queue URL and the endpoint", () => {
  const s = secretsOf({
    databaseUrl: "postgres://u@db/x",
    hmacKey: TEST_KEY,
    queueUrl: "https://AKIAQ:qpw@h/1/q",
    endpoint: "https://eu:epw@h",
  });
  for (const x of ["qpw", "AKIAQ", "epw", "eu"]) assert(s.includes(x), x);
});

Deno.test("redactUrl() hides password, sslpassword and sslkey query parameters", () => {
  const url = "postgres://app@db/x?sslmode=require&password=pw%26x&sslpassword=spw&sslkey=/k/client.key";
  const shown = redactUrl(url);
  assertEquals(shown, "postgres://app@db/x?sslmode=require&password=***&sslpassword=***&sslkey=***");
  for (const secret of ["pw", "spw", "client.key"]) assert(!shown.includes(secret), secret);
});

Deno.test("secretsOf() lists query-string passwords, the sslkey path and the vault key's base64 forms", () => {
  assertEquals(
    secretsOf({
      databaseUrl: "postgres://app@db/x?password=p%40w&sslpassword=spw&sslkey=/k.key",
      hmacKey: "k3y",
    }),
    ["k3y", "p@w", "spw", "/k.key"],
  );
  const vaultKey = new Uint8Array(32).fill(251);
  const secrets = secretsOf({ databaseUrl: "postgres://app@db/x", hmacKey: "k3y", vaultKey });
  const b64 = toBase64(vaultKey);
  assert(secrets.includes(b64) && secrets.includes(b64.replace(/=+$/, "")), "standard base64");
  assert(
    secrets.includes(b64.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "")),
    "URL-safe base64",
  );
});

Deno.test("secretsOf() lists the HMAC key and the database password, but not a well-known one", () => {
  assertEquals(secretsOf({ databaseUrl: "postgres://app:s3cret@db/x", hmacKey: "k3y" }), ["k3y", "s3cret"]);
  assertEquals(secretsOf({ databaseUrl: "postgres://app:p%40ss@db/x", hmacKey: "k3y" }), ["k3y", "p@ss"]);
  assertEquals(secretsOf({ databaseUrl: "postgres://postgres:postgres@db/x", hmacKey: "k3y" }), ["k3y"]);
  assertEquals(secretsOf({ databaseUrl: "postgres://app@db/x", hmacKey: "k3y" }), ["k3y"]);
});

Deno.test("readKeyFile() names the setting and why, never the path or the content", () => {
  const key = "a-secret-key-given-where-its-file-was-meant-0123";
  const fails = (err: Error) => () => {
    throw err;
  };
  for (
    const [err, why] of [
      [new Deno.errors.NotFound(`no such file: ${key}`), "no such file"],
      [new Deno.errors.PermissionDenied(`denied: ${key}`), "not readable"],
      [new Deno.errors.IsADirectory(`is a dir: ${key}`), "it is a directory"],
      [new TypeError(`bad utf-8 in ${key}`), "it cannot be read"],
    ] as const
  ) {
    const e = assertThrows(() => readKeyFile(fails(err), key, "--to-key-file"), ConfigError);
    assertEquals(
      e.message.startsWith(`--to-key-file: cannot read the file it names: ${why}`),
      true,
      e.message,
    );
    assertEquals(e.message.includes(key), false);
  }
  assertEquals(readKeyFile(() => "k", key, "--to-key-file"), "k");
});

Deno.test("resolveVaultKeyId() never repeats a value that is no key id", () => {
  const value = "s3cr3t key pasted here";
  const e = assertThrows(
    () => resolveVaultKeyId((n) => (n === "PII_VAULT_KEY_ID" ? value : undefined)),
    ConfigError,
  );
  assertEquals(e.message, "PII_VAULT_KEY_ID: is not a key id (1-32 of A-Z a-z 0-9 . _ -)");
  assertEquals(resolveVaultKeyId(() => undefined), "v1");
  assertEquals(resolveVaultKeyId(() => "v2"), "v2");
});

Deno.test("checkKeyId() is the one rule of PII_HMAC_KEY_ID and PII_VAULT_KEY_ID, and never repeats the value", () => {
  const value = "s3cr3t key pasted here";
  const viaConfig = configError(() =>
    buildConfig({}, envOf({ PII_HMAC_KEY: TEST_KEY, PII_HMAC_KEY_ID: value }), noFile, {
      fileMode: () => null,
    })
  );
  const viaVault = configError(() =>
    resolveVaultKeyId((n) => (n === "PII_VAULT_KEY_ID" ? value : undefined))
  );
  assertEquals(viaConfig.message, "PII_HMAC_KEY_ID: is not a key id (1-32 of A-Z a-z 0-9 . _ -)");
  assertEquals(viaVault.message, "PII_VAULT_KEY_ID: is not a key id (1-32 of A-Z a-z 0-9 . _ -)");
  assertEquals(checkKeyId("2026-11.a_b", "PII_HMAC_KEY_ID"), "2026-11.a_b");
  for (const bad of ["", "has space", "x".repeat(33), "k/1", "ключ"]) assert(!isKeyId(bad), bad);
});
