/**
 * Hostile input, generated: more than 10,000 bodies thrown at parseBody() (it must never throw, and
 * whatever it accepts must fit user_logins), then ~1,000 of them through the real CLI between an
 * embedded SQS and PostgreSQL (every body must end up as parseBody() says: a row or a rejection).
 */
import fc from "fast-check";
import { SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import {
  COLUMN_WIDTH,
  isPlainObject,
  type LoginFields,
  MAX_EPOCH,
  parseBody,
  type ParseResult,
} from "../../lib/transform/parse.ts";
import { asciiJson as asciiJsonText } from "../../lib/transform/redact.ts";
import { findAddress } from "../../lib/transform/address.ts";
import { MAX_MAJOR, packAppVersion, unpackAppVersion } from "../../lib/transform/app_version.ts";
import { createMasker } from "../../lib/transform/mask.ts";
import { toRecord, utcDate } from "../../lib/transform/record.ts";
import type { SinkRecord } from "../../lib/sink/postgres.ts";
import { deadLetterFor } from "../../lib/transform/letter.ts";
import { BODY_LEFT_OUT, letterBytes, SQS_LARGEST_MESSAGE_BYTES } from "../../lib/source/sqs.ts";
import { synthetic } from "../../bench/synthetic.ts";
import { queueDepth, receiveAll, sqsClient } from "../support/sqs.ts";
import { runMasqCli, TEST_KEY } from "../support/processes.ts";
import { startDatabase } from "../support/databases.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";

const SQL = [
  "'; DROP TABLE user_logins; --",
  "' OR '1'='1",
  "1; DELETE FROM user_logins_ledger",
  "Robert'); DROP TABLE students;--",
  "$$; DROP TABLE user_logins; $$",
  "\\'; TRUNCATE user_logins; --",
  "%' AND 1=1 --",
  "'); SELECT pg_sleep(30); --",
  "E'\\x00'::text",
  "x' UNION SELECT usename FROM pg_user --",
];

/** Latest epoch second accepted as a timestamp (9999-12-31T23:59:59Z). */
const MAX_PACKED = MAX_MAJOR * 1_000_000 + 999_999;

// ---------------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------------

/** Any UTF-16 code unit: NUL, controls, lone surrogates, noncharacters. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));

const specialString = fc.constantFrom(
  "",
  " ",
  "\t\n",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "x\udbff",
  "\udc00y",
  "\ufffe",
  "\u{1F600}".repeat(32),
  "\u{1F600}".repeat(33),
  "\u{1F600}".repeat(128),
  "\u{1F600}".repeat(129),
  "x".repeat(32),
  "x".repeat(33),
  "x".repeat(128),
  "x".repeat(129),
  "199.172.111.135",
  "2001:0DB8::0001",
  "593-47-5928",
  "null",
  "true",
  "{}",
);

const versionLike = fc.oneof(
  fc.tuple(fc.nat(2200), fc.nat(1100), fc.nat(1100)).map(([a, b, c]) => `${a}.${b}.${c}`),
  fc.tuple(fc.nat(2200), fc.nat(1100)).map(([a, b]) => `${a}.${b}`),
  fc.nat(3000).map(String),
  fc.constantFrom("1.2.3.4", " 2.3.0 ", "1..2", ".5", "v1", "2146.999.999", "2147", "-1", "1e3", "0.96"),
);

const numericString = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: false }).map(String),
  fc.integer({ min: 0, max: MAX_EPOCH + 10 }).map((n) => ` ${n} `),
);

const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.string(),
  fc.string({ unit: "binary" }),
  fc.string({ unit: codeUnit }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: "binary-ascii" }),
  fc.constantFrom(...SQL),
  specialString,
  versionLike,
  numericString,
);

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: hostileString },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: MAX_EPOCH + 10 }) },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 2, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 1, arbitrary: fc.array(hostileString, { maxLength: 2 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 4 }), hostileString, { maxKeys: 2 }) },
);

const KNOWN = ["user_id", "device_type", "locale", "ip", "device_id", "app_version", "timestamp"] as const;

/** Objects with the known keys (each present or not) holding anything, plus an unknown key or two. */
const knownKeysObject = fc.record({
  user_id: hostileValue,
  device_type: hostileValue,
  locale: hostileValue,
  ip: hostileValue,
  device_id: hostileValue,
  app_version: fc.oneof(versionLike, hostileValue),
  timestamp: fc.oneof(numericString, hostileValue),
  extra: fc.jsonValue({ maxDepth: 2 }),
}, { requiredKeys: [] });

/** The same fields reached through nesting (device.type, user.id, ...), sometimes also given directly. */
const nestedObject = fc.record({
  user: fc.record({ id: hostileValue }, { requiredKeys: [] }),
  user_id: hostileValue,
  device: fc.record({ type: hostileValue, id: hostileValue, extra: hostileValue }, { requiredKeys: [] }),
  app: fc.record({ version: fc.oneof(versionLike, hostileValue) }, { requiredKeys: [] }),
  geo: fc.record({ ip: hostileValue }, { requiredKeys: [] }),
  locale: hostileValue,
}, { requiredKeys: [] });

/** Text of one code point that PostgreSQL can store: any code point but NUL and surrogates. */
const storable = fc.string({ unit: "binary" }).map((s) => s.replaceAll("\u0000", "_"));
const storableUpTo = (n: number) =>
  fc.string({ unit: "binary", maxLength: n }).map((s) => s.replaceAll("\u0000", "_"));

/** Text of up to `n` code points for a clear column: storable and holding no address. */
const clearUpTo = (n: number) => storableUpTo(n).filter((s) => findAddress(s) === null);

/** Bodies every rule of the README's "Bad input" accepts, with the fields they must produce. */
const validLogin = fc.record({
  user_id: clearUpTo(128).filter((s) => s.trim() !== ""),
  device_type: fc.option(clearUpTo(32)),
  locale: fc.option(clearUpTo(32)),
  ip: fc.option(fc.oneof(fc.ipV4(), fc.ipV6(), storable)),
  device_id: fc.option(fc.oneof(fc.uuid(), storable)),
  app_version: fc.option(
    fc.tuple(fc.nat(MAX_MAJOR), fc.nat(999), fc.nat(999), fc.nat(2)).map(([a, b, c, parts]) =>
      [a, b, c].slice(0, parts + 1).join(".")
    ),
  ),
  timestamp: fc.option(
    fc.oneof(fc.integer({ min: 0, max: MAX_EPOCH }), fc.integer({ min: 0, max: MAX_EPOCH }).map(String)),
  ),
}, { requiredKeys: ["user_id"] });

/** Anything resembling a body: random text, broken JSON, JSON fragments. */
const rawBody = fc.oneof(
  fc.string({ unit: "binary" }),
  fc.string({ unit: codeUnit }),
  fc.string({ unit: "binary-ascii" }),
  fc.tuple(
    fc.constantFrom('{"user_id":', '{"user_id":"u","ip":', "[", '{"', "{", '"', '{"user_id":"u"}'),
    fc.string({ unit: codeUnit }),
  ).map(([a, b]) => a + b),
  fc.jsonValue().map((v) => JSON.stringify(v)).chain((s) =>
    fc.nat(Math.max(0, s.length - 1)).map((cut) => s.slice(0, cut))
  ),
);

/** Deep nesting of objects or arrays, with the login at the top or at the bottom. */
const deepBody = fc.record({
  depth: fc.integer({ min: 1, max: 3_000 }),
  kind: fc.constantFrom("object", "array", "mixed"),
  userAtTop: fc.boolean(),
}).map(({ depth, kind, userAtTop }) => {
  const open = (i: number) => (kind === "array" || (kind === "mixed" && i % 2 === 1) ? "[" : '{"a":');
  const close = (i: number) => (kind === "array" || (kind === "mixed" && i % 2 === 1) ? "]" : "}");
  let inner = userAtTop ? "1" : '{"user_id":"deep"}';
  for (let i = depth - 1; i >= 0; i--) inner = open(i) + inner + close(i);
  return userAtTop ? `{"user_id":"u","ip":"10.0.0.1","x":${inner}}` : inner;
});

const KIB256 = 256 * 1024;

/** A body of exactly 256 KiB (UTF-8), made of one repeated unit inside a chosen field. */
const hugeBody = fc.record({
  unit: fc.oneof(
    fc.string({ unit: "binary", minLength: 1, maxLength: 3 }),
    fc.constantFrom("x", "é", "\u{1F600}"),
  ),
  field: fc.constantFrom("padding", "user_id", "locale", "ip", "device_id", "app_version", "(raw)"),
}).map(({ unit, field }) => sizedBody(field, unit, KIB256));

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).length;
}

/** A login body whose `field` holds `unit` repeated to make the body `bytes` long (or just under). */
function sizedBody(field: string, unit: string, bytes: number): string {
  const wrap = (v: string) => (field === "(raw)" ? v : JSON.stringify({ user_id: "u-huge", [field]: v }));
  const unitBytes = field === "(raw)" ? utf8Length(unit) : utf8Length(JSON.stringify(unit)) - 2;
  const value = unit.repeat(Math.floor((bytes - utf8Length(wrap(""))) / Math.max(1, unitBytes)));
  const body = wrap(value);
  // Pad with spaces (one byte each, inside the value) up to the exact size.
  return wrap(value + " ".repeat(Math.max(0, bytes - utf8Length(body))));
}

// ---------------------------------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------------------------------

let checked = 0;

/** A stored text column: fits its width in code points, no NUL, valid Unicode. */
function assertStorable(value: string | null, width: number, name: string): void {
  if (value === null) return;
  assertEquals(typeof value, "string", name);
  assert(
    [...value].length <= width,
    `${name} is ${[...value].length} code points; the column holds ${width}`,
  );
  assert(!value.includes("\u0000"), `${name} contains NUL`);
  assert(value.isWellFormed(), `${name} contains a lone surrogate`);
}

function assertFieldsFit(f: LoginFields): void {
  assertEquals(typeof f.userId, "string");
  assert(f.userId.trim() !== "", "user_id is not blank");
  assertStorable(f.userId, COLUMN_WIDTH.user_id, "user_id");
  assertStorable(f.deviceType, COLUMN_WIDTH.device_type, "device_type");
  assertStorable(f.locale, COLUMN_WIDTH.locale, "locale");
  for (
    const [name, v] of [["user_id", f.userId], ["device_type", f.deviceType], ["locale", f.locale]] as const
  ) {
    assertEquals(v === null ? null : findAddress(v), null, `${name} holds no address in any spelling`);
  }
  for (const [name, v] of [["ip", f.ip], ["device_id", f.deviceId]] as const) {
    if (v === null) continue;
    assertEquals(typeof v, "string", name);
    assert(v.trim() !== "", `${name} is null rather than blank`);
    assert(v.isWellFormed(), `${name} is valid Unicode (UTF-8 encodable for the HMAC)`);
  }
  if (f.appVersion !== null) {
    assert(Number.isSafeInteger(f.appVersion), `app_version ${f.appVersion} is an integer`);
    assert(f.appVersion >= 0 && f.appVersion <= MAX_PACKED, `app_version ${f.appVersion} fits`);
    assertEquals(packAppVersion(unpackAppVersion(f.appVersion)), f.appVersion);
  }
  if (f.timestamp !== null) {
    assert(
      Number.isFinite(f.timestamp) && f.timestamp >= 0 && f.timestamp <= MAX_EPOCH,
      `timestamp ${f.timestamp}`,
    );
  }
}

/** parseBody() on one body: never throws; accepts only what fits; rejects with a reason. */
function check(body: string): ParseResult {
  checked++;
  const r = parseBody(body);
  let json: unknown;
  let isJson = true;
  try {
    json = JSON.parse(body);
  } catch {
    isJson = false;
  }
  if (!isJson) {
    assert(!r.ok, "not JSON is rejected");
    assertMatch(r.reason, /^body is not valid JSON/);
    assertEquals(r.json, undefined);
  } else if (!isPlainObject(json)) {
    assert(!r.ok, "JSON that is not an object is rejected");
    assertMatch(r.reason, /^body must be a JSON object/);
    assertEquals(r.json, undefined);
  }
  if (r.ok) {
    assertFieldsFit(r.fields);
  } else {
    assertEquals(typeof r.reason, "string");
    assert(r.reason.trim().length > 0, "a rejection has a reason");
  }
  return r;
}

/** For a flat body that was accepted: the fields are exactly its values. */
function assertFieldsOf(o: Record<string, unknown>, f: LoginFields): void {
  const blankToNull = (
    v: unknown,
  ) => (v === undefined || v === null || (v as string).trim() === "" ? null : v);
  assertEquals(f.userId, o.user_id);
  assertEquals(f.deviceType, o.device_type ?? null);
  assertEquals(f.locale, o.locale ?? null);
  assertEquals(f.ip, blankToNull(o.ip));
  assertEquals(f.deviceId, blankToNull(o.device_id));
  assertEquals(
    f.appVersion,
    o.app_version === undefined || o.app_version === null ? null : packAppVersion(String(o.app_version)),
  );
}

Deno.test("parseBody() survives more than 10,000 hostile bodies and accepts only what fits user_logins", async (t) => {
  await t.step("random JSON values (ASCII strings)", () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => void check(JSON.stringify(v))), { numRuns: 1_500 });
  });

  await t.step("random JSON values (full Unicode strings)", () => {
    fc.assert(fc.property(fc.jsonValue({ stringUnit: "binary" }), (v) => void check(JSON.stringify(v))), {
      numRuns: 1_000,
    });
  });

  await t.step("objects with the known keys holding anything", () => {
    fc.assert(
      fc.property(knownKeysObject, (o) => {
        const r = check(JSON.stringify(o));
        if (r.ok) assertFieldsOf(JSON.parse(JSON.stringify(o)), r.fields);
        if (!("user_id" in o)) assert(!r.ok, "a body without user_id is rejected");
        else if (typeof o.user_id !== "string") assert(!r.ok, "a non-string user_id is rejected");
      }),
      { numRuns: 3_000 },
    );
  });

  await t.step("the known keys through nesting, sometimes given twice", () => {
    fc.assert(
      fc.property(nestedObject, (o) => {
        const r = check(JSON.stringify(o));
        const viaUser = isPlainObject(o.user) && "id" in o.user;
        if (viaUser && "user_id" in o) assert(!r.ok, "user_id given twice is rejected");
      }),
      { numRuns: 1_000 },
    );
  });

  await t.step("bodies that follow every rule are accepted with exactly their values", () => {
    fc.assert(
      fc.property(validLogin, (o) => {
        const r = check(JSON.stringify(o));
        assert(r.ok, `rejected a valid login: ${!r.ok && r.reason}`);
        assertFieldsOf(o, r.fields);
        const ts = o.timestamp === undefined || o.timestamp === null ? null : Number(o.timestamp);
        assertEquals(r.fields.timestamp, ts);
      }),
      { numRuns: 1_000 },
    );
  });

  await t.step("random text, broken JSON and JSON fragments, with NUL and lone surrogates", () => {
    fc.assert(fc.property(rawBody, (body) => void check(body)), { numRuns: 2_000 });
  });

  await t.step("SQL-looking values in every field are plain text", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...SQL),
        fc.subarray([...KNOWN], { minLength: 1 }),
        (sql, fields) => {
          const o: Record<string, unknown> = { user_id: "u" };
          for (const f of fields) o[f] = sql;
          const r = check(JSON.stringify(o));
          if (r.ok) {
            if (fields.includes("user_id")) assertEquals(r.fields.userId, sql);
            if (fields.includes("locale")) assertEquals(r.fields.locale, sql);
            if (fields.includes("ip")) assertEquals(r.fields.ip, sql);
          } else {
            // Only the width or the version rule can refuse these.
            assertMatch(r.reason, /characters long|app_version/);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  await t.step("deep nesting of objects and arrays", () => {
    fc.assert(fc.property(deepBody, (body) => void check(body)), { numRuns: 300 });
  });

  await t.step("256 KiB bodies", () => {
    fc.assert(
      fc.property(hugeBody, (body) => {
        assert(utf8Length(body) >= KIB256 - 8 && utf8Length(body) <= KIB256 + 8, `${utf8Length(body)} bytes`);
        check(body);
      }),
      { numRuns: 25 },
    );
  });

  assert(checked >= 10_000, `only ${checked} bodies were checked`);
});

// ---------------------------------------------------------------------------------------------------
// Through the real CLI
// ---------------------------------------------------------------------------------------------------

/** JSON text with every non-ASCII UTF-16 unit written as \uXXXX: what any SQS accepts. */
function asciiJson(value: unknown): string {
  return asciiJsonText(JSON.stringify(value));
}

// The characters SQS allows in a body (#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF);
// fauxqs checks UTF-16 units, so it also refuses astral characters that real SQS takes.
const SQS_REFUSES = /[^\t\n\r\x20-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/u;
// deno-lint-ignore no-control-regex
const FAUXQS_REFUSES = /[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD]/;

/** The pipeline's bodies: valid, hand-picked hostile, and generated hostile ones. */
function pipelineBodies(): string[] {
  const bodies: string[] = [];
  for (let i = 0; i < 250; i++) bodies.push(synthetic(i));
  for (const sql of SQL) {
    bodies.push(
      JSON.stringify({ user_id: sql, locale: sql.slice(0, 32), device_type: sql.slice(0, 32), ip: sql }),
    );
    bodies.push(
      JSON.stringify({ user_id: "u", device: { type: sql.slice(0, 32), id: sql }, app_version: sql }),
    );
  }
  bodies.push(
    asciiJson({ user_id: "nul\u0000inside" }),
    asciiJson({ user_id: "u", locale: "R\u0000U" }),
    asciiJson({ user_id: "nul-in-ip", ip: "10.0.0.1\u0000", device_id: "\u0000" }),
    asciiJson({ user_id: "lone\ud800" }),
    asciiJson({ user_id: "u", device_type: "\udc00ios" }),
    asciiJson({ user_id: "u", device_id: "\udbff" }),
    asciiJson({ user_id: "\u{1F600}".repeat(128), locale: "\u{1F600}".repeat(32) }),
    asciiJson({ user_id: "\u{1F600}".repeat(129) }),
    asciiJson({ user_id: "u", device_type: "\u{1F600}".repeat(33) }),
    JSON.stringify({ user_id: "é中\ue000\ufffd", locale: "ü" }),
    JSON.stringify({ user_id: "tab\tinside" }).replace("\\t", "\t"), // a raw tab inside a JSON string
    sizedBody("padding", "x", KIB256),
    sizedBody("user_id", "x", KIB256),
    sizedBody("ip", "é", KIB256),
    sizedBody("(raw)", "not json ", KIB256),
    `{"user_id":"u","x":${'{"a":'.repeat(31)}1${"}".repeat(31)}}`,
    `{"user_id":"u","x":${'{"a":'.repeat(32)}1${"}".repeat(32)}}`,
    `{"user_id":"u","ip":"10.0.0.9","x":${"[".repeat(50_000)}${"]".repeat(50_000)}}`,
    `{"ip":"10.0.0.9","x":${"[".repeat(500)}${"]".repeat(500)}}`,
    `{"ip":"10.0.0.9","x":${'{"a":'.repeat(500)}1${"}".repeat(500)}}`,
    "not json at all",
    '{"foo":"oops_wrong_ip","bar":"123"}',
    "[]",
    "null",
    '"just a string"',
    "42",
    '{"user_id":"u","device":{"type":"ios"},"device_type":"android"}',
    '{"user_id":"u","__proto__":{"ip":"1.2.3.4"},"constructor":{"prototype":1}}',
    '{"user_id":"ts","timestamp":1700000000}',
    '{"user_id":"ts-string","timestamp":"86399"}',
    '{"user_id":"ts-bad","timestamp":"soon"}',
    '{"user_id":"u","app_version":"2146.999.999"}',
    '{"user_id":"u","app_version":"2147"}',
    '{"user_id":"u","app_version":-1}',
    '{"user_id":"u","app_version":1.5}',
  );
  const generated = fc.sample(
    fc.oneof(
      { weight: 5, arbitrary: knownKeysObject.map((o) => ({ o })) },
      { weight: 2, arbitrary: nestedObject.map((o) => ({ o })) },
      { weight: 3, arbitrary: validLogin.map((o) => ({ o })) },
      { weight: 1, arbitrary: fc.jsonValue({ stringUnit: "binary" }).map((o) => ({ o })) },
      { weight: 2, arbitrary: rawBody.map((raw) => ({ raw })) },
      { weight: 1, arbitrary: deepBody.map((raw) => ({ raw })) },
    ),
    { numRuns: 2_000, seed: 0x6d617371 },
  );
  // About 1,000 bodies SQS takes, and a few it refuses (to check that it does).
  let refusable = 0;
  const seedable = () => bodies.filter((b) => !FAUXQS_REFUSES.test(b)).length;
  for (const [i, g] of generated.entries()) {
    if (seedable() >= 1_000) break;
    const body = "raw" in g ? g.raw : i % 3 === 0 ? JSON.stringify(g.o) : asciiJson(g.o); // raw Unicode at times
    if (body.length === 0) continue; // SQS requires a non-empty body
    if (FAUXQS_REFUSES.test(body) && ++refusable > 25) continue;
    bodies.push(body);
  }
  return bodies;
}

/** Sends each body with SendMessageBatch; returns the accepted bodies by message id and the refused ones. */
async function seed(client: SQSClient, queueUrl: string, bodies: string[]) {
  const accepted = new Map<string, string>();
  const refused: string[] = [];
  const batches: string[][] = [];
  let batchBytes = 0;
  for (const b of bodies) {
    const last = batches.at(-1);
    const bytes = utf8Length(b);
    if (!last || last.length === 10 || batchBytes + bytes > 200_000) {
      batches.push([b]);
      batchBytes = bytes;
    } else {
      last.push(b);
      batchBytes += bytes;
    }
  }
  for (const batch of batches) {
    const res = await client.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: batch.map((b, i) => ({ Id: `e${i}`, MessageBody: b })),
      }),
    );
    for (const ok of res.Successful ?? []) accepted.set(ok.MessageId!, batch[Number(ok.Id!.slice(1))]);
    for (const f of res.Failed ?? []) {
      assertEquals(f.Code, "InvalidMessageContents", f.Message);
      refused.push(batch[Number(f.Id!.slice(1))]);
    }
  }
  return { accepted, refused };
}

function countBy<T>(items: T[], key: (t: T) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (const i of items) m.set(key(i), (m.get(key(i)) ?? 0) + 1);
  return m;
}

Deno.test("masq run stores every hostile body as parseBody() decides: a literal row or a rejection", async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const client = sqsClient(sqs);
  try {
    const queueUrl = sqs.createQueue("fuzz-queue", { VisibilityTimeout: "60" });
    const bodies = pipelineBodies();
    const dayBefore = utcDate(Date.now());
    const { accepted, refused } = await seed(client, queueUrl, bodies);
    const dayAfter = utcDate(Date.now());

    // SQS refuses exactly the bodies with characters it cannot carry; those were checked above.
    for (const b of bodies) {
      assertEquals(FAUXQS_REFUSES.test(b), refused.includes(b), JSON.stringify(b).slice(0, 80));
      if (SQS_REFUSES.test(b)) assert(refused.includes(b));
      check(b);
    }
    const seeded = accepted.size;
    assertEquals(seeded, 1_000);
    assert(refused.length > 0, "some bodies were refused");

    // What each message must become.
    const masker = await createMasker(TEST_KEY);
    const expected = new Map<string, SinkRecord>();
    for (const [id, body] of accepted) {
      expected.set(
        id,
        await toRecord({ id, receiptHandle: "", body, sentTimestamp: Date.now(), receiveCount: 1 }, masker),
      );
    }
    const logins = [...expected.values()].filter((r) => r.kind === "login");
    const rejections = [...expected.values()].filter((r) => r.kind === "rejection");
    assert(
      logins.length >= 200 && rejections.length >= 200,
      `${logins.length} logins, ${rejections.length} rejections`,
    );

    const res = await runMasqCli(["run", "--concurrency", "4"], { queueUrl, databaseUrl: db.url });
    assertEquals(res.code, 0, res.stderr.slice(-2000));
    const s = res.summary;
    assert(s !== undefined, `no JSON summary on stdout: ${res.stdout.slice(-500)}`);
    assertEquals(s.received, seeded);
    assertEquals(s.inserted + s.rejected, seeded);
    assertEquals(s.duplicates, 0);
    assertEquals(s.inserted, logins.length);
    assertEquals(s.rejected, rejections.length);

    const n = async (sql: string, params?: unknown[]) => (await db.query<{ n: number }>(sql, params))[0].n;
    assertEquals(await n("SELECT count(*)::int AS n FROM user_logins"), s.inserted);
    assertEquals(await n("SELECT count(*)::int AS n FROM user_logins_rejected"), s.rejected);

    // Each message id: the outcome parseBody() gave it.
    const ledger = await db.query<{ message_id: string; outcome: string }>(
      "SELECT message_id, outcome FROM user_logins_ledger",
    );
    assertEquals(ledger.length, seeded);
    for (const row of ledger) {
      const want = expected.get(row.message_id);
      assert(want !== undefined, `unknown message id ${row.message_id}`);
      assertEquals(
        row.outcome,
        want.kind === "login" ? "inserted" : "rejected",
        accepted.get(row.message_id)!.slice(0, 200),
      );
    }

    // Each rejection: its reason and its redacted body.
    const rejectedRows = await db.query<{ message_id: string; reason: string; body_redacted: string | null }>(
      "SELECT message_id, reason, body_redacted FROM user_logins_rejected",
    );
    // A dead letter too large for the DLQ (which masq created at SQS's largest size) goes without its
    // redacted body.
    const letters = new Map<string, string>();
    for (const row of rejectedRows) {
      const want = expected.get(row.message_id)!;
      assert(want.kind === "rejection");
      const message = {
        id: row.message_id,
        receiptHandle: "",
        body: accepted.get(row.message_id)!,
        sentTimestamp: Date.now(),
        receiveCount: 1,
      };
      const built = await deadLetterFor(message, want.reason, want.bodyRedacted, queueUrl, undefined);
      const letter = built;
      const tooLarge = letterBytes(letter) > SQS_LARGEST_MESSAGE_BYTES;
      letters.set(row.message_id, tooLarge ? BODY_LEFT_OUT : letter.body);
      assertEquals(row.reason, want.reason);
      assertEquals(row.body_redacted, want.bodyRedacted);
    }

    // The logins: exactly the expected rows, values stored literally.
    const sameDay = dayBefore === dayAfter;
    const rowKey = (r: unknown[]) => JSON.stringify(sameDay ? r : r.slice(0, 6));
    const wantRows = countBy(logins, (l) => {
      if (l.kind !== "login") throw new Error("unreachable");
      const f = parseBody(accepted.get(l.messageId)!);
      const date = f.ok && f.fields.timestamp === null ? dayBefore : l.createDate;
      return rowKey([l.userId, l.deviceType, l.maskedIp, l.maskedDeviceId, l.locale, l.appVersion, date]);
    });
    const rows = await db.query<Record<string, unknown>>(
      "SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version, create_date FROM user_logins",
    );
    const gotRows = countBy(
      rows,
      (r) =>
        rowKey([
          r.user_id,
          r.device_type,
          r.masked_ip,
          r.masked_device_id,
          r.locale,
          r.app_version,
          r.create_date,
        ]),
    );
    assertEquals(gotRows, wantRows);

    // SQL-looking values came back as the very same text.
    for (const sql of SQL) {
      const want = logins.filter((l) =>
        l.kind === "login" && (l.userId === sql || l.locale === sql || l.deviceType === sql)
      );
      const got = await n(
        "SELECT count(*)::int AS n FROM user_logins WHERE user_id = $1 OR locale = $1 OR device_type = $1",
        [sql],
      );
      assertEquals(got, want.length, sql);
    }
    assert(await n("SELECT count(*)::int AS n FROM user_logins WHERE user_id = $1", [SQL[0]]) >= 1);

    // Nothing left in the queue; every other rejection in the dead-letter queue, as its redacted body.
    assertEquals(await queueDepth(client, queueUrl), { visible: 0, inFlight: 0 });
    const dlq = await receiveAll(client, `${queueUrl}-dlq`);
    assertEquals(dlq.length, letters.size);
    for (const m of dlq) {
      const id = m.MessageAttributes?.masq_message_id?.StringValue ?? "";
      const want = expected.get(id);
      assert(want?.kind === "rejection", `dead-letter message for ${id}`);
      assertEquals(m.Body, letters.get(id));
      assertEquals(m.MessageAttributes?.masq_reason?.StringValue, want.reason.slice(0, 1024));
    }
  } finally {
    client.destroy();
    await db.stop();
    await sqs.stop();
  }
});
