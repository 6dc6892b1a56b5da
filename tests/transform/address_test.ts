import fc from "fast-check";
import ipaddr from "ipaddr.js";
import { assert, assertEquals } from "../support/assert.ts";
import { addressText, findAddress } from "../../lib/transform/address.ts";
import {
  ADDRESS_SPELLINGS,
  inScript,
  NOT_ADDRESSES,
  plantedAddress,
  SCRIPTS,
} from "../support/hostile_corpus.ts";

Deno.test("findAddress() finds every hand-written spelling, alone and inside other text", () => {
  for (const [trick, value] of ADDRESS_SPELLINGS) {
    assert(findAddress(value) !== null, `${trick}: ${JSON.stringify(value)}`);
    assert(findAddress(`seen at ${value}, twice`) !== null, `${trick} inside text`);
    assert(findAddress(`x-${value}-y`) !== null, `${trick} between dashes`);
  }
});

Deno.test("findAddress() takes no user id, version, device name, locale, time or MAC address for one", () => {
  for (const value of NOT_ADDRESSES) assertEquals(findAddress(value), null, JSON.stringify(value));
});

Deno.test("findAddress() names the kind of address it found", () => {
  assertEquals(findAddress("ip=203.0.113.100"), "an IPv4 address");
  assertEquals(findAddress("0313.0.0161.0152"), "an IPv4 address with hex or octal parts");
  assertEquals(findAddress("0xcb.0x0.0x71.0x6a"), "an IPv4 address with hex or octal parts");
  assertEquals(findAddress("203.0.29036"), "an IPv4 address in a short form (a.b.c or a.b)");
  assertEquals(findAddress("203.7340032"), "an IPv4 address in a short form (a.b.c or a.b)");
  assertEquals(findAddress("3405803881"), "an IPv4 address written as an integer");
  assertEquals(findAddress("0xCB00716A"), "an IPv4 address written as an integer");
  assertEquals(findAddress("031300070551"), "an IPv4 address written as an integer");
  assertEquals(findAddress("2001:db8::6f/64"), "an IPv6 address");
  assertEquals(findAddress("[FE80::1%eth0]:80"), "an IPv6 address");
  assertEquals(findAddress(""), null);
});

Deno.test("findAddress() reads a standalone integer as an address only from 2^24 up to 2^32", () => {
  assertEquals(findAddress("16777215"), null, "2^24 - 1 maps into 0.0.0.0/8");
  assertEquals(findAddress("16777216"), "an IPv4 address written as an integer");
  assertEquals(findAddress("4294967295"), "an IPv4 address written as an integer");
  assertEquals(findAddress("4294967296"), null, "beyond 32 bits");
  assertEquals(findAddress("0xffffff"), null);
  assertEquals(findAddress("0x1000000"), "an IPv4 address written as an integer");
  // Standalone: neither neighbour a letter or a digit.
  for (const text of ["u123456789", "123456789u", "x3405803881", "3405803881\u00e9", "\u0436123456789"]) {
    assertEquals(findAddress(text), null, text);
  }
  for (const text of ["u-123456789", "id 123456789", "(123456789)", "123456789.", "user_123456789"]) {
    assertEquals(findAddress(text), "an IPv4 address written as an integer", text);
  }
  // Part of a dotted form (a decimal fraction, say), an integer is not read on its own.
  assertEquals(findAddress("0.3405803881"), null);
});

Deno.test("findAddress() takes a dotted form of fewer than four parts only with a last part above 255 or hex", () => {
  assertEquals(findAddress("1.2.3"), null);
  assertEquals(findAddress("1.2.255"), null);
  assertEquals(findAddress("1.2.256"), "an IPv4 address in a short form (a.b.c or a.b)");
  assertEquals(findAddress("1.2.65535"), "an IPv4 address in a short form (a.b.c or a.b)");
  assertEquals(findAddress("1.2.65536"), null, "a.b.c holds 16 bits in c");
  assertEquals(findAddress("1.16777215"), "an IPv4 address in a short form (a.b.c or a.b)");
  assertEquals(findAddress("1.16777216"), null, "a.b holds 24 bits in b");
  assertEquals(findAddress("256.1.300"), null);
  assertEquals(findAddress("1.0x2"), "an IPv4 address in a short form (a.b.c or a.b)");
  // Four parts each at most 255, anywhere in a longer dotted run.
  assertEquals(findAddress("9.1.2.3.4"), "an IPv4 address");
  assertEquals(findAddress("256.1.2.3"), null);
  assertEquals(findAddress("1.2.3.256"), null);
});

Deno.test("findAddress() keeps its IPv6 exclusions narrow: scopes, MAC and EUI-64 notation, times", () => {
  assertEquals(findAddress("std::vector"), null, "no digit and fewer than three groups");
  assertEquals(findAddress("a::b"), null);
  assertEquals(findAddress("a::b:c"), "an IPv6 address", "three groups");
  assertEquals(findAddress("a::1"), "an IPv6 address", "a digit");
  assertEquals(findAddress("00:1a:2b:3c:4d:5e:6f:70"), null, "eight two-digit groups: EUI-64 notation");
  assertEquals(findAddress("00:1a:2b:3c:4d:5e:6f:700"), "an IPv6 address");
  assertEquals(findAddress("12:30:45"), null);
  assertEquals(findAddress("1:2:3:4:5:6:7"), null, "seven groups and no ::");
  assertEquals(findAddress("1:2:3:4:5:6:7:8"), "an IPv6 address");
  assertEquals(findAddress("1:2:3:4:5:6:7:8:9"), "an IPv6 address", "eight of its nine groups are one");
});

/** Whether an inet_aton spelling falls under the documented cut-offs (so findAddress() may pass it). */
function belowCutOff(spelling: string): boolean {
  const parts = spelling.split(".");
  const value = (
    p: string,
  ) => (/^0x/i.test(p) ? parseInt(p, 16) : /^0[0-7]+$/.test(p) ? parseInt(p, 8) : Number(p));
  if (parts.length === 1) return value(parts[0]) < 2 ** 24;
  if (parts.length < 4) return value(parts.at(-1)!) <= 255 && !parts.some((p) => /^0x/i.test(p));
  return false;
}

Deno.test("findAddress() finds every address fast-check generates, in inet_aton's and IPv6's spellings", () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.ipV4(), fc.ipV4Extended(), fc.ipV6()),
      fc.constantFrom("", "at ", "("),
      (ip, pre) => {
        const found = findAddress(`${pre}${ip}`);
        if (ip.includes(":")) {
          assert(ipaddr.IPv6.isValid(ip.split("%")[0]), ip);
          // The documented exclusions: no decimal digit and fewer than three groups (`::a`, or `::` alone),
          // and eight two-digit groups (EUI-64 notation; such an address lies in ::/8, no host's).
          const narrow = !/\d/.test(ip) && ip.split(":").filter((g) => g !== "").length < 3;
          const eui64 = /^[0-9a-f]{2}(?::[0-9a-f]{2}){7}$/i.test(ip);
          assert(found !== null || narrow || eui64, ip);
        } else {
          assert(found !== null || belowCutOff(ip), ip);
        }
      },
    ),
    { numRuns: 5_000 },
  );
});

Deno.test("findAddress() finds every generated spelling: scripts, dot-likes, invisible characters, decorations", () => {
  fc.assert(
    fc.property(plantedAddress, fc.constantFrom("", "user ", "x-", "\u00e9 "), (a, pre) => {
      assert(findAddress(`${pre}${a.spelled}`) !== null, JSON.stringify(a.spelled));
    }),
    { numRuns: 3_000 },
  );
});

Deno.test("addressText() maps the digits of every script ICU knows to ASCII digits", () => {
  for (const ns of Intl.supportedValuesOf("numberingSystem")) {
    const digits = inScript("0123456789", ns);
    // Only the numbering systems whose digits are decimal digits (\p{Nd}); hanidec's are not.
    if (![...digits].every((d) => /\p{Nd}/u.test(d))) continue;
    assertEquals(addressText(digits), "0123456789", ns);
  }
  for (const ns of SCRIPTS) assertEquals(addressText(inScript("203.0.113.1", ns)), "203.0.113.1", ns);
});

Deno.test("addressText() drops invisible characters and maps dot-like and colon-like ones", () => {
  assertEquals(addressText("\u200b2\u206003\u00ad.\ufeff0"), "203.0");
  assertEquals(addressText("203\u20240\uff0e113\u30021\u00b72"), "203.0.113.1.2");
  assertEquals(addressText("2001\uff1adb8\u2236\u22361"), "2001:db8::1");
  assertEquals(addressText("\uff12\uff10\uff13 UA"), "203 ua");
  assertEquals(addressText("2\u0300\u20dd3"), "23");
  assertEquals(addressText("2\u00010\u007f3"), "203", "control characters");
  assertEquals(addressText("u\u{e0032}\u{e002e}\u{e0031}"), "u2.1", "tag characters read as their ASCII");
});

Deno.test("findAddress() takes linear time on long hostile text", () => {
  for (
    const text of [
      "1.".repeat(50_000),
      "1:".repeat(50_000),
      "a:".repeat(50_000),
      "1".repeat(100_000),
      "0x".repeat(50_000),
      ":".repeat(100_000),
      "\u0661.".repeat(50_000),
      "12345:".repeat(20_000),
    ]
  ) {
    const start = performance.now();
    findAddress(text);
    const ms = performance.now() - start;
    assert(ms < 2_000, `${ms.toFixed(0)} ms for ${JSON.stringify(text.slice(0, 12))}...`);
  }
});
