import { assert, assertEquals, assertMatch, assertThrows } from "../support/assert.ts";
import {
  codePointLength,
  COLUMN_WIDTH,
  flatten,
  isPlainObject,
  type LoginFields,
  MAX_DEPTH,
  MAX_EPOCH,
  nestedDeeperThan,
  parseBody,
} from "../../lib/transform/parse.ts";
import { findAddress } from "../../lib/transform/address.ts";
import { ADDRESS_SPELLINGS, handWrittenBodies, NOT_ADDRESSES } from "../support/hostile_corpus.ts";

import fc from "fast-check";
import {
  assertFieldsOf,
  check,
  checkedBodies,
  deepBody,
  hugeBody,
  KIB256,
  KNOWN,
  knownKeysObject,
  nestedObject,
  rawBody,
  SQL,
  utf8Length,
  validLogin,
} from "../support/fuzz.ts";

const TAKE_HOME =
  '{"user_id": "424cdd21-063a-43a7-b91b-7ca1a833afae", "app_version": "2.3.0", "device_type": "android", "ip": "199.172.111.135", "locale": "RU", "device_id": "593-47-5928"}';

type Body = string | Record<string, unknown>;
const text = (body: Body) => (typeof body === "string" ? body : JSON.stringify(body));

/** The fields of a body that must parse. */
function accept(body: Body): LoginFields {
  const r = parseBody(text(body));
  if (!r.ok) throw new Error(`expected ${text(body).slice(0, 200)} to be accepted: ${r.reason}`);
  return r.fields;
}

/** The reason of a body that must be rejected. */
function reject(body: Body): string {
  const r = parseBody(text(body));
  if (r.ok) throw new Error(`expected ${text(body).slice(0, 200)} to be rejected`);
  assert(r.reason.length > 0, "a rejection has a reason");
  return r.reason;
}

/** A login body of `levels` nested objects in all: the login itself plus `levels - 1` under an unknown key. */
function nested(levels: number): string {
  if (levels === 1) return '{"user_id":"u"}';
  const below = levels - 1;
  return `{"user_id":"u","x":${'{"x":'.repeat(below - 1)}{"leaf":1}${"}".repeat(below - 1)}}`;
}

Deno.test("parseBody() accepts the take-home body with every field", () => {
  assertEquals(parseBody(TAKE_HOME), {
    ok: true,
    fields: {
      userId: "424cdd21-063a-43a7-b91b-7ca1a833afae",
      deviceType: "android",
      locale: "RU",
      ip: "199.172.111.135",
      deviceId: "593-47-5928",
      appVersion: 2003000,
      timestamp: null,
    },
  });
});

Deno.test("parseBody() sets absent and null optional fields to null", () => {
  const expected: LoginFields = {
    userId: "u1",
    deviceType: null,
    locale: null,
    ip: null,
    deviceId: null,
    appVersion: null,
    timestamp: null,
  };
  assertEquals(accept({ user_id: "u1" }), expected);
  assertEquals(
    accept({
      user_id: "u1",
      device_type: null,
      locale: null,
      ip: null,
      device_id: null,
      app_version: null,
      timestamp: null,
    }),
    expected,
  );
});

Deno.test("parseBody() flattens nested objects with underscores", () => {
  const f = accept({ user_id: "u", device: { type: "ios", id: "593-47-5928" }, app: { version: "3.7" } });
  assertEquals(f.deviceType, "ios");
  assertEquals(f.deviceId, "593-47-5928");
  assertEquals(f.appVersion, 3007000);
  assertEquals(accept('{"device":{"type":"ios"},"user_id":"u"}').deviceType, "ios");
  assertEquals(accept({ user: { id: "nested-user" } }).userId, "nested-user");
});

Deno.test("parseBody() rejects a key given both directly and through a nested object", () => {
  assertEquals(
    reject('{"user_id":"u","device":{"type":"ios"},"device_type":"android"}'),
    "device_type is given twice (directly and through a nested object)",
  );
  assertMatch(reject({ user_id: "u", user: { id: "v" } }), /^user_id is given twice/);
  assertMatch(reject({ user_id: "u", device_id: "a", device: { id: "b" } }), /^device_id is given twice/);
});

Deno.test("parseBody() ignores unknown keys, nested or not", () => {
  const f = accept({
    user_id: "u",
    foo: "x",
    bar: { baz: [1, 2, { ip: "1.2.3.4" }], deep: { deeper: { user_id: 5 } } },
    geo: { ip: "10.0.0.1" },
    ID: "x",
    User_Id: 3,
  });
  assertEquals(f, { ...accept({ user_id: "u" }) });
});

Deno.test("flatten() keeps only the given keys and treats arrays and kept keys as leaves", () => {
  assertEquals({
    ...flatten({ user_id: "u", device: { type: "ios" }, geo: { ip: "x" }, tags: [{ ip: "y" }] }),
  }, {
    user_id: "u",
    device_type: "ios",
  });
  const keep = new Set(["a_b_c", "list", "obj"]);
  assertEquals({ ...flatten({ a: { b: { c: 1 } }, list: [{ a: 1 }], obj: { x: 1 }, other: 2 }, keep) }, {
    a_b_c: 1,
    list: [{ a: 1 }],
    obj: { x: 1 },
  });
});

Deno.test("flatten() throws a RangeError beyond maxDepth and when a kept key arrives twice", () => {
  const keep = new Set(["a_b_c"]);
  assertEquals({ ...flatten({ a: { b: { c: 1 } } }, keep, 3) }, { a_b_c: 1 });
  assertThrows(() => flatten({ a: { b: { c: 1 } } }, keep, 2), RangeError, "nested deeper than 2 levels");
  assertThrows(() => flatten({ a_b_c: 1, a: { b: { c: 2 } } }, keep), RangeError, "a_b_c is given twice");
});

Deno.test("parseBody() rejects a body that is not JSON", () => {
  for (const body of ["", "not json at all", "{", '{"user_id":"u",}', "{'user_id':'u'}", "\u0000"]) {
    assertMatch(reject(body), /^body is not valid JSON( \(error at character \d+\))?$/);
  }
});

Deno.test("parseBody() does not echo a short body in the reason for invalid JSON", () => {
  const pii = "199.172.111.135";
  for (
    const body of [
      `x${pii}`,
      `'${pii}'`,
      `${pii}`,
      `{"ip":"${pii}" x}`,
      `{"ip":"${pii}`,
      `{"ip":"${pii}\n"}`,
      `{"user_id":"u","ip":"${pii}"} trailing`,
    ]
  ) {
    const reason = reject(body);
    assert(!reason.includes("199.172"), `reason ${JSON.stringify(reason)} echoes the body`);
    assert(!reason.includes("172.111"), `reason ${JSON.stringify(reason)} echoes the body`);
  }
});

Deno.test("parseBody() rejects JSON that is not an object and keeps no parsed copy", () => {
  const cases: Array<[string, string]> = [
    ["[]", "body must be a JSON object, got an array"],
    ['[{"user_id":"u"}]', "body must be a JSON object, got an array"],
    ['"u"', "body must be a JSON object, got a string"],
    ["42", "body must be a JSON object, got a number"],
    ["true", "body must be a JSON object, got a boolean"],
    ["null", "body must be a JSON object, got null"],
  ];
  for (const [body, reason] of cases) assertEquals(parseBody(body), { ok: false, reason });
});

Deno.test("parseBody() rejects a missing user_id and keeps the parsed body for the redacted copy", () => {
  assertEquals(parseBody('{"foo":"oops_wrong_ip","bar":"123"}'), {
    ok: false,
    reason: "user_id is missing",
    json: { foo: "oops_wrong_ip", bar: "123" },
  });
  assertEquals(reject("{}"), "user_id is missing");
});

Deno.test("parseBody() rejects an empty or whitespace-only user_id", () => {
  assertEquals(reject({ user_id: "" }), "user_id is empty");
  assertEquals(reject({ user_id: "   " }), "user_id is empty");
  assertEquals(reject({ user_id: "\t\n " }), "user_id is empty");
});

Deno.test("parseBody() rejects a user_id that is not a string", () => {
  assertEquals(reject({ user_id: 42 }), "user_id must be a string, got a number");
  assertEquals(reject({ user_id: true }), "user_id must be a string, got a boolean");
  assertEquals(reject({ user_id: null }), "user_id must be a string, got null");
  assertEquals(reject({ user_id: ["u"] }), "user_id must be a string, got an array");
  assertEquals(reject({ user_id: { id: "u" } }), "user_id must be a string, got an object");
});

Deno.test("parseBody() rejects stored text fields of the wrong type, naming the field", () => {
  for (const field of ["device_type", "locale"]) {
    assertEquals(reject({ user_id: "u", [field]: 5 }), `${field} must be a string or null, got a number`);
    assertEquals(
      reject({ user_id: "u", [field]: false }),
      `${field} must be a string or null, got a boolean`,
    );
    assertEquals(reject({ user_id: "u", [field]: ["x"] }), `${field} must be a string or null, got an array`);
    assertEquals(
      reject({ user_id: "u", [field]: { a: 1 } }),
      `${field} must be a string or null, got an object`,
    );
  }
});

Deno.test("parseBody() rejects masked fields of the wrong type, naming the field but not the value", () => {
  for (const field of ["ip", "device_id"]) {
    assertEquals(
      reject({ user_id: "u", [field]: 1994172111 }),
      `${field} must be a string or null, got a number`,
    );
    assertEquals(reject({ user_id: "u", [field]: true }), `${field} must be a string or null, got a boolean`);
    assertEquals(reject({ user_id: "u", [field]: [] }), `${field} must be a string or null, got an array`);
    assertEquals(reject({ user_id: "u", [field]: {} }), `${field} must be a string or null, got an object`);
  }
  // Through nesting too: device.id is device_id.
  assertEquals(
    reject({ user_id: "u", device: { id: 5935475928 } }),
    "device_id must be a string or null, got a number",
  );
});

Deno.test("parseBody() rejects an app_version of the wrong type", () => {
  assertMatch(
    reject({ user_id: "u", app_version: {} }),
    /^app_version must be a version string.*got an object$/,
  );
  assertMatch(
    reject({ user_id: "u", app_version: [] }),
    /^app_version must be a version string.*got an array$/,
  );
  assertMatch(
    reject({ user_id: "u", app_version: true }),
    /^app_version must be a version string.*got a boolean$/,
  );
  assertEquals(reject({ user_id: "u", app_version: -1 }), "app_version must not be negative");
  assertMatch(reject({ user_id: "u", app_version: 1.5 }), /got a fraction$/);
  assertMatch(reject({ user_id: "u", app_version: 1e20 }), /^app_version is not/);
});

Deno.test("parseBody() packs app_version strings and whole numbers, and rejects what does not fit", () => {
  assertEquals(accept({ user_id: "u", app_version: "0.96" }).appVersion, 96000);
  assertEquals(accept({ user_id: "u", app_version: "2146.999.999" }).appVersion, 2146999999);
  assertEquals(accept({ user_id: "u", app_version: 5 }).appVersion, 5000000);
  assertEquals(accept({ user_id: "u", app_version: 0 }).appVersion, 0);
  assertMatch(reject({ user_id: "u", app_version: "1.2.3.4" }), /^app_version is not "M", "M.m" or "M.m.p"/);
  assertMatch(reject({ user_id: "u", app_version: "2147" }), /major version above 2146/);
  assertMatch(reject({ user_id: "u", app_version: 2147 }), /major version above 2146/);
  assertMatch(reject({ user_id: "u", app_version: "" }), /^app_version is not/);
});

Deno.test("parseBody() never quotes a value in a reason", () => {
  const values = ["10.0.0.1", "59347", "1.2.3.4.5", "2147.1", "593-47-5928"];
  for (const value of values) {
    for (const field of ["user_id", "device_type", "locale", "ip", "device_id", "app_version", "timestamp"]) {
      for (const v of [value, Number(value), [value], { x: value }, `${value}\u0000`, value.repeat(40)]) {
        const r = parseBody(JSON.stringify({ user_id: "u", [field]: v }));
        if (!r.ok) assert(!r.reason.includes(value), `${field}: ${r.reason}`);
      }
    }
    const r = parseBody(`{"user_id":"u","ip":"${value}" oops`);
    assert(!r.ok && !r.reason.includes(value), "invalid JSON");
  }
});

Deno.test("parseBody() rejects an IP address in a column stored in the clear, naming the field and the kind", () => {
  for (const field of ["user_id", "device_type", "locale"]) {
    for (const ip of ["10.0.0.1", "::1", "::ffff:1.2.3.4", "fe80::1%eth0"]) {
      const kind = ip.includes(":") ? "an IPv6 address" : "an IPv4 address";
      assertEquals(
        reject({ user_id: "u", [field]: ip }),
        `${field} holds ${kind}, which masq never stores in the clear`,
      );
    }
  }
  assertEquals(
    reject({ user_id: "u", device_type: "3405803881" }),
    "device_type holds an IPv4 address written as an integer, which masq never stores in the clear",
  );
});

Deno.test("parseBody() rejects an address in any spelling, anywhere in a clear column, directly or nested", () => {
  for (const [trick, value] of ADDRESS_SPELLINGS) {
    for (const field of ["user_id", "device_type", "locale"] as const) {
      const bodies: Record<string, unknown>[] = [{ user_id: "u", [field]: value }];
      if (field === "user_id") bodies.push({ user: { id: value } });
      if (field === "device_type") bodies.push({ user_id: "u", device: { type: value } });
      for (const body of bodies) {
        const reason = reject(body);
        // Longer than the column: refused for its length, which comes first; else for the address.
        const kind = findAddress(value);
        assert(kind !== null, trick);
        assertEquals(
          reason,
          codePointLength(value) > COLUMN_WIDTH[field]
            ? `${field} is ${codePointLength(value)} characters long; the column holds ${COLUMN_WIDTH[field]}`
            : `${field} holds ${kind}, which masq never stores in the clear`,
          `${field}: ${trick}`,
        );
      }
    }
  }
});

Deno.test("parseBody() accepts user ids, device names and locales that are no address (UUIDs among them)", () => {
  for (const value of NOT_ADDRESSES) {
    assertEquals(accept({ user_id: value }).userId, value);
    if (codePointLength(value) <= 32) {
      assertEquals(accept({ user_id: "u", device_type: value, locale: value }).deviceType, value);
    }
  }
});

Deno.test("parseBody() refuses a pure-numeric user_id from 16,777,216 to 2^32 - 1, not a prefixed one", () => {
  const refused = "user_id holds an IPv4 address written as an integer, which masq never stores in the clear";
  for (const id of ["16777216", "123456789", "3405803881", "4294967295", "0xCB00716A", "id-123456789"]) {
    assertEquals(reject({ user_id: id }), refused, id);
  }
  for (const id of ["16777215", "1234567", "4294967296", "u123456789", "123456789u", "12345678901"]) {
    assertEquals(accept({ user_id: id }).userId, id);
  }
});

Deno.test("parseBody() gives ASCII reasons that quote no planted value, for every hostile body", () => {
  for (const { name, body, planted } of handWrittenBodies()) {
    const r = parseBody(body);
    if (r.ok) continue;
    assert(/^[\x20-\x7e]+$/.test(r.reason), `${name}: ${JSON.stringify(r.reason)}`);
    for (const value of planted) assert(!r.reason.includes(value), `${name}: ${r.reason}`);
  }
});

Deno.test("parseBody() rejects a timestamp of the wrong type", () => {
  for (const ts of [true, {}, [1700000000]]) {
    assertMatch(reject({ user_id: "u", timestamp: ts }), /^timestamp must be epoch seconds/);
  }
});

Deno.test("parseBody() reads timestamp as epoch seconds and falls back to null when it is not valid", () => {
  const ts = (t: unknown) => accept({ user_id: "u", timestamp: t }).timestamp;
  assertEquals(ts(1700000000), 1700000000);
  assertEquals(ts(1700000000.5), 1700000000.5);
  assertEquals(ts("1700000000"), 1700000000);
  assertEquals(ts(" 1700000000 "), 1700000000);
  assertEquals(ts(0), 0);
  assertEquals(ts(253402300799), 253402300799); // 9999-12-31T23:59:59Z
  for (const bad of ["abc", "", "  ", "17e", -5, "-1", 253402300800, 1e300, "Infinity"]) {
    assertEquals(ts(bad), null, `timestamp ${JSON.stringify(bad)}`);
  }
});

Deno.test("parseBody() maps an empty or blank ip and device_id to null", () => {
  for (const empty of ["", "  ", "\t"]) {
    const f = accept({ user_id: "u", ip: empty, device_id: empty });
    assertEquals([f.ip, f.deviceId], [null, null]);
  }
  const f = accept({ user_id: "u", ip: " 10.0.0.1 ", device_id: " d " });
  assertEquals([f.ip, f.deviceId], [" 10.0.0.1 ", " d "], "values are kept raw; the masker canonicalises");
});

Deno.test("parseBody() measures lengths in code points: user_id holds 128, device_type and locale 32", () => {
  const emoji = "\u{1F600}";
  assertEquals(emoji.length, 2);
  assertEquals(accept({ user_id: emoji.repeat(128) }).userId, emoji.repeat(128));
  assertEquals(
    reject({ user_id: emoji.repeat(129) }),
    "user_id is 129 characters long; the column holds 128",
  );
  assertEquals(accept({ user_id: "u".repeat(128) }).userId.length, 128);
  assertEquals(reject({ user_id: "u".repeat(129) }), "user_id is 129 characters long; the column holds 128");
  for (const [field, key] of [["device_type", "deviceType"], ["locale", "locale"]] as const) {
    assertEquals(accept({ user_id: "u", [field]: emoji.repeat(32) })[key], emoji.repeat(32));
    assertEquals(accept({ user_id: "u", [field]: "é".repeat(32) })[key], "é".repeat(32));
    assertEquals(
      reject({ user_id: "u", [field]: emoji.repeat(33) }),
      `${field} is 33 characters long; the column holds 32`,
    );
    assertEquals(
      reject({ user_id: "u", [field]: "x".repeat(33) }),
      `${field} is 33 characters long; the column holds 32`,
    );
  }
});

Deno.test("parseBody() does not limit the length of masked fields", () => {
  const f = accept({ user_id: "u", ip: "1".repeat(10_000), device_id: "d".repeat(10_000) });
  assertEquals([f.ip?.length, f.deviceId?.length], [10_000, 10_000]);
});

Deno.test("codePointLength() counts code points, a lone surrogate as one", () => {
  assertEquals(codePointLength(""), 0);
  assertEquals(codePointLength("abc"), 3);
  assertEquals(codePointLength("\u{1F600}\u{1F600}"), 2);
  assertEquals(codePointLength("a\ud800b"), 3);
  assertEquals(codePointLength("\udc00\ud800"), 2);
  assertEquals(codePointLength("\ud800"), 1);
});

Deno.test("parseBody() rejects NUL in stored columns but accepts it in masked fields", () => {
  assertEquals(
    reject({ user_id: "a\u0000b" }),
    "user_id contains a NUL character, which PostgreSQL cannot store",
  );
  assertEquals(
    reject({ user_id: "u", device_type: "ios\u0000" }),
    "device_type contains a NUL character, which PostgreSQL cannot store",
  );
  assertEquals(
    reject({ user_id: "u", locale: "\u0000" }),
    "locale contains a NUL character, which PostgreSQL cannot store",
  );
  const f = accept({ user_id: "u", ip: "10.0.0.1\u0000", device_id: "\u0000id" });
  assertEquals([f.ip, f.deviceId], ["10.0.0.1\u0000", "\u0000id"]);
});

Deno.test("parseBody() rejects lone surrogates in every text field", () => {
  for (const field of ["user_id", "device_type", "locale", "ip", "device_id"]) {
    for (const lone of ["\ud800", "x\udbff", "\udc00y", "\udfff\ud800"]) {
      const body = { user_id: "u", [field]: lone };
      assertEquals(reject(body), `${field} contains a lone UTF-16 surrogate (not valid Unicode)`);
      // Through JSON escapes as well as raw.
      assertEquals(reject(JSON.stringify(body).replace(/[\ud800-\udfff]/g, escapeUnit)), reject(body));
    }
  }
  // A proper pair is one character.
  assertEquals(accept({ user_id: "\ud83d\ude00" }).userId, "\u{1F600}");
});

function escapeUnit(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

Deno.test("parseBody() accepts nesting up to the depth limit and rejects one level more", () => {
  assertEquals(MAX_DEPTH, 32);
  assertEquals(accept(nested(1)).userId, "u");
  assertEquals(accept(nested(32)).userId, "u");
  const r = parseBody(nested(33));
  assert(!r.ok);
  assertEquals(r.reason, "body is nested deeper than 32 levels");
  assert(r.json !== undefined, "the parsed body is kept for the redacted copy");
});

Deno.test("parseBody() rejects 100,000 levels of nesting with a reason instead of crashing", () => {
  const depth = 100_000;
  assertEquals(
    reject(`${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`),
    "body is nested deeper than 32 levels",
  );
  // Arrays count as levels too, under any key.
  assertEquals(
    reject(`{"user_id":"u","x":${"[".repeat(depth)}${"]".repeat(depth)}}`),
    "body is nested deeper than 32 levels",
  );
  assertEquals(
    reject(`${"[".repeat(depth)}${"]".repeat(depth)}`),
    "body must be a JSON object, got an array",
  );
});

Deno.test("parseBody() counts arrays and objects anywhere in the body toward the depth limit", () => {
  const arrays = (n: number) => `{"user_id":"u","x":${"[".repeat(n)}1${"]".repeat(n)}}`;
  // The body is level 1: 31 arrays under it make 32 levels.
  assertEquals(accept(arrays(31)).userId, "u");
  assertEquals(reject(arrays(32)), "body is nested deeper than 32 levels");
  assertEquals(reject(arrays(2_000)), "body is nested deeper than 32 levels");
  const r = parseBody(arrays(2_000));
  assert(!r.ok && r.json !== undefined, "the parsed body is kept for the redacted copy");
  // Objects in arrays in objects, under an unknown key and under a known one.
  const mixed = (n: number) => `${'{"a":['.repeat(n)}1${"]}".repeat(n)}`;
  assertEquals(accept(`{"user_id":"u","m":${mixed(15)}}`).userId, "u");
  assertEquals(reject(`{"user_id":"u","m":${mixed(16)}}`), "body is nested deeper than 32 levels");
  assertEquals(
    reject(`{"user_id":"u","ip":${"[".repeat(40)}${"]".repeat(40)}}`),
    "body is nested deeper than 32 levels",
  );
});

Deno.test("nestedDeeperThan() counts levels of objects and arrays, the body being level 1", () => {
  assertEquals(nestedDeeperThan({}, 1), false);
  assertEquals(nestedDeeperThan({ a: 1, b: "x" }, 1), false);
  assertEquals(nestedDeeperThan({ a: [] }, 1), true);
  assertEquals(nestedDeeperThan({ a: [] }, 2), false);
  assertEquals(nestedDeeperThan({ a: [1, [2, { b: [] }]] }, 4), true);
  assertEquals(nestedDeeperThan({ a: [1, [2, { b: [] }]] }, 5), false);
});

Deno.test("parseBody() keeps SQL-looking values as plain text", () => {
  const sql = "'; DROP TABLE user_logins; --";
  const f = accept({ user_id: sql, device_type: "x' OR '1'='1", locale: "Robert'); --" });
  assertEquals([f.userId, f.deviceType, f.locale], [sql, "x' OR '1'='1", "Robert'); --"]);
});

Deno.test("MAX_EPOCH is the last second of the year 9999, the latest timestamp parseBody() takes", () => {
  assertEquals(new Date(MAX_EPOCH * 1000).toISOString(), "9999-12-31T23:59:59.000Z");
  const at = (timestamp: number) => parseBody(JSON.stringify({ user_id: "u", timestamp }));
  const last = at(MAX_EPOCH);
  assert(last.ok && last.fields.timestamp === MAX_EPOCH);
  const after = at(MAX_EPOCH + 1);
  assert(!after.ok || after.fields.timestamp === null);
});

Deno.test("parseBody() gives an invalid-JSON reason that echoes no part of the body", () => {
  for (
    const body of [
      `{"ip":'199.172.111.135'}`,
      `{"user_id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaa","ip":'199.172.111.135-long-secret'}`,
      `{"a":nul, "ip":"199.172.111.135"}`,
      `x199.172.111.135-and-more-text`,
    ]
  ) {
    const r = parseBody(body);
    assert(!r.ok);
    assert(!r.reason.includes("199.17"), `reason echoes the body: ${r.reason}`);
  }
});

Deno.test("parseBody() rejects a negative or fractional app_version with a reason naming app_version", () => {
  for (const v of [-1, 1.5]) {
    const r = parseBody(JSON.stringify({ user_id: "u", app_version: v }));
    assert(!r.ok);
    assert(r.reason.includes("app_version"), `reason does not name the field: ${r.reason}`);
  }
});

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

  assert(checkedBodies() >= 10_000, `only ${checkedBodies()} bodies were checked`);
});
