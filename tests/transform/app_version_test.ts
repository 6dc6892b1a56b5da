import fc from "fast-check";
import { assert, assertEquals, assertThrows } from "../support/assert.ts";
import { MAX_MAJOR, packAppVersion, unpackAppVersion } from "../../lib/transform/app_version.ts";

Deno.test("packAppVersion() packs the contract's examples", () => {
  assertEquals(packAppVersion("2.3.0"), 2003000);
  assertEquals(packAppVersion("0.96"), 96000);
  assertEquals(packAppVersion("3.7"), 3007000);
  assertEquals(packAppVersion("5"), 5000000);
  assertEquals(packAppVersion("0"), 0);
  assertEquals(packAppVersion("0.0.1"), 1);
  assertEquals(packAppVersion("1.12.100"), 1012100);
});

Deno.test("packAppVersion() accepts the largest version that fits a PostgreSQL integer", () => {
  assertEquals(MAX_MAJOR, 2146);
  assertEquals(packAppVersion("2146.999.999"), 2146999999);
  assert(packAppVersion("2146.999.999") <= 2 ** 31 - 1);
});

Deno.test("packAppVersion() trims surrounding whitespace", () => {
  assertEquals(packAppVersion(" 1.2 "), 1002000);
  assertEquals(packAppVersion("\t3.7\n"), 3007000);
});

Deno.test("packAppVersion() rejects a major above 2146 with a RangeError that does not quote the value", () => {
  for (const v of ["2147", "9999.0.0"]) {
    const err = assertThrows(() => packAppVersion(v), RangeError, "major version above 2146");
    assert(!err.message.includes(v.split(".")[0]), err.message);
  }
});

Deno.test("packAppVersion() rejects malformed versions with a RangeError", () => {
  for (
    const bad of [
      "",
      " ",
      "a.b",
      "1.1000",
      "1.2.1000",
      "1.2.3.4",
      "12345",
      "1.",
      ".1",
      "1..2",
      "-1",
      "+1",
      "1.-2",
      "1e3",
      "0x10",
      "1.2.3-beta",
      "v1.2",
      "1,2",
      "１.２",
      "1 .2",
    ]
  ) {
    assertThrows(() => packAppVersion(bad), RangeError, "is not");
  }
});

Deno.test("packAppVersion() keeps the order of versions", () => {
  const part = (max: number) => fc.integer({ min: 0, max });
  const version = fc.tuple(part(MAX_MAJOR), part(999), part(999));
  fc.assert(
    fc.property(version, version, (a, b) => {
      const cmp = a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
      const packed = packAppVersion(a.join(".")) - packAppVersion(b.join("."));
      return Math.sign(cmp) === Math.sign(packed);
    }),
    { numRuns: 500 },
  );
});

Deno.test("unpackAppVersion() inverts packAppVersion() as M.m.p", () => {
  assertEquals(unpackAppVersion(2003000), "2.3.0");
  assertEquals(unpackAppVersion(96000), "0.96.0");
  assertEquals(unpackAppVersion(0), "0.0.0");
  assertEquals(unpackAppVersion(2146999999), "2146.999.999");
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: MAX_MAJOR }),
      fc.integer({ min: 0, max: 999 }),
      fc.integer({ min: 0, max: 999 }),
      (M, m, p) => unpackAppVersion(packAppVersion(`${M}.${m}.${p}`)) === `${M}.${m}.${p}`,
    ),
    { numRuns: 500 },
  );
});

Deno.test("unpackAppVersion() rejects negative and fractional values", () => {
  assertThrows(() => unpackAppVersion(-1), RangeError);
  assertThrows(() => unpackAppVersion(1.5), RangeError);
  assertThrows(() => unpackAppVersion(Number.NaN), RangeError);
});
