/**
 * HMAC-SHA-256 for many short messages under one key, allocating little per call beyond the token itself.
 * The SHA-256 compression function is `@noble/hashes`' (audited and widely used), reached through a
 * subclass of its `_SHA256` that exposes the state and `process()` its own methods use; the HMAC
 * construction (RFC 2104) and SHA-256's padding (FIPS 180-4) around it are here. The key's inner and outer
 * pads are compressed once; a token then costs the text's own blocks and one block of the outer hash,
 * written into buffers reused from call to call.
 *
 * Why not noble's `hmac()` as it is: each call through its streaming API allocates typed-array views,
 * state arrays and a DataView, about 1 KB per token even with one scratch state reused (masq's previous
 * implementation), and in a running consumer every such byte makes the garbage collector run sooner while
 * hundreds of messages are held in flight. Here a token allocates only the token string and
 * `encodeInto`'s result, and costs less CPU than noble's streaming API or node:crypto's `createHmac`
 * (bench/micro/hmac_cpu.ts; see bench/BENCHMARKS.md).
 * Checked against node:crypto by a property test over keys and texts of every length across block edges
 * (tests/transform/hmac_test.ts), and by the README's test vectors.
 *
 * @module
 */
import { _SHA256, sha256 } from "@noble/hashes/sha2.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** The two ASCII hex digits of each byte value, at 2b and 2b + 1. */
const HEX_DIGITS = new TextEncoder().encode(
  Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0")).join(""),
);
const BLOCK = 64;

/** noble's SHA-256, its eight state words and its compression of one 64-byte block reachable. */
class Sha256Blocks extends _SHA256 {
  load(s: Int32Array): void {
    this.set(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
  }
  save(into: Int32Array): Int32Array {
    into[0] = this.A;
    into[1] = this.B;
    into[2] = this.C;
    into[3] = this.D;
    into[4] = this.E;
    into[5] = this.F;
    into[6] = this.G;
    into[7] = this.H;
    return into;
  }
  compress(view: DataView, offset: number): void {
    this.process(view, offset);
  }
}

/**
 * Returns `mac(text)` = hex(HMAC-SHA-256(key, UTF-8 of text)) for one key. Not reentrant across `await`
 * (there is none inside): one set of buffers per returned function.
 *
 * @example
 * ```ts
 * import { hmacSha256Hex } from "./hmac.ts";
 * const mac = hmacSha256Hex(new TextEncoder().encode("example-key"));
 * mac("ip:199.172.111.135"); // "68d4463fb5e0a1156f5c176f223bba4f379a141f611ba35b83f17521030f7ac6"
 * ```
 */
export function hmacSha256Hex(key: Uint8Array): (text: string) => string {
  const h = new Sha256Blocks();
  const initial = h.save(new Int32Array(8));
  // RFC 2104: a key longer than a block is hashed first; a shorter one is padded with zeros.
  const k = key.length > BLOCK ? sha256(key) : key;
  const pad = new Uint8Array(BLOCK);
  const padView = new DataView(pad.buffer);
  const keyedState = (byte: number) => {
    pad.fill(byte);
    for (let i = 0; i < k.length; i++) pad[i] ^= k[i];
    h.load(initial);
    h.compress(padView, 0);
    return h.save(new Int32Array(8));
  };
  const inner = keyedState(0x36);
  const outer = keyedState(0x5c);
  pad.fill(0);

  // The outer hash's one block: the inner digest (32 bytes), then padding and the length of pad + digest.
  const last = new Uint8Array(BLOCK);
  const lastView = new DataView(last.buffer);
  last[32] = 0x80;
  lastView.setUint32(BLOCK - 4, (BLOCK + 32) * 8);

  const digest = new Int32Array(8);
  const hex = new Uint8Array(64);
  let bytes = new Uint8Array(4 * BLOCK);
  let view = new DataView(bytes.buffer);
  return (text) => {
    // UTF-8 takes at most three bytes per UTF-16 code unit; then room for the padding and the length.
    const room = text.length * 3 + 1 + 8;
    if (bytes.length < room) {
      bytes = new Uint8Array(Math.ceil(room / BLOCK) * BLOCK);
      view = new DataView(bytes.buffer);
    }
    const { written } = encoder.encodeInto(text, bytes);
    // SHA-256 padding: 0x80, zeros, then the bit length of everything hashed (the key pad and the text),
    // big-endian in the last 8 bytes of the last block.
    const end = Math.ceil((written + 1 + 8) / BLOCK) * BLOCK;
    bytes[written] = 0x80;
    bytes.fill(0, written + 1, end - 8);
    const bits = (BLOCK + written) * 8;
    view.setUint32(end - 8, Math.floor(bits / 2 ** 32));
    view.setUint32(end - 4, bits >>> 0);
    h.load(inner);
    for (let at = 0; at < end; at += BLOCK) h.compress(view, at);
    h.save(digest);
    for (let i = 0; i < 8; i++) lastView.setInt32(4 * i, digest[i]);
    h.load(outer);
    h.compress(lastView, 0);
    h.save(digest);
    for (let i = 0; i < 8; i++) {
      const w = digest[i];
      for (let j = 0; j < 4; j++) {
        const b = (w >>> (24 - 8 * j)) & 0xff;
        hex[8 * i + 2 * j] = HEX_DIGITS[2 * b];
        hex[8 * i + 2 * j + 1] = HEX_DIGITS[2 * b + 1];
      }
    }
    // One flat string, decoded at once: a string built by `+=` is a rope of 64 pieces, which every
    // later reader (node-postgres escaping and measuring each parameter) pays to walk.
    return decoder.decode(hex);
  };
}
