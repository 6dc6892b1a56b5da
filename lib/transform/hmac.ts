/**
 * HMAC-SHA-256 for many short messages under one key, in plain JavaScript. The key's inner and outer
 * padded blocks are compressed once; each token then costs two or three SHA-256 block compressions and no
 * object allocation beyond its hex string: several times cheaper per token than node:crypto's `createHmac`
 * (which sets the key up again per call) or a Web Crypto promise. Checked against node:crypto by a
 * property test (tests/transform/hmac_test.ts) and by the README's test vectors.
 *
 * @module
 */
import { createHash } from "node:crypto";

const K = new Int32Array([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);
const IV = new Int32Array([
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
]);

const W = new Int32Array(64);

/** One SHA-256 compression of the 64 bytes at `bytes[off..off+64]` into `state`. */
function compress(state: Int32Array, bytes: Uint8Array, off: number): void {
  for (let i = 0; i < 16; i++) {
    const j = off + i * 4;
    W[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
  }
  for (let i = 16; i < 64; i++) {
    const a = W[i - 15], b = W[i - 2];
    const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
    const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
    W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
  }
  let a = state[0], b = state[1], c = state[2], d = state[3];
  let e = state[4], f = state[5], g = state[6], h = state[7];
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = (state[0] + a) | 0;
  state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0;
  state[3] = (state[3] + d) | 0;
  state[4] = (state[4] + e) | 0;
  state[5] = (state[5] + f) | 0;
  state[6] = (state[6] + g) | 0;
  state[7] = (state[7] + h) | 0;
}

const tail = new Uint8Array(128);

/**
 * Finishes a hash whose first 64 bytes (one block) are already in `state`: compresses `data[0..len]` and
 * the padding, leaving the digest in `state`.
 */
function finish(state: Int32Array, data: Uint8Array, len: number): void {
  let off = 0;
  for (; off + 64 <= len; off += 64) compress(state, data, off);
  const rest = len - off;
  tail.fill(0);
  tail.set(data.subarray(off, len));
  tail[rest] = 0x80;
  const blocks = rest < 56 ? 1 : 2;
  // Bit length of everything hashed, including the key block: (64 + len) * 8, as a 64-bit big-endian number.
  const bits = (64 + len) * 8;
  const end = blocks * 64;
  const hi = Math.floor(bits / 0x100000000);
  tail[end - 8] = hi >>> 24;
  tail[end - 7] = hi >>> 16;
  tail[end - 6] = hi >>> 8;
  tail[end - 5] = hi;
  tail[end - 4] = bits >>> 24;
  tail[end - 3] = bits >>> 16;
  tail[end - 2] = bits >>> 8;
  tail[end - 1] = bits;
  compress(state, tail, 0);
  if (blocks === 2) compress(state, tail, 64);
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const encoder = new TextEncoder();

/**
 * Returns `hmacHex(text)` = hex(HMAC-SHA-256(key, UTF-8 of text)) for one key.
 *
 * @example
 * ```ts
 * import { hmacSha256Hex } from "./hmac.ts";
 * const mac = hmacSha256Hex(new TextEncoder().encode("example-key"));
 * mac("ip:199.172.111.135"); // "68d4463fb5e0a1156f5c176f223bba4f379a141f611ba35b83f17521030f7ac6"
 * ```
 */
export function hmacSha256Hex(key: Uint8Array): (text: string) => string {
  const block = new Uint8Array(64);
  block.set(key.length > 64 ? createHash("sha256").update(key).digest() : key);
  const pad = new Uint8Array(64);
  const innerStart = IV.slice();
  for (let i = 0; i < 64; i++) pad[i] = block[i] ^ 0x36;
  compress(innerStart, pad, 0);
  const outerStart = IV.slice();
  for (let i = 0; i < 64; i++) pad[i] = block[i] ^ 0x5c;
  compress(outerStart, pad, 0);

  const state = new Int32Array(8);
  const digest = new Uint8Array(32);
  let buf = new Uint8Array(256);
  return (text) => {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    if (buf.length < text.length * 3) buf = new Uint8Array(text.length * 3);
    let len = 0;
    // ASCII (addresses, most device ids) is copied byte by byte; anything else goes through UTF-8 encoding.
    for (; len < text.length; len++) {
      const c = text.charCodeAt(len);
      if (c > 0x7f) break;
      buf[len] = c;
    }
    if (len < text.length) len = encoder.encodeInto(text, buf).written;
    state.set(innerStart);
    finish(state, buf, len);
    for (let i = 0; i < 8; i++) {
      const w = state[i];
      digest[i * 4] = w >>> 24;
      digest[i * 4 + 1] = w >>> 16;
      digest[i * 4 + 2] = w >>> 8;
      digest[i * 4 + 3] = w;
    }
    state.set(outerStart);
    finish(state, digest, 32);
    let hex = "";
    for (let i = 0; i < 8; i++) {
      const w = state[i];
      hex += HEX[(w >>> 24) & 255] + HEX[(w >>> 16) & 255] + HEX[(w >>> 8) & 255] + HEX[w & 255];
    }
    return hex;
  };
}
