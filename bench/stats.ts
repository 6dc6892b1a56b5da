/** Small statistics for the benchmark's figures. */

/**
 * The median (the mean of the middle two for an even count); NaN for none.
 *
 * @example
 * ```ts
 * import { median } from "./stats.ts";
 * median([3, 1, 2, 10]); // 2.5
 * ```
 */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * The p-th percentile (0..100) of already sorted values, nearest rank; null for none.
 *
 * @example
 * ```ts
 * import { percentile } from "./stats.ts";
 * percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99); // 10
 * ```
 */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/**
 * `x` rounded to `digits` decimals.
 *
 * @example
 * ```ts
 * import { round } from "./stats.ts";
 * round(0.123456, 3); // 0.123
 * ```
 */
export function round(x: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
