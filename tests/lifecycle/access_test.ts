import fc from "fast-check";
import { assert, assertEquals, assertThrows } from "../support/assert.ts";
import { ConfigError } from "../../lib/errors.ts";
import { checkReason, optionalReason, requireReason } from "../../lib/lifecycle/access.ts";

const INVISIBLE_REASON = /^--reason: must hold at least 3 visible letters or digits/;

Deno.test("checkReason() refuses reasons that show fewer than 3 letters or digits", () => {
  for (
    const reason of [
      "",
      "\u200b",
      "\u200b\u200b\u200b\u200b",
      "\u200e\u200f\u202a\u202e\u2066\u2069", // bidi controls
      "\ufeff\u2060\u00ad", // BOM, word joiner, soft hyphen
      "\u3164\u3164\u3164", // Hangul fillers: letters by category, blank on screen
      "\u115f\u1160\uffa0",
      "\u0001\u0002\u0003\u007f",
      "\t\n\r \u00a0\u3000",
      "...",
      "!?#@",
      "ab",
      "a\u200bb",
      "\u{e0061}\u{e0062}\u{e0063}", // tag letters
    ]
  ) {
    const err = assertThrows(() => checkReason(reason), ConfigError);
    assertEquals(INVISIBLE_REASON.test(err.message), true, `${JSON.stringify(reason)}: ${err.message}`);
  }
});

Deno.test("checkReason() keeps a reason as given, trimmed, in any script", () => {
  assertEquals(checkReason("  ticket 42: fraud review \n"), "ticket 42: fraud review");
  assertEquals(checkReason("Q3\u200b9"), "Q3\u200b9");
  assertEquals(checkReason("fraude présumée"), "fraude présumée");
  assertEquals(checkReason("工单 42"), "工单 42");
  assertEquals(checkReason("١٢٣"), "١٢٣");
  assertEquals(checkReason("x".repeat(1000)), "x".repeat(1000));
  assertEquals(
    checkReason("😀".repeat(997) + "a1b"),
    "😀".repeat(997) + "a1b",
    "1000 characters, 2000 UTF-16 units",
  );
});

Deno.test("checkReason() refuses what PostgreSQL cannot store or is too long, without repeating it", () => {
  assertThrows(() => checkReason("ticket\u0000 42"), ConfigError, "NUL");
  assertThrows(() => checkReason("ticket \ud800 42"), ConfigError, "well-formed");
  assertThrows(() => checkReason("y".repeat(1001)), ConfigError, "longer than 1000");
  fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 40 }), (text) => {
    try {
      checkReason(text);
    } catch (err) {
      const message = (err as Error).message;
      return text.trim().length < 4 || !message.includes(text.trim());
    }
    return true;
  }));
});

Deno.test("checkReason() refuses any text made only of format characters, controls and whitespace", () => {
  const invisible = fc.constantFrom(
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u202e",
    "\u0000".slice(1),
    "\u0007",
    " ",
    "\t",
    "\u3000",
    "\u3164",
  );
  const oneVisible = fc.constantFrom("a", "7", "é", "");
  fc.assert(fc.property(fc.array(fc.oneof(invisible, oneVisible), { maxLength: 30 }), (parts) => {
    const text = parts.join("");
    const visible = parts.filter((p) => ["a", "7", "é"].includes(p)).length;
    let ok: boolean;
    try {
      checkReason(text);
      ok = true;
    } catch {
      ok = false;
    }
    return ok === (visible >= 3);
  }));
});

Deno.test("requireReason() and optionalReason() apply checkReason() to a given reason", () => {
  assertThrows(() => requireReason(undefined, "recover"), ConfigError, "required");
  assertThrows(() => requireReason("\u200b", "recover"), ConfigError, "visible");
  assertEquals(requireReason(" ticket 1 ", "recover"), "ticket 1");
  assertEquals(optionalReason(undefined, "HMAC key rotation to k2"), "HMAC key rotation to k2");
  assertThrows(() => optionalReason("\u200b", "HMAC key rotation to k2"), ConfigError, "visible");
});

Deno.test("checkReason() refuses a reason holding an IP address in any spelling, and never repeats it", () => {
  for (
    const reason of [
      "lookup for 203.0.113.7",
      "ticket 9: [2001:db8::6f]:443",
      "user at 3405803881",
      "２０３.０.１１３.１ seen",
    ]
  ) {
    const err = assertThrows(() => checkReason(reason), ConfigError) as ConfigError;
    assertEquals(err.setting, "--reason");
    assert(!err.message.includes("203") && !err.message.includes("2001"), err.message);
  }
  assertEquals(checkReason("ticket 2026-12-03 no. 4471"), "ticket 2026-12-03 no. 4471");
});
