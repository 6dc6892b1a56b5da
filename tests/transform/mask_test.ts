import { assert, assertEquals, assertMatch, assertThrows } from "../support/assert.ts";
import { canonicalIp, createMasker, looksLikeIp } from "../../lib/transform/mask.ts";
import fc from "fast-check";
import ipaddr from "ipaddr.js";

const KEY = "example-key";
const HEX64 = /^[0-9a-f]{64}$/;

/** hex(HMAC-SHA-256(key, text)), computed independently of the masker. */
async function hmacHex(key: string, text: string): Promise<string> {
  const enc = new TextEncoder();
  const k = await crypto.subtle.importKey("raw", enc.encode(key), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", k, enc.encode(text)));
  return Array.from(sig, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("createMasker() reproduces the README's test vectors", async () => {
  const mask = await createMasker(KEY);
  assertEquals(
    await mask.ip("199.172.111.135"),
    "68d4463fb5e0a1156f5c176f223bba4f379a141f611ba35b83f17521030f7ac6",
  );
  assertEquals(
    await mask.deviceId("593-47-5928"),
    "b421683efce05ff72fdb54133d11ba12cad47319a70392196edd7fb1c643f4c7",
  );
  assertEquals(
    await mask.ip("2001:0DB8::0001"),
    "d19d09e9f25e57f20fa21bd6d9c107414b4b2ae5c9d623a9f8748faadc6297e1",
  );
  assertEquals(await mask.ip("2001:db8::1"), await mask.ip("2001:0DB8::0001"));
});

Deno.test("createMasker() tokens are hex(HMAC-SHA-256(K, field + ':' + canonical text))", async () => {
  const mask = await createMasker(KEY);
  assertEquals(await mask.ip(" 10.0.0.1 "), await hmacHex(KEY, "ip:10.0.0.1"));
  assertEquals(await mask.ip("2001:DB8:0:0:0:0:0:1"), await hmacHex(KEY, "ip:2001:db8::1"));
  assertEquals(await mask.deviceId("  abc-123\t"), await hmacHex(KEY, "device_id:abc-123"));
  assertEquals(await mask.deviceId("ü\u{1F600}"), await hmacHex(KEY, "device_id:ü\u{1F600}"));
  const other = "another key, with ünïcödé";
  assertEquals(await (await createMasker(other)).ip("10.0.0.1"), await hmacHex(other, "ip:10.0.0.1"));
});

Deno.test("createMasker() tokens are 64 lowercase hex characters", async () => {
  const mask = await createMasker(KEY);
  for (const v of ["", "x", "199.172.111.135", "::1", "a\u0000b", "é".repeat(1000)]) {
    assertMatch(await mask.ip(v), HEX64);
    assertMatch(await mask.deviceId(v), HEX64);
  }
});

Deno.test("createMasker() is deterministic across calls and masker instances", async () => {
  const a = await createMasker(KEY);
  const b = await createMasker(KEY);
  for (const v of ["199.172.111.135", "593-47-5928", "fe80::1%eth0"]) {
    assertEquals(await a.ip(v), await a.ip(v));
    assertEquals(await a.ip(v), await b.ip(v));
    assertEquals(await a.deviceId(v), await b.deviceId(v));
  }
});

Deno.test("createMasker() gives different tokens under different keys", async () => {
  const a = await createMasker(KEY);
  const b = await createMasker("example-key2");
  assert(await a.ip("199.172.111.135") !== await b.ip("199.172.111.135"));
  assert(await a.deviceId("593-47-5928") !== await b.deviceId("593-47-5928"));
});

Deno.test("createMasker() separates domains: an ip and a device_id of the same text differ", async () => {
  const mask = await createMasker(KEY);
  for (const v of ["199.172.111.135", "593-47-5928", "x"]) {
    assert(await mask.ip(v) !== await mask.deviceId(v), v);
  }
});

Deno.test("createMasker() trims device ids but keeps their inner text and case", async () => {
  const mask = await createMasker(KEY);
  assertEquals(await mask.deviceId(" 593-47-5928\n"), await mask.deviceId("593-47-5928"));
  assert(await mask.deviceId("ABC") !== await mask.deviceId("abc"));
  assert(await mask.deviceId("a b") !== await mask.deviceId("ab"));
});

Deno.test("createMasker() gives distinct values distinct tokens", async () => {
  const mask = await createMasker(KEY);
  const tokens = new Set<string>();
  for (let i = 0; i < 256; i++) tokens.add(await mask.ip(`10.0.0.${i}`));
  assertEquals(tokens.size, 256);
});

Deno.test("createMasker() refuses an empty key with a RangeError", () => {
  assertThrows(() => createMasker(""), RangeError, "must not be empty");
});

Deno.test("canonicalIp() trims IPv4 addresses and otherwise keeps them", () => {
  assertEquals(canonicalIp("199.172.111.135"), "199.172.111.135");
  assertEquals(canonicalIp(" 10.0.0.1 "), "10.0.0.1");
  assertEquals(canonicalIp("\t10.0.0.1\n"), "10.0.0.1");
});

Deno.test("canonicalIp() writes IPv6 in RFC 5952 form", () => {
  assertEquals(canonicalIp("2001:0DB8::0001"), "2001:db8::1");
  assertEquals(canonicalIp(" 2001:0DB8:0:0:0:0:0:0001 "), "2001:db8::1");
  assertEquals(canonicalIp("2001:DB8:0:0:1:0:0:1"), "2001:db8::1:0:0:1"); // first of equal zero runs
  assertEquals(canonicalIp("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1"); // the longest zero run
  assertEquals(canonicalIp("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1"); // one zero field stays
  assertEquals(canonicalIp("0:0:0:0:0:0:0:0"), "::");
  assertEquals(canonicalIp("0:0:0:0:0:0:0:1"), "::1");
  assertEquals(canonicalIp("FFFF::"), "ffff::");
});

Deno.test("canonicalIp() turns an IPv4-mapped IPv6 address, in any spelling, into its IPv4 address", () => {
  assertEquals(canonicalIp("::FFFF:192.0.2.1"), "192.0.2.1");
  assertEquals(canonicalIp("::ffff:c000:0201"), "192.0.2.1");
  assertEquals(canonicalIp("0:0:0:0:0:FFFF:C000:201"), "192.0.2.1");
  assertEquals(canonicalIp(" ::ffff:199.172.111.135 "), "199.172.111.135");
  // IPv4-compatible (deprecated) and NAT64 addresses are other addresses: they stay IPv6.
  assertEquals(canonicalIp("::192.0.2.1"), "::c000:201");
  assertEquals(canonicalIp("64:ff9b::192.0.2.1"), "64:ff9b::c000:201");
});

Deno.test("canonicalIp() lowercases a zone id and canonicalises the address before it", () => {
  assertEquals(canonicalIp("fe80::1%eth0"), "fe80::1%eth0");
  assertEquals(canonicalIp("FE80:0:0:0:0:0:0:1%eth0"), "fe80::1%eth0");
  assertEquals(canonicalIp("fe80::1%Eth0"), "fe80::1%eth0");
});

Deno.test("createMasker() gives one address one token: IPv4-mapped, zone case, IPv6 spelling", () => {
  const mask = createMasker(KEY);
  const v4 = "68d4463fb5e0a1156f5c176f223bba4f379a141f611ba35b83f17521030f7ac6";
  assertEquals(mask.ip("::ffff:199.172.111.135"), v4); // the README's test vector
  assertEquals(mask.ip("::FFFF:C7AC:6F87"), v4);
  assertEquals(mask.ip("fe80::1%ETH0"), mask.ip("FE80:0::1%eth0"));
});

Deno.test("createMasker() token() is hex(HMAC-SHA-256(K, domain + ':' + text)) and its ip() is token('ip', ..)", async () => {
  const mask = createMasker(KEY, "k7");
  assertEquals(mask.keyId, "k7");
  assertEquals(createMasker(KEY).keyId, "k1");
  assertEquals(mask.token("body.user.ip", "x"), await hmacHex(KEY, "body.user.ip:x"));
  assertEquals(mask.ip("10.0.0.1"), mask.token("ip", "10.0.0.1"));
  assertEquals(mask.deviceId(" d "), mask.token("device_id", "d"));
});

Deno.test("createMasker() gives each value its own token however often and in whatever order it is asked", async () => {
  // One masker reuses its hashing state and buffers from token to token: nothing may carry over.
  const mask = createMasker(KEY, "k1");
  const values = [
    ...Array.from({ length: 10 }, (_, i) => `10.0.0.${i}`),
    "2001:db8::1",
    "1".repeat(300),
    "é".repeat(100),
  ];
  const first = values.map((v) => mask.ip(v));
  const again = [...values].reverse().map((v) => mask.ip(v)).reverse();
  assertEquals(again, first);
  for (const [i, v] of values.entries()) assertEquals(first[i], await hmacHex(KEY, `ip:${v}`));
});

Deno.test("looksLikeIp() recognises IPv4, IPv6 in any spelling, zones, brackets and ports", () => {
  for (
    const ip of [
      "10.0.0.1",
      " 199.172.111.135 ",
      "::1",
      "::FFFF:1.2.3.4",
      "fe80::1%eth0",
      "[2001:db8::1]:443",
      "1.2.3.4:80",
      "2001:0DB8:0:0:0:0:0:1",
    ]
  ) {
    assert(looksLikeIp(ip), ip);
  }
  for (
    const not of [
      "2.3.0",
      "1.2.3",
      "RU",
      "android",
      "593-47-5928",
      "1700000000",
      "",
      "1.2.3.4.5",
      "256.1.1.1",
      "not:an:ip",
    ]
  ) {
    assert(!looksLikeIp(not), not);
  }
});

Deno.test("canonicalIp() keeps text that is not an IP address, trimmed", () => {
  for (
    const [input, out] of [
      ["not:an:ip", "not:an:ip"],
      [" 1:2:3:4:5:6:7:8:9 ", "1:2:3:4:5:6:7:8:9"],
      ["GGGG::1", "GGGG::1"],
      ["  oops_wrong_ip ", "oops_wrong_ip"],
      ["", ""],
      ["   ", ""],
      ["010.0.0.1", "010.0.0.1"],
    ]
  ) {
    assertEquals(canonicalIp(input), out, JSON.stringify(input));
  }
});

/** What ipaddr.js makes of an address: the oracle for canonicalIp()'s own reading of hex-group spellings. */
function ipaddrCanonical(text: string): string {
  if (!ipaddr.IPv6.isValid(text)) return text;
  const parsed = ipaddr.IPv6.parse(text);
  return parsed.isIPv4MappedAddress() ? parsed.toIPv4Address().toString() : parsed.toRFC5952String();
}

Deno.test("canonicalIp() reads every hex-group spelling as ipaddr.js does, valid or not (property)", () => {
  const group = fc.oneof(
    fc.constantFrom("0", "00", "0000", "ffff", "FFFF", "1", "db8", "DB8"),
    fc.stringMatching(/^[0-9A-Fa-f]{1,5}$/),
  );
  const address = fc.array(fc.oneof({ weight: 3, arbitrary: group }, fc.constant("")), {
    minLength: 1,
    maxLength: 10,
  }).map((parts) => parts.join(":"));
  const anyText = fc.stringMatching(/^[0-9a-fA-F:]{1,40}$/);
  fc.assert(
    fc.property(fc.oneof(address, anyText), (text) => {
      assertEquals(canonicalIp(text), ipaddrCanonical(text), text);
    }),
    { numRuns: 20_000 },
  );
});

Deno.test("canonicalIp() of eight random groups, in any spelling, is ipaddr.js's RFC 5952 text (property)", () => {
  const groups = fc.array(
    fc.oneof(fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff })),
    {
      minLength: 8,
      maxLength: 8,
    },
  );
  fc.assert(
    fc.property(groups, fc.boolean(), fc.boolean(), (g, upper, pad) => {
      let text = g.map((n) => (pad ? n.toString(16).padStart(4, "0") : n.toString(16))).join(":");
      if (upper) text = text.toUpperCase();
      assertEquals(canonicalIp(text), ipaddrCanonical(text), text);
      const compressed = ipaddr.IPv6.parse(text).toRFC5952String();
      assertEquals(canonicalIp(compressed), ipaddrCanonical(text), compressed);
    }),
    { numRuns: 20_000 },
  );
});

Deno.test("canonicalIp() keeps the IPv4-compatible ::192.0.2.1 apart from the IPv4-mapped ::ffff:192.0.2.1", () => {
  // ::192.0.2.1 is ::c000:201 (RFC 4291 §2.5.5.1), a different address from ::ffff:192.0.2.1.
  assertEquals(canonicalIp("::192.0.2.1"), canonicalIp("::c000:201"));
  assert(canonicalIp("::192.0.2.1") !== canonicalIp("::ffff:192.0.2.1"));
});
