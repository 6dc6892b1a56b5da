/**
 * Whether a key protects anything: length alone does not tell (32 times the same letter is 32 bytes). A
 * key's information content is estimated from the key itself, and a key below the bar is refused.
 *
 * The estimate reads the key as a sequence of symbols (code points of a text key, bytes of a binary one) in
 * a greedy LZ77 parse: a symbol not continuing an earlier run costs the Shannon entropy of the key's own
 * symbol frequencies, a run of three or more symbols that occurred earlier costs one back-reference
 * (2 log2(length) bits), whatever its length. The same is done for the differences between neighbouring
 * symbols, which exposes sequences such as `abcdef` or `0123`, and the smaller estimate counts. So one
 * symbol repeated scores near zero, a key made of one piece repeated scores about that piece once, and
 * random keys score close to their true size. docs/privacy.md gives the rule and how generated keys score.
 *
 * @module
 */

/** Least estimated information content of a key, in bits (`openssl rand -hex 16` scores 86 or more). */
export const MIN_KEY_BITS = 80;
/** Most bytes a text key may have: HMAC hashes a longer key anyway, and the estimate is quadratic. */
export const MAX_KEY_BYTES = 1024;

function shannonBits(symbols: readonly number[]): number {
  const counts = new Map<number, number>();
  for (const s of symbols) counts.set(s, (counts.get(s) ?? 0) + 1);
  let bits = 0;
  for (const c of counts.values()) {
    const p = c / symbols.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

function lzBits(symbols: readonly number[]): number {
  const n = symbols.length;
  if (n === 0) return 0;
  const perSymbol = shannonBits(symbols);
  const perCopy = 2 * Math.log2(Math.max(2, n));
  let bits = 0;
  for (let i = 0; i < n;) {
    let longest = 0;
    for (let j = 0; j < i; j++) {
      let l = 0;
      while (i + l < n && symbols[j + l] === symbols[i + l]) l++;
      if (l > longest) longest = l;
    }
    if (longest >= 3) {
      bits += perCopy;
      i += longest;
    } else {
      bits += perSymbol;
      i++;
    }
  }
  return bits;
}

/**
 * The estimated information content of a sequence of symbols, in bits (see the module doc).
 *
 * @example
 * ```ts
 * import { estimateBits } from "./key_strength.ts";
 * estimateBits([..."a".repeat(32)].map((c) => c.codePointAt(0)!)); // about 10
 * estimateBits(Array.from(crypto.getRandomValues(new Uint8Array(32)))); // about 150
 * ```
 */
export function estimateBits(symbols: readonly number[]): number {
  const deltas = symbols.slice(1).map((s, i) => s - symbols[i]);
  return Math.min(lzBits(symbols), lzBits(deltas));
}

/** The code points of a text, as estimateBits() reads a text key. */
export function codePoints(text: string): number[] {
  return Array.from(text, (c) => c.codePointAt(0)!);
}
