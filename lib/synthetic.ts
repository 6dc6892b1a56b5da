/**
 * Synthetic login bodies for the benchmark and the fault tests: deterministic from an index, with a
 * chosen share of bad ones (each bad kind a different rule of the README's "Bad input").
 */

const VERSIONS = ["2.3.0", "0.96", "3.7", "0.2.9", "5.0.2", "1.12.100"];
const LOCALES = ["RU", "US", "PH", "DE", null];
const BAD = [
  '{"foo":"oops_wrong_ip","bar":"123"}',
  "not json at all",
  '{"user_id":42}',
  '{"user_id":"u","app_version":"1.2.3.4"}',
  '{"user_id":"u","locale":"way too long for the thirty-two character column"}',
];

/** True when `synthetic(i, badEvery)` is a bad body. */
export function isBadIndex(i: number, badEvery: number): boolean {
  return badEvery > 0 && i % badEvery === badEvery - 1;
}

/**
 * Body number `i`; every `badEvery`-th one (0: none) is bad.
 *
 * @example
 * ```ts
 * import { isBadIndex, synthetic } from "./synthetic.ts";
 *
 * synthetic(0, 100); // '{"user_id":"user-0","app_version":"2.3.0",...}'
 * isBadIndex(99, 100); // true: synthetic(99, 100) is a bad body
 * ```
 */
export function synthetic(i: number, badEvery = 0): string {
  if (isBadIndex(i, badEvery)) return BAD[Math.floor(i / badEvery) % BAD.length];
  return JSON.stringify({
    user_id: `user-${i}`,
    app_version: VERSIONS[i % VERSIONS.length],
    device_type: i % 2 === 0 ? "android" : "ios",
    ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    locale: LOCALES[i % LOCALES.length],
    device_id: `${String(i % 1000).padStart(3, "0")}-${String(i % 97).padStart(2, "0")}-${
      String(i).padStart(4, "0")
    }`,
  });
}
