import fc from "fast-check";
import { assert, assertEquals } from "../support/assert.ts";
import { asciiJson, redactBody } from "../../lib/transform/redact.ts";
import { createMasker } from "../../lib/transform/mask.ts";

const masker = createMasker("masq-test-key-0123456789abcdef0123456789abcdef");

Deno.test("asciiJson() escapes every character outside \\x20-\\x7e as lowercase \\uXXXX, astral ones as two", () => {
  assertEquals(asciiJson('"rt-élève"'), '"rt-\\u00e9l\\u00e8ve"');
  assertEquals(asciiJson('"用户"'), '"\\u7528\\u6237"');
  assertEquals(asciiJson('"😀"'), '"\\ud83d\\ude00"');
  assertEquals(asciiJson('"a\u007fb"'), '"a\\u007fb"');
  assertEquals(asciiJson('"plain ascii ~"'), '"plain ascii ~"');
});

Deno.test("asciiJson() spells a user_id exactly as redactBody() stores it", () => {
  fc.assert(fc.property(fc.string({ unit: "binary", minLength: 1, maxLength: 40 }), (id) => {
    const body = redactBody({ user_id: id }, masker, Date.now())!;
    const kept = JSON.parse(body).user_id === id;
    // Where redactBody() keeps the id in the clear, forget's search text is a part of the stored body.
    return !kept || body === `{"user_id":${asciiJson(JSON.stringify(id))}}`;
  }));
  const body = redactBody({ user_id: "rt-élève", ip: "10.0.0.1" }, masker, Date.now())!;
  assert(body.includes(asciiJson(JSON.stringify("rt-élève")).slice(1, -1)));
});
