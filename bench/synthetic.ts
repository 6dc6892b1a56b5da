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

/** What `realistic()` draws from; every field has a default. */
export interface RealisticOptions {
  /** Seed of the whole stream: the same seed and index always give the same message. */
  seed?: number;
  /** Share of bad messages, 0..1 (default 0.01, as in data/sample_logins.jsonl). */
  badRate?: number;
  /** Share of logins by returning users, drawn from a pool (default 0.5); the rest are one-off users. */
  returningRate?: number;
  /** Returning users (default 10,000): a few log in often, most rarely (Zipf-like ranks). */
  poolSize?: number;
}

/** The sample's app versions and locales (null the most common locale, as there). */
const REAL_VERSIONS = [
  "3.7",
  "4.3.2",
  "0.2.9",
  "0.96",
  "2.3.0",
  "2.2.2",
  "0.2.10",
  "5.0.2",
  "1.12.100",
  "4.3",
];
const REAL_LOCALES = [null, null, null, "RU", "ID", "PH", "IN", "US", "DE", "BR", "TR", "FR"];

/** Bad bodies, one per rule of the README's "Bad input" that real traffic breaks; `u` is a user id. */
const REAL_BAD: ReadonlyArray<(u: string, rand: () => number) => string> = [
  // The sample's own bad line: a producer with the wrong schema.
  () => '{"foo":"oops_wrong_ip","bar":"123"}',
  () => "not json at all",
  (u) => `{"user_id":"${u}","app_version":"2.3.0","ip":"10.0.`, // truncated
  (_u, r) => `{"device_type":"ios","ip":"${ipv4(r)}","device_id":"${deviceId(r)}"}`, // user_id missing
  (_u, r) => `{"user_id":${Math.floor(r() * 1e6)},"device_type":"android"}`, // user_id not a string
  (u) => `{"user_id":"${u}","app_version":"1.2.3.4","device_type":"ios"}`,
  (u) => `{"user_id":"${u}","locale":"way too long for the thirty-two character column"}`,
  (u, r) => `{"user_id":"${u}","ip":${Math.floor(r() * 4e9)}}`, // ip not a string
  () => "[]",
];

/** mulberry32 seeded from (seed, index, stream), so each message's values are independent of the others'. */
function rng(seed: number, index: number, stream: number): () => number {
  return mulberry32(
    Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35) ^
      Math.imul(stream + 1, 0x27d4eb2f),
  );
}

/** mulberry32: a small, fast, well-mixed seeded PRNG (floats in [0, 1)), so a random run can be replayed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(xs: readonly T[], r: () => number): T {
  return xs[Math.floor(r() * xs.length)];
}

function uuid(r: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(r() * 16).toString(16));
  hex[12] = "4";
  hex[16] = (8 + Math.floor(r() * 4)).toString(16);
  const s = hex.join("");
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

function ipv4(r: () => number): string {
  return `${1 + Math.floor(r() * 223)}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}.${
    1 + Math.floor(r() * 254)
  }`;
}

function ipv6(r: () => number): string {
  const group = () => Math.floor(r() * 65536).toString(16);
  return `2a02:${group()}:${group()}:${group()}::${group()}`;
}

/** One in ten addresses is IPv6 (mobile carriers), written compressed as clients send them. */
function ip(r: () => number): string {
  return r() < 0.1 ? ipv6(r) : ipv4(r);
}

/** "480-39-4725", the sample's device id shape. */
function deviceId(r: () => number): string {
  const d = (n: number) => String(Math.floor(r() * 10 ** n)).padStart(n, "0");
  return `${d(3)}-${d(2)}-${d(4)}`;
}

interface User {
  id: string;
  device: string;
  deviceType: string | null;
  homeIp: string;
}

function user(r: () => number): User {
  const t = r();
  return {
    id: uuid(r),
    device: deviceId(r),
    deviceType: t < 0.57 ? "ios" : t < 0.99 ? "android" : null,
    homeIp: ip(r),
  };
}

/**
 * Message number `i` of a realistic stream, like data/sample_logins.jsonl: uuid user ids, the sample's
 * app versions and locales (a third null), ios/android; one body in ten carries a `timestamp`. Half the
 * logins (`returningRate`) come from a pool of returning users whose ranks follow a Zipf-like law (a
 * few log in very often), each with one device and mostly one IP, so ips and device ids repeat as real
 * traffic does; the rest are one-off users. `badRate` of the bodies are bad, of varied kinds (not JSON,
 * truncated, the sample's wrong-schema line, user_id missing or not a string, a malformed version, a
 * locale too long for its column, an ip that is a number, an array). Deterministic in (seed, i).
 *
 * @example
 * ```ts
 * import { realistic } from "./synthetic.ts";
 * const { body, bad } = realistic(0, { seed: 7 });
 * JSON.parse(body).user_id; // "0b8d...-4...": a uuid (when `bad` is false)
 * ```
 */
export function realistic(i: number, opts: RealisticOptions = {}): { body: string; bad: boolean } {
  const seed = opts.seed ?? 1;
  const r = rng(seed, i, 0);
  if (r() < (opts.badRate ?? 0.01)) {
    return { body: pick(REAL_BAD, r)(uuid(r), r), bad: true };
  }
  let u: User;
  let loginIp: string;
  if (r() < (opts.returningRate ?? 0.5)) {
    const pool = Math.max(1, opts.poolSize ?? 10_000);
    // Log-uniform rank: P(rank k) ~ 1/(k+1), Zipf with exponent 1.
    const rank = Math.min(pool - 1, Math.floor(Math.exp(r() * Math.log(pool + 1))) - 1);
    u = user(rng(seed, rank, 1));
    // Mostly from home; sometimes from another network.
    loginIp = r() < 0.8 ? u.homeIp : ip(r);
  } else {
    u = user(r);
    loginIp = u.homeIp;
  }
  const body: Record<string, unknown> = {
    user_id: u.id,
    app_version: pick(REAL_VERSIONS, r),
    device_type: u.deviceType,
    ip: loginIp,
    locale: pick(REAL_LOCALES, r),
    device_id: u.device,
  };
  if (r() < 0.1) body.timestamp = 1735689600 + Math.floor(r() * 86400 * 30);
  return { body: JSON.stringify(body), bad: false };
}
