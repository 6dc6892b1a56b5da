/**
 * Hostile message bodies, generated (fast-check): random JSON and text, the known keys holding anything,
 * SQL-looking values, deep nesting, 256 KiB bodies; and check(), what parseBody() must do with each (never
 * throw; accept only what fits user_logins). The parse fuzz test and the CLI fuzz test share them.
 *
 * @module
 */
import fc from "fast-check";
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import {
  COLUMN_WIDTH,
  isPlainObject,
  type LoginFields,
  MAX_EPOCH,
  parseBody,
  type ParseResult,
} from "../../lib/transform/parse.ts";
import { findAddress } from "../../lib/transform/address.ts";
import { MAX_MAJOR, packAppVersion, unpackAppVersion } from "../../lib/transform/app_version.ts";

export const SQL = [
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

export const KNOWN = [
  "user_id",
  "device_type",
  "locale",
  "ip",
  "device_id",
  "app_version",
  "timestamp",
] as const;

/** Objects with the known keys (each present or not) holding anything, plus an unknown key or two. */
export const knownKeysObject = fc.record({
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
export const nestedObject = fc.record({
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
export const validLogin = fc.record({
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
export const rawBody = fc.oneof(
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
export const deepBody = fc.record({
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

export const KIB256 = 256 * 1024;

/** A body of exactly 256 KiB (UTF-8), made of one repeated unit inside a chosen field. */
export const hugeBody = fc.record({
  unit: fc.oneof(
    fc.string({ unit: "binary", minLength: 1, maxLength: 3 }),
    fc.constantFrom("x", "é", "\u{1F600}"),
  ),
  field: fc.constantFrom("padding", "user_id", "locale", "ip", "device_id", "app_version", "(raw)"),
}).map(({ unit, field }) => sizedBody(field, unit, KIB256));

export function utf8Length(s: string): number {
  return new TextEncoder().encode(s).length;
}

/** A login body whose `field` holds `unit` repeated to make the body `bytes` long (or just under). */
export function sizedBody(field: string, unit: string, bytes: number): string {
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

/** How many bodies check() has checked so far in this process. */
export function checkedBodies(): number {
  return checked;
}

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
export function check(body: string): ParseResult {
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
export function assertFieldsOf(o: Record<string, unknown>, f: LoginFields): void {
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
