import fc from "fast-check";
import { assert, assertEquals } from "../assert.ts";
import { createMasker } from "../../lib/transform/mask.ts";
import { MARKER, redactBody, scrubReason } from "../../lib/transform/redact.ts";

const mask = createMasker("0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0");
const IP = "199.172.111.135";
const DEVICE = "593-47-5928";

function redacted(body: unknown): Record<string, unknown> {
  return JSON.parse(redactBody(body, mask)!);
}

Deno.test("redactBody() hides the issue's cases: key case, nesting, odd names, arrays", () => {
  const body = {
    user_id: "u1",
    IP,
    Ip: IP,
    user: { ip: IP },
    device: [{ id: DEVICE }, { ip: IP }],
    client_ip: IP,
    x_forwarded_for: `${IP}, 10.0.0.1`,
    ips: [IP, "10.0.0.2"],
    Device_ID: DEVICE,
  };
  const out = redactBody(body, mask)!;
  for (const raw of [IP, DEVICE, "10.0.0.1", "10.0.0.2"]) assert(!out.includes(raw), `${raw} in ${out}`);
  const json = JSON.parse(out);
  assertEquals(json.user_id, "u1");
  // An address anywhere gets the token masked_ip would hold; so does a device id under device_id.
  assertEquals(json.IP, mask.ip(IP));
  assertEquals(json.user.ip, mask.ip(IP));
  assertEquals(json.device[0].id, mask.deviceId(DEVICE));
  assertEquals(json.Device_ID, mask.deviceId(DEVICE));
  assertEquals(json.ips, [mask.ip(IP), mask.ip("10.0.0.2")]);
  // Anything else is a token of its path: the same text under another path gets another token.
  assertEquals(json.x_forwarded_for, mask.token("body.x_forwarded_for", `${IP}, 10.0.0.1`));
  assertEquals(Object.keys(json), Object.keys(body), "the shape is kept");
});

Deno.test("redactBody() keeps allow-listed top-level fields only with a plausible, non-IP value", () => {
  const kept = {
    user_id: "u-1",
    device_type: "android",
    locale: "pt-BR",
    app_version: "2.3.0",
    timestamp: 1,
  };
  assertEquals(redacted(kept), kept);
  assertEquals(redacted({ ...kept, app_version: 3, timestamp: "1700000000" }).app_version, 3);
  assertEquals(redacted({ user_id: null, locale: null }), { user_id: null, locale: null });
  const ipLike = redacted({ user_id: "::1", locale: "10.0.0.1", device_type: "fe80::1%eth0" });
  assertEquals(ipLike, {
    user_id: mask.ip("::1"),
    locale: mask.ip("10.0.0.1"),
    device_type: mask.ip("fe80::1%eth0"),
  });
  // Not the allow-listed name exactly (case, nesting): not kept.
  const other = redacted({
    User_ID: "u",
    nested: { user_id: "u" },
    locale: "john@example.com",
    app_version: "x",
  });
  assertEquals(other.User_ID, mask.token("body.user_id", "u"));
  assertEquals((other.nested as Record<string, unknown>).user_id, mask.token("body.nested.user_id", "u"));
  assertEquals(other.locale, mask.token("body.locale", "john@example.com"));
  assertEquals(other.app_version, mask.token("body.app_version", "x"));
  // Wrong-typed allow-listed values are not kept either.
  assertEquals(redacted({ user_id: 12345678901 }).user_id, mask.token("body.user_id", "12345678901"));
  assertEquals(redacted({ timestamp: true }).timestamp, MARKER.boolean);
});

Deno.test("redactBody() replaces keys that are not plain identifiers, and keeps __proto__ an ordinary key", () => {
  const json = redacted({ [IP]: "a", "john@example.com": { "fe80::1": 1 }, __proto__x: 1 });
  const keys = Object.keys(json);
  assertEquals(keys.length, 3);
  for (const k of keys.slice(0, 2)) assert(/^key_[0-9a-f]{16}$/.test(k), k);
  assert(!JSON.stringify(json).includes("john") && !JSON.stringify(json).includes("fe80"));
  const proto = JSON.parse('{"__proto__": {"ip": "10.0.0.1"}}');
  const out = redactBody(proto, mask)!;
  assert(out.includes("__proto__") && !out.includes("10.0.0.1"), out);
});

Deno.test("redactBody() marks booleans, keeps null and empty strings, and cuts what is nested too deep", () => {
  assertEquals(redacted({ a: true, b: null, c: "", d: [false] }), {
    a: MARKER.boolean,
    b: null,
    c: "",
    d: [MARKER.boolean],
  });
  let deep: unknown = IP;
  for (let i = 0; i < 100; i++) deep = { a: deep };
  const out = redactBody({ deep }, mask)!;
  assert(out.includes(MARKER.tooDeep) && !out.includes(IP));
});

Deno.test("redactBody() is null for anything but a JSON object", () => {
  for (const body of [null, [1], "x", 1, true, undefined]) assertEquals(redactBody(body, mask), null);
});

/** Personal-looking values, each long or punctuated enough not to turn up inside a hex token by chance. */
const personal = fc.oneof(
  fc.ipV4(),
  fc.ipV6(),
  fc.ipV4().map((ip) => `::ffff:${ip}`),
  fc.tuple(
    fc.integer({ min: 100, max: 999 }),
    fc.integer({ min: 10, max: 99 }),
    fc.integer({ min: 1000, max: 9999 }),
  )
    .map(([a, b, c]) => `${a}-${b}-${c}`),
  fc.emailAddress(),
  fc.integer({ min: 1e11, max: 9e14 }),
);
const casedKey = fc.constantFrom(
  "ip",
  "IP",
  "Ip",
  "device_id",
  "DEVICE_ID",
  "client_ip",
  "x_forwarded_for",
  "ips",
)
  .chain((k) => fc.oneof(fc.constant(k), fc.string({ minLength: 1, maxLength: 12 })));

Deno.test("redactBody() never keeps a generated personal value, under any key, case, nesting or array", () => {
  const tree = fc.letrec<{ node: unknown }>((tie) => ({
    node: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      personal,
      fc.array(tie("node"), { maxLength: 4 }),
      fc.dictionary(casedKey, tie("node"), { maxKeys: 4 }),
    ),
  })).node;
  fc.assert(
    fc.property(fc.dictionary(casedKey, tree, { minKeys: 1, maxKeys: 6 }), (body) => {
      const out = redactBody(body, mask)!;
      const values: string[] = [];
      const collect = (x: unknown) => {
        if (typeof x === "string" || typeof x === "number") values.push(String(x));
        else if (x !== null && typeof x === "object") Object.values(x).forEach(collect);
      };
      collect(body);
      for (const v of values) {
        if (v.length >= 6) assert(!out.includes(v), `${v} kept in ${out}`);
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("scrubReason() removes quoted text and addresses, and keeps the rest", () => {
  assertEquals(
    scrubReason("value too long for type character varying(32)"),
    "value too long for type character varying(32)",
  );
  assertEquals(scrubReason(`bad "${IP}" and '${DEVICE}'`), 'bad "…" and "…"');
  // Identifiers PostgreSQL names as such stay; a value in the same spot does not.
  const check = 'new row for relation "user_logins" violates check constraint "no_evil"';
  assertEquals(scrubReason(check), check);
  assertEquals(scrubReason('constraint "john smith"'), 'constraint "…"');
  assertEquals(
    scrubReason('invalid input syntax for type integer: "abc"'),
    'invalid input syntax for type integer: "…"',
  );
  assertEquals(scrubReason(`from ${IP}, [::1]:80 and (fe80::1%eth0).`), "from [ip], [ip] and ([ip]).");
});

Deno.test("redactBody() writes pure ASCII JSON (SQS refuses U+FFFF; emulators refuse emoji), the same JSON", () => {
  const body = { user_id: "u\uffff\u{1F600}é" };
  const out = redactBody(body, mask)!;
  assert(/^[\x20-\x7e]*$/.test(out), out);
  assertEquals(JSON.parse(out).user_id, "u\uffff\u{1F600}é");
});
