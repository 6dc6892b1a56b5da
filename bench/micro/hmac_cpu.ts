/**
 * CPU time and heap allocated per token of the HMAC in lib/transform/hmac.ts against the alternatives:
 * noble's streaming HMAC with one scratch state copied per token (masq's previous implementation), a fresh
 * noble `clone()` per token and node:crypto's `createHmac` per token. Tokens of distinct IPv4 addresses
 * (no cache in front).
 *
 *   deno run bench/micro/hmac_cpu.ts
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { createHmac } from "node:crypto";
import process from "node:process";
import { allocatedNow } from "../measure.ts";
import { hmacSha256Hex } from "../../lib/transform/hmac.ts";

const N = 300_000;
const key = new TextEncoder().encode("bench-only-key-0123456789abcdef0123456789abcdef");
const texts = Array.from({ length: N }, (_, i) => `ip:10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);

const allocated = () => allocatedNow() ?? NaN;

function perToken(mac: (text: string) => string): { us: number; bytes: number } {
  for (let i = 0; i < 20_000; i++) mac(texts[i]);
  const heap = allocated();
  const start = process.cpuUsage();
  for (const t of texts) mac(t);
  const used = process.cpuUsage(start);
  return { us: (used.user + used.system) / N, bytes: (allocated() - heap) / N };
}

/** masq's HMAC before: noble's streaming API, the keyed state copied into one scratch HMAC per token. */
function scratchState(key: Uint8Array): (text: string) => string {
  const keyed = hmac.create(sha256, key);
  const scratch = keyed.clone();
  const digest = new Uint8Array(keyed.outputLen);
  let bytes = new Uint8Array(256);
  return (text) => {
    if (bytes.length < text.length * 3) bytes = new Uint8Array(text.length * 3);
    const { written } = encoder.encodeInto(text, bytes);
    keyed._cloneInto(scratch);
    scratch.update(bytes.subarray(0, written));
    scratch.digestInto(digest);
    return bytesToHex(digest);
  };
}

const encoder = new TextEncoder();
const keyed = hmac.create(sha256, key);
const results = {
  "lib/transform/hmac.ts (noble's compression, padding and HMAC here)": perToken(hmacSha256Hex(key)),
  "noble HMAC, one scratch state per key (masq before)": perToken(scratchState(key)),
  "noble clone() per token": perToken((t) => bytesToHex(keyed.clone().update(encoder.encode(t)).digest())),
  "node:crypto createHmac per token": perToken((t) => createHmac("sha256", key).update(t).digest("hex")),
};
for (const [name, { us, bytes }] of Object.entries(results)) {
  console.log(`${us.toFixed(2).padStart(6)} µs/token ${bytes.toFixed(0).padStart(6)} B/token  ${name}`);
}
