/**
 * No raw personal data anywhere masq writes: generated bodies full of personal-looking values (under any
 * key, case, nesting and array; valid and invalid; JSON and not) go through the real CLI against real
 * PostgreSQL and the embedded SQS, and then a full pg_dump of the test's schema, every dead-letter message
 * (body and attributes), stdout and stderr at --log-level debug are searched for every generated value.
 * Also: `masq run` refuses weak and public keys, and secrets in the database URL's query string.
 */
import fc from "fast-check";
import type { Message as SqsMessage } from "@aws-sdk/client-sqs";
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { seedQueue } from "../../lib/demo.ts";
import { toBase64 } from "../../lib/vault.ts";
import { generateOfficerKeys } from "../../lib/seal.ts";
import {
  collect,
  type MasqEnv,
  type MasqResult,
  ROOT,
  runMasqCli,
  spawnWatched,
} from "../support/processes.ts";
import { receiveAll, sqsClient } from "../support/sqs.ts";
import { startDatabase, type TestDatabase } from "../support/databases.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";

/** Runs the CLI with a deadline: a hung run is killed and reaped, and the test fails naming it. */
function masq(args: string[], env: MasqEnv, timeoutMs = 180_000): Promise<MasqResult> {
  return runMasqCli(args, env, { timeoutMs });
}

// ---------------------------------------------------------------------------------------------------------
// Generators. Every personal value is distinctive enough (punctuation, length) that finding it in the
// output means it leaked, not that a hex token or a timestamp happened to contain it.

const byte = fc.integer({ min: 1, max: 254 });
const ipv4 = fc.tuple(fc.integer({ min: 11, max: 223 }), byte, byte, byte).map((o) => o.join("."));
const group = fc.integer({ min: 0x1000, max: 0xffff }).map((n) => n.toString(16));
const ipv6 = fc.tuple(fc.array(group, { minLength: 8, maxLength: 8 }), fc.nat(3)).map(([g, style]) => {
  const full = g.join(":");
  if (style === 0) return full;
  if (style === 1) return full.toUpperCase();
  if (style === 2) return `${g.slice(0, 3).join(":")}::${g.slice(6).join(":")}`; // compressed
  return `fe80::${g.slice(5).join(":")}%Eth${g[0].slice(0, 1)}`; // link-local with a zone id
});
const mapped = ipv4.chain((v4) => fc.constantFrom(`::ffff:${v4}`, `::FFFF:${v4}`, `0:0:0:0:0:ffff:${v4}`));
const deviceId = fc.tuple(
  fc.integer({ min: 100, max: 999 }),
  fc.integer({ min: 10, max: 99 }),
  fc.integer({ min: 1000, max: 9999 }),
).map(([a, b, c]) => `${a}-${b}-${c}`);
const email = fc.tuple(fc.stringMatching(/^[a-z]{4,10}$/), fc.stringMatching(/^[a-z]{3,8}$/)).map(([u, d]) =>
  `${u}.${d}@example.org`
);
const longNumber = fc.integer({ min: 100_000_000_000, max: 999_999_999_999_999 });
/** A personal value: the thing that must never come out in the clear. */
const personal = fc.oneof(ipv4, ipv6, mapped, deviceId, email, longNumber);

/** Keys personal data hides under: the contract's, other cases, nested spellings, and anything else. */
const key = fc.oneof(
  fc.constantFrom(
    "ip",
    "IP",
    "Ip",
    "device_id",
    "Device_ID",
    "deviceId",
    "client_ip",
    "x_forwarded_for",
    "ips",
    "user",
    "device",
    "email",
    "id",
  ),
  fc.string({ minLength: 1, maxLength: 10 }),
);

const tree: fc.Arbitrary<unknown> = fc.letrec<{ node: unknown }>((tie) => ({
  node: fc.oneof(
    { depthSize: "small", maxDepth: 4 },
    personal,
    fc.array(tie("node"), { maxLength: 3 }),
    fc.dictionary(key, tie("node"), { maxKeys: 3 }),
  ),
})).node;

const safeText = fc.stringMatching(/^[a-z][a-z0-9-]{2,20}$/);
const locale = fc.constantFrom("RU", "US", "pt-BR", null);
const appVersion = fc.constantFrom("2.3.0", "0.96", "3.7", 5, "1.2.3.4", {}, -1);

/** One body: a login with extras (valid or not), a bag of personal data, or not JSON at all. */
const body: fc.Arbitrary<string> = fc.oneof(
  // A login whose ip/device_id are personal, with personal data under other keys too.
  fc.record({
    user_id: fc.oneof(safeText, ipv4, mapped, fc.constant(42)),
    ip: fc.oneof(ipv4, ipv6, mapped, fc.constant(null)),
    device_id: fc.oneof(deviceId, longNumber),
    device_type: fc.oneof(fc.constantFrom("android", "ios"), ipv4),
    locale: fc.oneof(locale, ipv6),
    app_version: appVersion,
    extra: fc.dictionary(key, tree, { maxKeys: 3 }),
    device: fc.oneof(
      fc.constant(undefined),
      fc.record({ id: deviceId }),
      fc.array(fc.record({ id: deviceId })),
    ),
  }).map((r) => {
    const { extra, ...rest } = r;
    return JSON.stringify({ ...rest, ...extra });
  }),
  // Personal data under any keys, no valid login.
  fc.dictionary(key, tree, { minKeys: 1, maxKeys: 5 }).map((d) => JSON.stringify(d)),
  // Not JSON, or JSON that is not an object.
  personal.map((p) => `not json ${p}`),
  personal.map((p) => JSON.stringify([p])),
  personal.map((p) => `{"ip": "${p}", broken`),
);

/** Every personal value inside a generated body (the generators put nothing else of that form there). */
function personalValuesIn(text: string): string[] {
  const found = new Set<string>();
  const patterns = [
    /(?:\d{1,3}\.){3}\d{1,3}/g,
    /[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%\w+)?/g,
    /::[fF]{4}:(?:\d{1,3}\.){3}\d{1,3}/g,
    /\d{3}-\d{2}-\d{4}/g,
    /[a-z]{4,10}\.[a-z]{3,8}@example\.org/g,
    /\d{12,15}/g,
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) if (m[0].length >= 7) found.add(m[0]);
  return [...found];
}

/** The test schema's name, from the URL the harness gives masq. */
function schemaOf(db: TestDatabase): string {
  return /search_path=(\w+)/.exec(new URL(db.url).searchParams.get("options") ?? "")![1];
}

/** Everything stored: pg_dump of the schema on a real server, else every row of every table as JSON. */
async function everythingStored(db: TestDatabase): Promise<string> {
  if (db.kind === "postgresql") {
    const base = Deno.env.get("TEST_DATABASE_URL")!;
    const out = await collect(
      spawnWatched("/usr/bin/pg_dump", ["--schema", schemaOf(db), "--no-owner", base], { timeoutMs: 60_000 }),
    );
    assertEquals(out.code, 0, out.stderr);
    return out.stdout;
  }
  const tables = await db.query<{ name: string }>(
    "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()",
  );
  let all = "";
  for (const t of tables) all += JSON.stringify(await db.query(`SELECT * FROM "${t.name}"`));
  return all;
}

function dlqText(messages: SqsMessage[]): string {
  return messages.map((m) => JSON.stringify({ body: m.Body, attributes: m.MessageAttributes })).join("\n");
}

Deno.test({
  name: "masq run writes no generated personal value to PostgreSQL, the DLQ, stdout or stderr",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const seed = Number(Deno.env.get("MASQ_PRIVACY_SEED") ?? Date.now() % 1_000_000);
    // Each vault mode once: none, the symmetric key, the sealed vault (public key only).
    for (const vaultMode of ["none", "symmetric", "sealed"]) {
      await fc.assert(
        fc.asyncProperty(
          fc.array(body, { minLength: 60, maxLength: 120 }),
          async (bodies) => {
            const withVault = vaultMode !== "none";
            const sqs = await startEmbeddedSqs();
            const db = await startDatabase();
            const client = sqsClient(sqs);
            try {
              const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "60" });
              await seedQueue(sqs.endpoint, queueUrl, bodies);
              // A password in the URL's query string too: it must not be printed either.
              const password = `qs-pw-${crypto.randomUUID()}`;
              const url = new URL(db.url);
              url.searchParams.set("password", password);
              // With a vault, originals are kept, but only encrypted (pii_vault, masq_original): under the
              // symmetric key, or sealed to the officer's public key through per-person keys (masq_subject_keys).
              const vaultKey = toBase64(crypto.getRandomValues(new Uint8Array(32)));
              const officer = await generateOfficerKeys();
              const vaultEnv: { extra?: Record<string, string> } = vaultMode === "symmetric"
                ? { extra: { PII_VAULT_KEY: vaultKey } }
                : vaultMode === "sealed"
                ? { extra: { PII_VAULT_PUBLIC_KEY: officer.publicText } }
                : {};
              const res = await masq(["run", "--log-level", "debug", "--concurrency", "2"], {
                queueUrl,
                databaseUrl: url.toString(),
                ...vaultEnv,
              });
              assertEquals(res.code, 0, res.stderr);
              assertEquals(res.summary?.received, bodies.length);

              const raw = new Set(bodies.flatMap(personalValuesIn));
              assert(raw.size > bodies.length / 2, "the generator produced personal values");
              const letters = await receiveAll(client, `${queueUrl}-dlq`);
              const [{ vaulted }] = await db.query<{ vaulted: number }>(
                "SELECT count(*)::int AS vaulted FROM pii_vault",
              );
              if (withVault) {
                // The symmetric vault carries masq_original, the sealed one masq_sealed: one, never both.
                const carried = vaultMode === "sealed" ? "masq_sealed" : "masq_original";
                const other = vaultMode === "sealed" ? "masq_original" : "masq_sealed";
                assert(
                  letters.every((l) =>
                    l.MessageAttributes?.[carried]?.StringValue && !l.MessageAttributes?.[other]
                  ),
                  `originals encrypted (${carried})`,
                );
              } else {
                assertEquals(vaulted, 0, "no vault key, nothing reversible stored");
                assert(
                  letters.every((l) => !l.MessageAttributes?.masq_original),
                  "no vault key, no original",
                );
              }
              const places: Array<[string, string]> = [
                ["PostgreSQL (pg_dump)", await everythingStored(db)],
                ["the dead-letter queue", dlqText(letters)],
                ["stdout", res.stdout],
                ["stderr", res.stderr],
              ];
              for (const [where, text] of places) {
                const leaked = [...raw].filter((v) => text.includes(v));
                assertEquals(leaked, [], `raw values in ${where} (seed ${seed}, vault ${vaultMode})`);
                assert(!text.includes(password), `the query-string password is in ${where}`);
                assert(!text.includes(vaultKey), `the vault key is in ${where}`);
                assert(
                  !text.includes(officer.privateText.split(" ")[3]),
                  `the officer's private key is in ${where}`,
                );
              }
              // The run did real work: rows, rejections and dead letters exist to be searched.
              const [{ n }] = await db.query<{ n: number }>(
                "SELECT (SELECT count(*) FROM user_logins) + (SELECT count(*) FROM user_logins_rejected) AS n",
              );
              assertEquals(Number(n), bodies.length);
            } finally {
              client.destroy();
              await db.stop();
              await sqs.stop();
            }
          },
        ),
        { numRuns: 1, seed, endOnFailure: true },
      );
    }
  },
});

// ---------------------------------------------------------------------------------------------------------
// Key requirements and secrets in flags: `masq run` refuses before it connects to anything.

const nowhere = { queueUrl: "http://127.0.0.1:9/000000000000/q", databaseUrl: "postgres://u@127.0.0.1:9/db" };

function assertRefused(res: MasqResult, pattern: RegExp, secret?: string): void {
  assertEquals(res.code, 2, res.stderr);
  const lines = res.stderr.trim().split("\n");
  assertEquals(lines.length, 1, res.stderr);
  assertMatch(lines[0], pattern);
  if (secret !== undefined) assert(!(res.stdout + res.stderr).includes(secret), "the secret is not echoed");
}

Deno.test("masq run refuses a short, blank or public HMAC key with exit 2 and one line", async () => {
  const demoKey = "masq-demo-key-NOT-SECRET-do-not-use-in-production";
  const cases: Array<[Record<string, string>, RegExp, string?]> = [
    [{ PII_HMAC_KEY: "k" }, /^masq: PII_HMAC_KEY: is 1 bytes; at least 32/],
    [{ PII_HMAC_KEY: "short-but-secret-31-bytes-long!" }, /is 31 bytes/, "short-but-secret"],
    [{ PII_HMAC_KEY: " ".repeat(40) }, /only whitespace/],
    [{ PII_HMAC_KEY: "example-key" }, /public key/],
    [{ PII_HMAC_KEY: demoKey }, /public key/, demoKey],
    [{ PII_HMAC_KEY: "masq-bench-key-not-secret" }, /public key/],
    [{ PII_HMAC_KEY: "", PII_HMAC_KEY_FILE: "secrets/pii_hmac_key.example" }, /public key/, "NOT-A-KEY"],
    // A key pasted into the _FILE variable by mistake is not echoed.
    [
      { PII_HMAC_KEY: "", PII_HMAC_KEY_FILE: "pasted-key-0123456789abcdef0123456789" },
      /PII_HMAC_KEY_FILE/,
      "pasted-key",
    ],
  ];
  for (const [extra, pattern, secret] of cases) {
    assertRefused(await masq(["run"], { ...nowhere, extra }, 60_000), pattern, secret);
  }
  assert(Deno.statSync(`${ROOT}secrets/pii_hmac_key.example`).isFile);
});

Deno.test("masq run refuses password, sslpassword and sslkey in --database-url without printing them", async () => {
  for (const q of ["password=qs-secret-1", "sslpassword=qs-secret-2", "sslkey=/keys/qs-secret-3.key"]) {
    const res = await masq(["run", "--database-url", `postgres://u@127.0.0.1:9/db?${q}`], nowhere, 60_000);
    assertRefused(res, /^masq: --database-url: contains a secret query parameter/, "qs-secret");
  }
});
