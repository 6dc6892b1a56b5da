/**
 * Why masq keys its tokens: a plain SHA-256 of an IPv4 address is undone by trying addresses. The test
 * recovers one from its /16 and prints the time and the extrapolation to all 2^32 addresses (what docs/threat-model.md
 * says a plain SHA-256 gives away); the same search finds nothing against masq's HMAC token without the key.
 */
import { createHash } from "node:crypto";
import { assertEquals } from "../support/assert.ts";
import { createMasker } from "../../lib/transform/mask.ts";

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/** Tries every address of a.b.0.0/16 against `target`; the address whose hash it is, if any. */
function searchSlash16(
  a: number,
  b: number,
  target: string,
  hash: (ip: string) => string,
): string | undefined {
  for (let c = 0; c < 256; c++) {
    for (let d = 0; d < 256; d++) {
      const ip = `${a}.${b}.${c}.${d}`;
      if (hash(ip) === target) return ip;
    }
  }
  return undefined;
}

Deno.test("a plain SHA-256 of an IPv4 address is recovered by enumerating its /16; masq's HMAC token is not", async () => {
  const secret = "203.0.113.77";
  const started = performance.now();
  const found = searchSlash16(203, 0, sha256(secret), sha256);
  const ms = performance.now() - started;
  assertEquals(found, secret);
  const perSecond = 65_536 / (ms / 1000);
  const fullSpaceSeconds = 2 ** 32 / perSecond;
  console.log(
    `naive SHA-256: ${secret} recovered from its hash by sweeping its /16 (65,536 candidates) in ` +
      `${ms.toFixed(0)} ms, ${Math.round(perSecond).toLocaleString("en-US")} hashes/s on one core; ` +
      `all 2^32 IPv4 addresses: ~${Math.round(fullSpaceSeconds)} s (${
        (fullSpaceSeconds / 60).toFixed(1)
      } min) ` +
      `on one core, a table of every address's hash is ~${Math.round((2 ** 32 * 36) / 2 ** 30)} GiB`,
  );

  // The same search against masq's token finds nothing: without the key, the token is not a function of
  // the address alone.
  const token = await (await createMasker("a-secret-hmac-key-nobody-outside-has")).ip(secret);
  assertEquals(searchSlash16(203, 0, token, sha256), undefined);
  assertEquals(searchSlash16(203, 0, token, (ip) => sha256(`ip:${ip}`)), undefined);
});
