/**
 * HMAC-SHA-256 for many short messages under one key. The key's inner and outer pads are absorbed once
 * (an `@noble/hashes` HMAC, audited and widely used); each token clones that keyed state, so a token costs
 * only the message's own SHA-256 blocks: several times cheaper than node:crypto's `createHmac` (which sets
 * the key up again per call) or a Web Crypto promise per token. Checked against node:crypto by a property
 * test (tests/transform/hmac_test.ts) and by the README's test vectors.
 *
 * @module
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

const encoder = new TextEncoder();

/**
 * Returns `mac(text)` = hex(HMAC-SHA-256(key, UTF-8 of text)) for one key.
 *
 * @example
 * ```ts
 * import { hmacSha256Hex } from "./hmac.ts";
 * const mac = hmacSha256Hex(new TextEncoder().encode("example-key"));
 * mac("ip:199.172.111.135"); // "68d4463fb5e0a1156f5c176f223bba4f379a141f611ba35b83f17521030f7ac6"
 * ```
 */
export function hmacSha256Hex(key: Uint8Array): (text: string) => string {
  const keyed = hmac.create(sha256, key);
  return (text) => bytesToHex(keyed.clone().update(encoder.encode(text)).digest());
}
