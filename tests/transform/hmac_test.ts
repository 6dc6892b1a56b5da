import fc from "fast-check";
import { createHmac } from "node:crypto";
import { assertEquals } from "../support/assert.ts";
import { hmacSha256Hex } from "../../lib/transform/hmac.ts";

const enc = new TextEncoder();

Deno.test("hmacSha256Hex() reproduces the README's test vectors", () => {
  const mac = hmacSha256Hex(enc.encode("example-key"));
  assertEquals(mac("ip:199.172.111.135"), "68d4463fb5e0a1156f5c176f223bba4f379a141f611ba35b83f17521030f7ac6");
  assertEquals(
    mac("device_id:593-47-5928"),
    "b421683efce05ff72fdb54133d11ba12cad47319a70392196edd7fb1c643f4c7",
  );
  assertEquals(mac("ip:2001:db8::1"), "d19d09e9f25e57f20fa21bd6d9c107414b4b2ae5c9d623a9f8748faadc6297e1");
});

Deno.test("hmacSha256Hex() equals node:crypto's HMAC-SHA-256 for any key and text, across block edges", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 200 }),
      fc.oneof(
        fc.string({ maxLength: 300 }),
        fc.string({ unit: "grapheme", maxLength: 100 }),
        fc.string({ unit: "binary", maxLength: 100 }),
        fc.nat(130).map((n) => "x".repeat(n)),
      ),
      (key, text) => {
        assertEquals(hmacSha256Hex(key)(text), createHmac("sha256", key).update(text, "utf8").digest("hex"));
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("hmacSha256Hex() gives the same answers when one mac is reused over many texts", () => {
  const key = enc.encode("k".repeat(65));
  const mac = hmacSha256Hex(key);
  const texts = [
    "",
    "a",
    "é".repeat(40),
    "x".repeat(55),
    "x".repeat(56),
    "x".repeat(64),
    "y".repeat(1000),
    "a",
  ];
  for (const t of texts) {
    assertEquals(mac(t), createHmac("sha256", key).update(t).digest("hex"), `${t.length}`);
  }
});
